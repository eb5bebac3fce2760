"""Secure sharing with the Spark team: `lakehouse share export` writes what RAM$alice may see as
Parquet + _manifest.json; real PySpark (local mode, started and stopped here) reads it and sees only
masked ids. The same export to S3 on a loopback moto server."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from lakehouse.facade import Lakehouse
from lakehouse.governance.share import ShareError, export_share
from lakehouse.governance.store import PermissionDenied
from tests.helpers.governed import ADS, ALICE, MASKED, VINS, governed

__all__ = ["governed"]

CONNECT_MODE_VARS = ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE")


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    # A Spark Connect session made earlier in this process (the Spark engine's e2e tests) leaves
    # pyspark in connect mode through these variables; this test wants a classic local session.
    connect_mode = {k: os.environ.pop(k) for k in CONNECT_MODE_VARS if k in os.environ}
    session = (
        SparkSession.builder.master("local[1]")
        .appName("lakehouse-share-test")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    try:
        yield session
    finally:
        session.stop()
        os.environ.update(connect_mode)


def test_spark_reads_the_share_and_sees_only_masked_ids(governed: Lakehouse, tmp_path: Path, spark) -> None:
    target = tmp_path / "share"
    manifest = export_share(governed, ADS, str(target), user=ALICE)
    written = json.loads((target / "_manifest.json").read_text())
    assert written == manifest
    assert manifest["table"] == ADS and manifest["rows"] == len(VINS) and manifest["exported_by"] == ALICE
    assert {c["name"]: c["masking"] for c in manifest["columns"]}["vin"] == "MASKED_STRING_UNMASKED_BA(1, 1)"
    assert manifest["snapshot"] == governed.tables.version(
        governed.canonical("iov", "ads_vehicle_hourly_stat")
    )
    for f in manifest["files"]:
        assert hashlib.sha256((target / f["path"]).read_bytes()).hexdigest() == f["sha256"]

    frame = spark.read.parquet(str(target))  # type: ignore[attr-defined]
    rows = [r.asDict() for r in frame.collect()]
    assert len(rows) == len(VINS)
    assert sorted(r["vin"] for r in rows) == sorted(MASKED.values())
    assert set(frame.columns) >= {"vin", "stat_hour", "total_distance", "avg_speed", "dt", "hh"}
    raw = spark.read.parquet(str(target)).where(f"vin = '{VINS[0]}'").count()  # type: ignore[attr-defined]
    assert raw == 0
    everything = "".join(p.read_bytes().decode("latin-1") for p in target.iterdir())
    for vin in VINS:
        assert vin not in everything  # not in data, statistics or manifest

    audit = governed.sql(
        "select * from lakehouse.audit where kind = 'export' order by id desc limit 1"
    ).to_pylist()
    assert audit[0]["user_name"] == ALICE and audit[0]["rows"] == len(VINS) and audit[0]["status"] == "ok"


def test_export_refuses_what_the_user_may_not_read_and_a_used_target(
    governed: Lakehouse, tmp_path: Path
) -> None:
    with pytest.raises(PermissionDenied, match="no SELECT on table iov.dwd_vehicle_gps"):
        export_share(governed, "iov.dwd_vehicle_gps", str(tmp_path / "x"), user=ALICE)
    assert not (tmp_path / "x").exists()
    export_share(governed, ADS, str(tmp_path / "y"), user=ALICE)
    with pytest.raises(ShareError, match="already holds 2 file"):
        export_share(governed, ADS, str(tmp_path / "y"), user=ALICE)
    again = export_share(governed, ADS, str(tmp_path / "y"), user=ALICE, overwrite=True)
    assert again["rows"] == len(VINS)


@pytest.mark.s3
def test_export_to_s3_on_loopback(governed: Lakehouse, s3_endpoint: str) -> None:
    import dataclasses
    import io

    import boto3
    import pyarrow.parquet as pq

    from lakehouse.core.settings import S3Credentials

    secret = "share-secret-that-must-not-leak"
    s3 = boto3.client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key=secret,
    )  # fmt: skip
    bucket = f"shares-{governed.settings.table_format}"
    s3.create_bucket(Bucket=bucket)
    creds = S3Credentials(s3_endpoint, "testing", secret, "us-east-1")
    lakehouse = Lakehouse(dataclasses.replace(governed.settings, s3=creds))
    manifest = export_share(lakehouse, ADS, f"s3://{bucket}/thirdparty/ads", user=ALICE)
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["thirdparty/ads/_manifest.json", "thirdparty/ads/part-00000.parquet"]
    body = s3.get_object(Bucket=bucket, Key="thirdparty/ads/_manifest.json")["Body"].read().decode()
    assert json.loads(body) == manifest and secret not in body and "testing" not in body
    data = s3.get_object(Bucket=bucket, Key="thirdparty/ads/part-00000.parquet")["Body"].read()
    assert sorted(pq.read_table(io.BytesIO(data)).column("vin").to_pylist()) == sorted(MASKED.values())
