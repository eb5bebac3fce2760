"""DataScan: discovery, junk, corrupt files, late / replaced / deleted files, schema evolution,
conflicts, restarts. The real sensor is evaluated against a prepared state (manifest + instance)."""

from __future__ import annotations

import os
import time

import dagster as dg
import pyarrow as pa
import pyarrow.orc as orc
import pytest

from lakehouse.core.ids import TableId
from lakehouse_assets.definitions import build_definitions
from tests.helpers.pipeline import GPS_SCHEMA, Pipeline, gps

ODS = dg.AssetKey(["iov", "ods_vehicle_gps_raw"])
DWD = dg.AssetKey(["iov", "dwd_vehicle_gps"])
ADS = dg.AssetKey(["iov", "ads_vehicle_hourly_stat"])


def evaluate(p: Pipeline) -> dg.SensorResult:
    defs = p.defs()
    with dg.build_sensor_context(instance=p.instance, resources=dict(defs.resources)) as ctx:
        return defs.resolve_sensor_def("datascan")(ctx)


def test_new_partition_asks_for_one_reconcile_run_of_its_namespace(pipeline: Pipeline) -> None:
    pipeline.land([gps()], dt="2025-09-17", hh="23")
    result = evaluate(pipeline)
    [request] = result.run_requests
    assert request.job_name == "reconcile"
    assert request.run_config == {"ops": {"reconcile_namespace": {"config": {"namespace": "iov"}}}}
    assert request.tags["lakehouse/namespace"] == "iov"
    assert "ods_vehicle_gps_raw: 1" in request.tags["lakehouse/reason"]
    assert [(r.partitions_def_name, list(r.partition_keys)) for r in result.dynamic_partitions_requests] == [
        ("iov_hourly", ["2025-09-17-23"])
    ]
    # the run builds ODS, DWD and ADS of the hour, each shown as its partition's materialization
    pipeline.scan()
    for key in (ODS, DWD, ADS):
        [event] = pipeline.instance.fetch_materializations(key, limit=10).records
        assert event.partition_key == "2025-09-17-23"
    assert not evaluate(pipeline).run_requests  # nothing stale any more


def test_junk_is_ignored_and_never_stops_the_scan(pipeline: Pipeline) -> None:
    base = "iov/ods_vehicle_gps_raw/dt=2025-09-17/hh=23"
    for path, content in {
        "iov/.DS_Store": b"junk",
        f"{base}/.DS_Store": b"junk",
        f"{base}/_SUCCESS": b"",
        f"{base}/part-1.parquet.uploading": b"half",
        f"{base}/empty.parquet": b"",
        f"{base}/notes.txt": b"hi",
        f"iov/_staging/{base}/x.parquet": b"junk",
        ".hidden/x.parquet": b"junk",
    }.items():
        pipeline.lh.landing.write_bytes(path, content)
    result = evaluate(pipeline)
    assert not result.run_requests
    pipeline.land([gps()])
    assert len(evaluate(pipeline).run_requests) == 1
    pipeline.scan()
    assert pipeline.sql("select count(*) as n from iov.ods_vehicle_gps_raw") == [{"n": 1}]
    assert pipeline.sql("select count(*) as n from lakehouse.rejected_files") == [{"n": 0}]


def test_corrupt_file_is_rejected_with_reason_and_the_rest_is_loaded(pipeline: Pipeline) -> None:
    pipeline.land([gps("VIN001"), gps("VIN002")], name="good.parquet")
    pipeline.lh.landing.write_bytes(
        "iov/ods_vehicle_gps_raw/dt=2025-09-17/hh=23/bad.parquet", b"PAR1 not parquet"
    )
    pipeline.lh.landing.write_bytes("iov/ods_vehicle_gps_raw/dt=2025-09-17/hh=23/bad.orc", b"ORC garbage")
    pipeline.scan()
    assert pipeline.sql("select count(*) as n from iov.ods_vehicle_gps_raw") == [{"n": 2}]
    rejected = pipeline.sql("select path, reason from lakehouse.rejected_files order by path")
    assert [r["path"].rsplit("/", 1)[1] for r in rejected] == ["bad.orc", "bad.parquet"]
    assert all(r["path"] in r["reason"] and "not a readable" in r["reason"] for r in rejected)
    check = pipeline.instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(ODS, "no_rejected_files")]
    )
    evaluation = list(check.values())[0].evaluation
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.WARN
    # nothing pending: the rejected files are remembered, not retried forever
    assert not evaluate(pipeline).run_requests


