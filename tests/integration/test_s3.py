"""The whole pipeline with landing and warehouse on S3: a real S3-speaking server (moto's server mode)
started by the test on 127.0.0.1 and stopped after it."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from lakehouse.core.settings import LakehouseSettings, S3Credentials
from lakehouse.demo.iov import generate_iov
from tests.helpers.pipeline import Pipeline

pytestmark = pytest.mark.s3

SECRET = "s3cr3t-value-that-must-never-leak"


@pytest.fixture
def s3_settings(
    s3_endpoint: str,
    tmp_path: Path,
    table_format: str,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> LakehouseSettings:
    import boto3

    env = {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": "us-east-1",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # runs read credentials from the environment, as in production
    bucket = f"lake-{table_format}-{request.node.name.split('[')[0][-20:].replace('_', '-')}".lower()
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    base = LakehouseSettings.for_home(tmp_path / "lh", table_format=table_format)
    return dataclasses.replace(
        base,
        landing_uri=f"s3://{bucket}/landing",
        warehouse_uri=f"s3://{bucket}/warehouse",
        s3=S3Credentials.from_env(env),
    )


def test_pipeline_runs_on_s3_and_no_secret_leaks(
    s3_settings: LakehouseSettings, instance: dg.DagsterInstance
) -> None:
    p = Pipeline(s3_settings, instance)
    summary = generate_iov(
        p.lh.landing, hours=2, vehicles=8, start=dt.datetime(2025, 9, 17, 22), interval_seconds=60
    )
    assert p.lh.landing.uri.startswith("s3://")
    result = p.scan()
    assert result.requested == 1  # one reconcile run for the namespace
    assert result.built["iov.ods_vehicle_gps_raw"] == 2
    assert p.sql("select count(*) as n from iov.ads_vehicle_hourly_stat") == [{"n": 16}]
    ods = p.sql("select count(*) as n from iov.ods_vehicle_gps_raw")[0]["n"]
    assert ods == summary.rows
    assert [r["path"].rsplit("/", 1)[1] for r in p.sql("select path from lakehouse.rejected_files")] == [
        "corrupt.parquet"
    ]

    # late file on S3 -> only that partition is re-requested
    p.land(
        [
            {
                "vin": "VIN001",
                "device_id": "DEV001",
                "report_time": "2025-09-17 22:59:59",
                "lng": 121.0,
                "lat": 31.0,
                "speed": 1.0,
                "raw_payload": "x",
            }
        ],
        dt="2025-09-17",
        hh="22",
        name="late.parquet",
    )
    late = p.scan()
    assert late.requested == 1
    assert late.built["iov.ods_vehicle_gps_raw"] == 1  # only that partition is rebuilt
    assert p.sql("select count(*) as n from iov.ods_vehicle_gps_raw")[0]["n"] == ods + 1

    # The CONNECTION's secret appears in no event, metadata or log line of any run.
    for record in instance.get_run_records():
        for entry in instance.all_logs(record.dagster_run.run_id):
            assert SECRET not in str(entry)
        assert SECRET not in str(record.dagster_run.run_config)
    assert SECRET not in repr(s3_settings)


def test_s3_errors_do_not_show_the_secret(
    s3_settings: LakehouseSettings, instance: dg.DagsterInstance
) -> None:
    missing = dataclasses.replace(s3_settings, landing_uri="s3://no-such-bucket-here/landing")
    p = Pipeline(missing, instance)
    # s3fs tries to create the missing bucket and the server refuses: an OSError from s3fs
    with pytest.raises(OSError) as failure:
        p.lh.landing.write_bytes("iov/t/dt=2025-09-17/hh=00/x.parquet", b"x")
    assert SECRET not in str(failure.value) and SECRET not in repr(failure.value)
