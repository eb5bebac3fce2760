"""The code location as Dagster sees it: assets, checks, sensor, jobs; the `dagster` CLI and the
webserver on a fresh, empty DAGSTER_HOME."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg

from lakehouse.core.settings import LakehouseSettings
from lakehouse_assets.definitions import build_definitions
from tests.helpers.paths import REPO
from tests.helpers.pipeline import Pipeline, gps

BIN = Path(sys.executable).parent
ODS = dg.AssetKey(["iov", "ods_vehicle_gps_raw"])
DWD = dg.AssetKey(["iov", "dwd_vehicle_gps"])
ADS = dg.AssetKey(["iov", "ads_vehicle_hourly_stat"])


def test_definitions_wire_the_vehicle_pipeline(tmp_path: Path) -> None:
    defs = build_definitions(LakehouseSettings.for_home(tmp_path))
    graph = defs.resolve_asset_graph()
    assert {ODS, DWD, ADS} <= graph.get_all_asset_keys()
    assert graph.get(DWD).parent_keys == {ODS} and graph.get(ADS).parent_keys == {DWD}
    assert [graph.get(k).group_name for k in (ODS, DWD, ADS)] == ["ods", "dwd", "ads"]
    assert graph.get(ADS).partitions_def == dg.DynamicPartitionsDefinition(name="iov_hourly")
    checks = {key.name for key in graph.asset_check_keys}
    assert {"no_rejected_files", "rows_reconcile", "unique_vin"} <= checks
    schema = graph.get(ADS).metadata["dagster/column_schema"]
    assert [c.name for c in schema.columns] == ["vin", "stat_hour", "total_distance", "avg_speed", "dt", "hh"]
    sensor = defs.resolve_sensor_def("datascan")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and sensor.minimum_interval_seconds == 300


def _env(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "dagster_home").mkdir(exist_ok=True)  # fresh and empty
    return {
        **os.environ,
        "LAKEHOUSE_HOME": str(tmp_path / "lh"),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }


def test_dagster_asset_materialize_from_the_shell(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    env = _env(tmp_path)
    p = Pipeline(LakehouseSettings.from_env(env), instance)
    p.land([gps("VIN001"), gps("VIN002", lng=121.0)])
    subprocess.run(
        [BIN / "lakehouse", "scan", "--plan"], env=env, cwd=REPO, check=True
    )  # registers the partition
    done = subprocess.run(
        [
            BIN / "dagster",
            "asset",
            "materialize",
            "-m",
            "lakehouse_assets.definitions",
            "--select",
            "iov/ods_vehicle_gps_raw*",
            "--partition",
            "2025-09-17-23",
        ],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(r["vin"] for r in p.sql("select vin from iov.ads_vehicle_hourly_stat")) == [
        "VIN001",
        "VIN002",
    ]


def test_webserver_serves_the_asset_graph(tmp_path: Path) -> None:
    env = _env(tmp_path)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [BIN / "dagster-webserver", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        query = {"query": "{ assetNodes { assetKey { path } groupName } }"}
        deadline, nodes = time.monotonic() + 120, None
        while time.monotonic() < deadline and nodes is None:
            try:
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/graphql",
                    data=json.dumps(query).encode(),
                    headers={"Content-Type": "application/json"},
                )
                body = json.loads(urllib.request.urlopen(req, timeout=5).read())
                nodes = body["data"]["assetNodes"] or None
            except (OSError, KeyError, TypeError):
                time.sleep(1)
        assert nodes, "webserver did not answer with the asset graph"
        assert {("/".join(n["assetKey"]["path"]), n["groupName"]) for n in nodes} >= {
            ("iov/ods_vehicle_gps_raw", "ods"),
            ("iov/dwd_vehicle_gps", "dwd"),
            ("iov/ads_vehicle_hourly_stat", "ads"),
        }
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