def test_late_file_joins_its_processed_partition_and_flows_to_ads(pipeline: Pipeline) -> None:
    pipeline.land([gps("VIN001", "2025-09-17 23:00:00", 120.0, 30.0, 40.0)], name="a.parquet")
    pipeline.scan()
    pipeline.land([gps("VIN001", "2025-09-17 23:10:00", 120.1, 30.0, 60.0)], name="late.parquet")
    [request] = evaluate(pipeline).run_requests
    assert "ods_vehicle_gps_raw: 1" in request.tags["lakehouse/reason"]
    assert pipeline.scan().built["iov.ods_vehicle_gps_raw"] == 1  # the late file's partition, nothing else

    [(distance, speed)] = pipeline.ads().values()
    assert speed == 50.0 and distance > 9
    assert pipeline.sql(
        "select _source_file, count(*) as n from iov.ods_vehicle_gps_raw group by 1 order by 1"
    ) == [
        {"_source_file": "iov/ods_vehicle_gps_raw/dt=2025-09-17/hh=23/a.parquet", "n": 1},
        {"_source_file": "iov/ods_vehicle_gps_raw/dt=2025-09-17/hh=23/late.parquet", "n": 1},
    ]


def test_replaced_file_replaces_its_rows_and_deleted_file_drops_them(pipeline: Pipeline) -> None:
    path = pipeline.land([gps("VIN001", speed=10.0), gps("VIN002", speed=20.0)], name="a.parquet")
    pipeline.land([gps("VIN003", speed=30.0)], name="b.parquet")
    pipeline.scan()
    time.sleep(0.01)
    pipeline.land([gps("VIN001", speed=99.0)], name="a.parquet")  # same name, new content
    pipeline.scan()
    assert pipeline.sql("select vin, speed from iov.dwd_vehicle_gps order by vin") == [
        {"vin": "VIN001", "speed": 99.0},
        {"vin": "VIN003", "speed": 30.0},
    ]
    os.remove(os.path.join(pipeline.settings.landing_uri, path))
    pipeline.scan()
    assert pipeline.sql("select vin from iov.ads_vehicle_hourly_stat") == [{"vin": "VIN003"}]


def test_restart_neither_misses_nor_reprocesses(settings, tmp_path) -> None:
    storage = tmp_path / "dagster_home"
    storage.mkdir()
    with dg.instance_for_test(temp_dir=str(storage)) as before:
        first = Pipeline(settings, before)
        first.land([gps()], hh="22")
        first.scan()
        runs = len(before.get_run_records())
    # a restart: that process is gone; new Definitions and a new instance on the same storage
    with dg.instance_for_test(temp_dir=str(storage)) as after:
        restarted = Pipeline(settings, after)
        assert len(after.get_run_records()) == runs == 1
        assert after.get_dynamic_partitions("iov_hourly") == ["2025-09-17-22"]
        assert not evaluate(restarted).run_requests  # nothing reprocessed
        restarted.land([gps("VIN777")], hh="23")
        [request] = evaluate(restarted).run_requests  # nothing missed
        assert "ods_vehicle_gps_raw: 1" in request.tags["lakehouse/reason"]


def test_any_date_is_a_partition_and_misplaced_files_are_recorded(pipeline: Pipeline) -> None:
    pipeline.land([gps(report_time="1999-12-31 23:00:00")], dt="1999-12-31", hh="23")
    pipeline.lh.landing.write_arrow(
        "iov/ods_vehicle_gps_raw/dt=2025-13-01/hh=00/x.parquet",
        pa.Table.from_pylist([gps()], schema=GPS_SCHEMA),
    )
    pipeline.lh.landing.write_arrow(
        "iov/ods_vehicle_gps_raw/x.parquet", pa.Table.from_pylist([gps()], schema=GPS_SCHEMA)
    )
    pipeline.scan()
    assert pipeline.sql("select stat_hour from iov.ads_vehicle_hourly_stat") == [
        {"stat_hour": "1999-12-31 23"}
    ]
    reasons = {
        r["path"]: r["reason"] for r in pipeline.sql("select path, reason from lakehouse.rejected_files")
    }
    assert "not a valid date" in reasons["iov/ods_vehicle_gps_raw/dt=2025-13-01/hh=00/x.parquet"]
    assert "not in <namespace>/<table>" in reasons["iov/ods_vehicle_gps_raw/x.parquet"]


def test_parquet_and_orc_are_one_table_and_schema_evolves(pipeline: Pipeline) -> None:
    pipeline.land([gps("VIN001")], hh="20")
    narrow = pa.Table.from_pylist([gps("VIN002", extra_col="x")]).cast(
        pa.schema(
            [
                *[pa.field(f.name, pa.float32() if f.name == "speed" else f.type) for f in GPS_SCHEMA],
                ("extra_col", pa.string()),
            ]
        )
    )
    sink = pa.BufferOutputStream()
    orc.write_table(narrow, sink)
    pipeline.lh.landing.write_bytes(
        "iov/ods_vehicle_gps_raw/dt=2025-09-17/hh=21/part-0.orc", sink.getvalue().to_pybytes()
    )
    pipeline.scan()
    rows = pipeline.sql("select vin, speed, extra_col from iov.ods_vehicle_gps_raw order by vin")
    assert rows == [
        {"vin": "VIN001", "speed": 50.0, "extra_col": None},
        {"vin": "VIN002", "speed": 50.0, "extra_col": "x"},
    ]
    assert (
        pipeline.lh.tables.schema(TableId("iov", "ods_vehicle_gps_raw")).field("speed").type == pa.float64()
    )
    assert pipeline.sql("select count(*) as n from iov.ads_vehicle_hourly_stat") == [{"n": 2}]


def test_incompatible_schema_is_rejected_naming_the_file(pipeline: Pipeline) -> None:
    pipeline.land([gps("VIN001")], hh="20")
    pipeline.scan()
    bad = pa.table(
        {
            "vin": ["VIN002"],
            "report_time": ["2025-09-17 23:00:00"],
            "lng": ["east"],
            "lat": [30.0],
            "speed": [1.0],
        }
    )
    path = pipeline.land(bad, hh="21", name="bad-types.parquet")
    pipeline.land([gps("VIN003")], hh="21", name="ok.parquet")
    pipeline.scan()
    [row] = pipeline.sql("select path, reason from lakehouse.rejected_files")
    assert row["path"] == path and path in row["reason"] and "'lng'" in row["reason"]
    assert pipeline.sql("select vin from iov.ods_vehicle_gps_raw where hh = '21'") == [{"vin": "VIN003"}]


def test_user_table_with_a_discovered_name_is_never_overwritten(pipeline: Pipeline) -> None:
    user_table = TableId("iov", "ods_vehicle_gps_raw")
    mine = pa.table({"note": ["mine"], "dt": ["x"], "hh": ["y"]})
    pipeline.lh.tables.ensure_table(user_table, mine.schema, ["dt", "hh"], origin="user")
    pipeline.lh.tables.overwrite_partition(user_table, mine, {"dt": "x", "hh": "y"})
    pipeline.land([gps()])
    result = evaluate(pipeline)
    assert not result.run_requests
    [conflict] = pipeline.sql("select name, reason from lakehouse.conflicts")
    assert conflict["name"] == "ods_vehicle_gps_raw" and "will not overwrite" in conflict["reason"]
    assert pipeline.sql("select note from iov.ods_vehicle_gps_raw") == [{"note": "mine"}]


def test_new_folder_becomes_a_registered_table_without_code_changes(pipeline: Pipeline) -> None:
    defs_before = pipeline.defs()  # loaded before the folder exists
    pipeline.land([gps()], table="ods_fleet_events", namespace="fleet")
    with dg.build_sensor_context(instance=pipeline.instance, resources=dict(defs_before.resources)) as ctx:
        result = defs_before.resolve_sensor_def("datascan")(ctx)
    [request] = result.run_requests
    assert request.job_name == "reconcile" and request.tags["lakehouse/namespace"] == "fleet"
    outcome = defs_before.resolve_job_def(request.job_name).execute_in_process(
        instance=pipeline.instance, run_config=request.run_config, tags=request.tags
    )
    assert outcome.success
    assert pipeline.sql("select vin from fleet.ods_fleet_events") == [{"vin": "VIN001"}]
    # and on the next load it is an asset of its own
    assert (
        dg.AssetKey(["fleet", "ods_fleet_events"])
        in build_definitions(pipeline.settings).resolve_asset_graph().get_all_asset_keys()
    )


@pytest.mark.parametrize("hours", [3])
def test_many_changed_partitions_are_one_run(pipeline: Pipeline, hours: int) -> None:
    for h in range(hours):
        pipeline.land([gps()], hh=f"{h:02d}")
    [request] = evaluate(pipeline).run_requests
    assert f"ods_vehicle_gps_raw: {hours}" in request.tags["lakehouse/reason"]
    scanned = pipeline.scan()
    assert scanned.requested == 1
    assert scanned.built == {
        "iov.ods_vehicle_gps_raw": hours,
        "iov.dwd_vehicle_gps": hours,
        "iov.ads_vehicle_hourly_stat": hours,
    }


def test_file_corrupt_inside_its_data_is_rejected_and_the_partition_still_loads(pipeline: Pipeline) -> None:
    import io

    import pyarrow.parquet as pq

    rows = pa.Table.from_pylist([gps(f"VIN{i:03d}", speed=float(i)) for i in range(2000)], schema=GPS_SCHEMA)
    buffer = io.BytesIO()
    pq.write_table(rows, buffer, row_group_size=500)
    data = bytearray(buffer.getvalue())
    data[200:2200] = (
        b"\xff" * 2000
    )  # data pages broken, footer intact: passes the schema pass, fails mid-stream
    pipeline.lh.landing.write_bytes("iov/ods_vehicle_gps_raw/dt=2025-09-17/hh=23/broken.parquet", bytes(data))
    pipeline.land([gps("VIN900")], name="fine.parquet")
    pipeline.scan()
    assert pipeline.sql("select vin from iov.ods_vehicle_gps_raw") == [{"vin": "VIN900"}]
    [rejected] = pipeline.sql("select path, reason from lakehouse.rejected_files")
    assert rejected["path"].endswith("broken.parquet") and "not a readable parquet file" in rejected["reason"]


def test_a_live_reconcile_run_is_waited_for_and_a_dead_one_is_noticed(pipeline: Pipeline) -> None:
    """A reconcile run of the namespace that may still be starting holds the namespace; one whose
    process is gone (its worker's pid is dead) is reported failed and the namespace gets a new run."""
    import subprocess

    from lakehouse.storage.leases import Worker

    pipeline.land([gps()], hh="23")
    running = dg.DagsterRun(
        job_name="reconcile",
        status=dg.DagsterRunStatus.STARTED,
        tags={"lakehouse/reconcile": "true", "lakehouse/namespace": "iov"},
    )
    pipeline.instance.add_run(running)
    assert not evaluate(pipeline).run_requests  # young and without a worker yet: it may be starting
    gone = subprocess.Popen(["true"])
    gone.wait()
    worker = Worker(pipeline.lh.catalog, "iov", run_id=running.run_id)
    worker.__enter__()
    worker._stop.set()  # no more heartbeats, as after a SIGKILL
    import sqlalchemy as sa

    from lakehouse.storage.catalog_schema import workers_t

    with pipeline.lh.catalog.engine.begin() as conn:
        conn.execute(
            sa.update(workers_t).where(workers_t.c.worker_id == worker.worker_id).values(pid=gone.pid)
        )
    [request] = evaluate(pipeline).run_requests
    assert request.tags["lakehouse/namespace"] == "iov"
    record = pipeline.instance.get_run_record_by_id(running.run_id)
    assert record is not None and record.dagster_run.status is dg.DagsterRunStatus.FAILURE
