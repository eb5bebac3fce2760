"""Table maintenance, both formats: `lakehouse maintain` compacts a partition that late files left in
51 data files into one with the same rows everywhere, a dry run changes nothing, expiry keeps the
last N, the current and pinned snapshots, orphan files go but young ones stay, the Dagster job and
its schedule, re-runs are no-ops, and a concurrent overwrite racing a compaction always wins.

Run with -s to see the measured figures."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner

from lakehouse.cli.main import main
from lakehouse.core.ids import TableId
from lakehouse.core.settings import LakehouseSettings
from lakehouse.facade import Lakehouse
from lakehouse.storage.tables import upkeep
from lakehouse.storage.tables.upkeep import open_upkeep, plain_path
from tests.helpers.env import UNSET
from tests.helpers.pipeline import Pipeline, gps

ODS = TableId("iov", "ods_vehicle_gps_raw")
DWD = TableId("iov", "dwd_vehicle_gps")
ADS = TableId("iov", "ads_vehicle_hourly_stat")
HOUR = {"dt": "2025-09-17", "hh": "23"}
ROWS_PER_FILE = 1024
LATE_FILES = 50
AGGRESSIVE = ["--retention", "0", "--keep-last", "1", "--orphan-age", "0"]
"""Thresholds for a young test lakehouse: every snapshot is past retention, every file past the safety age."""
KEEP_TWO = ["--retention", "0", "--keep-last", "2", "--orphan-age", "0"]


def maintain(settings: LakehouseSettings, *args: str, ok: bool = True) -> Any:
    """`lakehouse maintain ARGS --format json` in process, as a user types it; its rows by table."""
    env: dict[str, str | None] = {k: None for k in UNSET}
    env.update(
        LAKEHOUSE_HOME=settings.home,
        LAKEHOUSE_LANDING_URI=settings.landing_uri,
        LAKEHOUSE_WAREHOUSE_URI=settings.warehouse_uri,
        LAKEHOUSE_CATALOG_URI=settings.catalog_uri,
        LAKEHOUSE_TABLE_FORMAT=settings.table_format,
    )
    result = CliRunner().invoke(
        main, ["maintain", *args, "--format", "json"], env=env, catch_exceptions=False
    )
    if not ok:
        return result
    assert result.exit_code == 0, result.stderr
    return {row["table"]: row for row in json.loads(result.stdout)}


def readings(rows: int, vin: str, speed: float = 50.0) -> list[dict[str, Any]]:
    """`rows` reports of one vehicle in hour 23, three seconds apart (distinct times: a stable order)."""
    return [
        gps(
            vin,
            f"2025-09-17 23:{(3 * k) // 60:02d}:{(3 * k) % 60:02d}",
            lng=120 + k / 1e4,
            speed=speed + k % 40,
        )
        for k in range(rows)
    ]


def land_late_files(pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """One on-time file, built through to ADS; then 50 late files, each written by the ODS rebuild as a
    data file of its own, as an appending writer would leave them (this lakehouse rebuilds a partition
    in one file by default: Iceberg is told to write a file per 1,024 rows, Delta a 1-byte target)."""
    pipeline.land(readings(ROWS_PER_FILE, "VIN000"))
    pipeline.scan()
    lh = pipeline.lh
    if lh.tables.format == "iceberg":
        import lakehouse.storage.tables.iceberg as iceberg

        monkeypatch.setattr(iceberg, "ICEBERG_FILE_ROWS", ROWS_PER_FILE)
    else:
        from deltalake import DeltaTable

        DeltaTable(lh.tables.location(ODS)).alter.set_table_properties({"delta.targetFileSize": "1"})
    for i in range(1, LATE_FILES + 1):
        pipeline.land(readings(ROWS_PER_FILE, f"VIN{i:03d}"), name=f"late-{i:02d}.parquet")
    pipeline.scan()
    if lh.tables.format == "iceberg":
        monkeypatch.undo()


def append_files(lh: Lakehouse, table: TableId, count: int) -> None:
    """`count` appends of a few of the hour's rows (speed changed), each its own data file."""
    rows = lh.read_table(table, partition=HOUR).slice(0, 10)
    for i in range(count):
        extra = rows.set_column(rows.schema.get_field_index("speed"), "speed", pa.array([float(i)] * 10))
        if lh.tables.format == "iceberg":
            lh.tables._load(table).append(extra)  # type: ignore[attr-defined]
        else:
            from deltalake import write_deltalake

            options = lh.tables._options()  # type: ignore[attr-defined]
            write_deltalake(lh.tables.location(table), extra, mode="append", storage_options=options)


def partition_files(lh: Lakehouse, table: TableId = ODS) -> int:
    """Data files of the partition in the table's current snapshot."""
    return sum(1 for f in open_upkeep(lh.tables).live_files(table) if dict(f.partition) == HOUR)


def contents(lh: Lakehouse, table: TableId, snapshot: str | None = None) -> list[tuple[Any, ...]]:
    rows = lh.read_table(table, snapshot=snapshot).to_pylist()
    return sorted(tuple(sorted(row.items())) for row in rows)


def table_state(lh: Lakehouse) -> dict[str, Any]:
    """Everything maintenance could change: every file of the warehouse (size, mtime), the catalog's
    metadata pointers, every table's snapshots and contents."""
    files = {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in Path(lh.settings.warehouse_uri).rglob("*")
        if p.is_file()
    }
    return {
        "files": files,
        "snapshots": {str(t): lh.tables.snapshots(t) for t in (ODS, DWD, ADS)},
        "contents": {str(t): contents(lh, t) for t in (ODS, DWD, ADS)},
    }


# --- compaction ---------------------------------------------------------------------------------


def test_late_files_are_compacted_into_one_file_with_the_same_rows(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, table_format: str
) -> None:
    land_late_files(pipeline, monkeypatch)
    lh = pipeline.lh
    assert partition_files(lh) == LATE_FILES + 1
    before = {t: contents(lh, t) for t in (ODS, DWD, ADS)}
    assert len(before[ODS]) == (LATE_FILES + 1) * ROWS_PER_FILE
    snapshot_before = lh.tables.version(ODS)

    started = time.perf_counter()
    report = maintain(pipeline.settings)  # the defaults of the daily job
    wall = time.perf_counter() - started

    ods = report[str(ODS)]
    [compaction] = [c for c in ods["compactions"] if c["partition"] == "dt=2025-09-17/hh=23"]
    assert (compaction["files_before"], compaction["files_after"], compaction["skipped"]) == (51, 1, None)
    assert partition_files(lh) == 1 and ods["files_after"] == 1
    assert {t: contents(lh, t) for t in (ODS, DWD, ADS)} == before
    assert contents(lh, ODS, snapshot_before) == before[ODS]  # the snapshot before it still reads
    print(
        f"\n[maintenance {table_format}] {ODS} dt=2025-09-17/hh=23: {compaction['files_before']} data files "
        f"-> {compaction['files_after']} ({compaction['rows'] or len(before[ODS])} rows), compaction "
        f"{compaction['seconds']:.3f} s; `lakehouse maintain` (all {len(report)} tables) {wall:.2f} s"
    )
    assert pipeline.scan().requested == 0  # compaction changed no rows: nothing is stale
    again = maintain(pipeline.settings)
    changed = {t: r for t, r in again.items() if r["partitions_compacted"] or r["snapshots_expired"]}
    assert changed == {} and all(not r["orphan_files"] and not r["vacuum_files"] for r in again.values())


def test_a_concurrent_overwrite_racing_a_compaction_wins(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    land_late_files(pipeline, monkeypatch)
    lh = pipeline.lh
    rebuilt = lh.read_table(ODS, partition=HOUR).slice(0, 7)
    rebuilt = rebuilt.set_column(
        rebuilt.schema.get_field_index("speed"), "speed", pa.array([99.0] * 7, pa.float64())
    )
    raced: list[TableId] = []

    def concurrent_build(table: TableId, partition: dict[str, str]) -> None:
        if table == ODS and not raced:  # between the compaction's read and its commit
            raced.append(table)
            Lakehouse(pipeline.settings).tables.overwrite_partition(ODS, rebuilt, HOUR)

    monkeypatch.setattr(upkeep, "before_compaction_commit", concurrent_build)
    report = maintain(pipeline.settings, "--table", str(ODS))
    assert raced == [ODS]
    [compaction] = report[str(ODS)]["compactions"]
    assert compaction["skipped"] and "concurrent write" in compaction["skipped"]
    assert report[str(ODS)]["partitions_compacted"] == 0
    assert contents(lh, ODS) == sorted(tuple(sorted(r.items())) for r in rebuilt.to_pylist())
    assert partition_files(lh) == 1  # the build's own file, nothing of the compaction


# --- dry run --------------------------------------------------------------------------------------


def test_dry_run_reports_exactly_what_a_run_does_and_changes_nothing(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    land_late_files(pipeline, monkeypatch)
    lh = pipeline.lh
    stray = data_folder(lh, ODS) / "orphan.parquet"  # a crashed writer's file: nothing references it
    stray.write_bytes(b"not referenced by anything")
    before = table_state(lh)

    planned = maintain(pipeline.settings, "--dry-run", *AGGRESSIVE)
    assert table_state(lh) == before
    ods = planned[str(ODS)]
    assert ods["dry_run"] and ods["partitions_compacted"] == 1 and ods["files_after"] == 1
    assert ods["snapshots_expired"] > 0 and ods["orphan_files"] + (ods["vacuum_files"] or 0) >= 1

    done = maintain(pipeline.settings, *AGGRESSIVE)
    figures = ["files_before", "files_after", "partitions_compacted", "snapshots_expired"]
    figures += ["vacuum_files", "vacuum_bytes", "orphan_files", "orphan_bytes", "bytes_freed"]
    assert {t: {f: r[f] for f in figures} for t, r in done.items()} == {
        t: {f: r[f] for f in figures} for t, r in planned.items()
    }
    assert not stray.exists()
    assert {str(t): contents(lh, t) for t in (ODS, DWD, ADS)} == before["contents"]
    again = maintain(pipeline.settings, *AGGRESSIVE)  # a second run finds nothing left to do
    assert [t for t, r in again.items() if r["partitions_compacted"] or r["snapshots_expired"]] == []
    assert [t for t, r in again.items() if r["orphan_files"] or r["vacuum_files"]] == []


def data_folder(lh: Lakehouse, table: TableId) -> Path:
    """The folder of the table's hour-23 data files."""
    root = Path(plain_path(open_upkeep(lh.tables).location(table)))
    folder = root / "data" if lh.tables.format == "iceberg" else root / "dt=2025-09-17" / "hh=23"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# --- expiry and pins ----------------------------------------------------------------------------


def rebuild_history(pipeline: Pipeline, times: int) -> list[str]:
    """The ODS partition rebuilt `times` times by late files; its snapshot id after each rebuild."""
    ids = []
    for i in range(times):
        pipeline.land(readings(5, f"VIN{i:03d}"), name=f"part-{i}.parquet")
        pipeline.scan()
        ids.append(pipeline.lh.tables.version(ODS))
    return [i for i in ids if i is not None]


def test_expiry_keeps_the_last_n_the_current_and_a_pinned_snapshot(pipeline: Pipeline) -> None:
    from lakehouse.ml.train import read_pinned

    lh = pipeline.lh
    first = rebuild_history(pipeline, 2)[0]
    pinned_id, pinned_rows = read_pinned(lh, ODS, None, pinned_by="ml/test")  # as a training reads
    expected_pinned = contents(lh, ODS, pinned_id)
    rebuild_history(pipeline, 2)
    pins = lh.sql("select * from lakehouse.snapshot_pins").to_pylist()
    assert [(p["table_name"], p["snapshot_id"], p["pinned_by"]) for p in pins] == [
        (ODS.name, pinned_id, "ml/test")
    ]
    history = [s.snapshot_id for s in lh.tables.snapshots(ODS)]
    last_two = history[-2:]

    report = maintain(pipeline.settings, "--table", str(ODS), *KEEP_TWO)
    ods = report[str(ODS)]
    assert ods["pinned_kept"] == 1 and ods["snapshots_expired"] > 0
    left = {s.snapshot_id: s for s in lh.tables.snapshots(ODS)}
    assert contents(lh, ODS) == contents(
        lh, ODS, history[-1]
    )  # the current one (Delta: vacuum's own commits follow it)
    for kept in [*last_two, pinned_id]:
        assert lh.read_table(ODS, snapshot=kept) is not None  # still readable
    assert contents(lh, ODS, pinned_id) == expected_pinned and pinned_rows.num_rows == len(expected_pinned)
    if lh.tables.format == "iceberg":  # gone from the metadata
        assert set(left) == {*last_two, pinned_id}
    assert_unreadable(lh, first)  # neither pinned nor among the last two

    result = CliRunner().invoke(
        main, ["maintain", "--unpin", f"{ODS}@{pinned_id}"], env=_env(pipeline.settings)
    )
    assert result.exit_code == 0, result.stderr
    assert lh.sql("select * from lakehouse.snapshot_pins").num_rows == 0
    maintain(pipeline.settings, "--table", str(ODS), *KEEP_TWO)
    assert_unreadable(lh, pinned_id)


def assert_unreadable(lh: Lakehouse, snapshot: str) -> None:
    """Iceberg: the snapshot is gone from the metadata. Delta: vacuum deleted files the version needs."""
    from lakehouse.engines.base import QueryError

    with pytest.raises((QueryError, OSError)):
        lh.read_table(ODS, snapshot=snapshot)


def test_training_pins_the_snapshots_it_reads_and_a_failed_one_unpins_them(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from lakehouse.ml import train

    rebuild_history(pipeline, 1)
    lh = pipeline.lh
    spec = dataclasses.replace(train.VEHICLE_SPEED, name="pin_test", tables=(ODS,), user=None)
    monkeypatch.setattr(train, "_train", lambda *args: "trained")  # the model itself is not the point
    assert train.train(lh, spec, device="cpu") == "trained"
    version = lh.tables.version(ODS)
    assert [(p.table_name, p.snapshot_id, p.pinned_by) for p in lh.catalog.snapshot_pins()] == [
        (ODS.name, version, "ml/pin_test")
    ]

    def fails(*args: Any) -> Any:
        raise train.NotEnoughData("too few rows")

    rebuild_history(pipeline, 1)
    monkeypatch.setattr(train, "_train", fails)
    with pytest.raises(train.NotEnoughData):
        train.train(lh, spec, device="cpu")
    assert [p.snapshot_id for p in lh.catalog.snapshot_pins()] == [version]  # the new pin went again


def _env(settings: LakehouseSettings) -> dict[str, str | None]:
    env: dict[str, str | None] = {k: None for k in UNSET}
    env.update(
        LAKEHOUSE_HOME=settings.home,
        LAKEHOUSE_CATALOG_URI=settings.catalog_uri,
        LAKEHOUSE_TABLE_FORMAT=settings.table_format,
    )
    return env


def test_iceberg_bounded_expiry_never_expires_a_pinned_snapshot(tmp_path: Path) -> None:
    from lakehouse.storage.tables.iceberg import ICEBERG_SNAPSHOTS_KEPT

    lh = Lakehouse(LakehouseSettings.for_home(tmp_path / "lh", table_format="iceberg"))
    table = TableId("t", "pins")
    data = pa.table({"x": [1], "dt": ["d"]})
    lh.tables.ensure_table(table, data.schema, ["dt"], origin="model")
    lh.tables.overwrite_partition(table, data, {"dt": "d"})
    first = lh.tables.version(table)
    assert first is not None
    lh.catalog.pin_snapshot("t", "pins", first, "ml/test")
    for x in range(2, 3 * ICEBERG_SNAPSHOTS_KEPT):
        lh.tables.overwrite_partition(table, pa.table({"x": [x], "dt": ["d"]}), {"dt": "d"})
    kept = [s.snapshot_id for s in lh.tables.snapshots(table)]
    assert first in kept and len(kept) <= 2 * ICEBERG_SNAPSHOTS_KEPT + 1
    assert lh.read_table(table, snapshot=first).to_pylist() == [{"x": 1, "dt": "d"}]


# --- orphans --------------------------------------------------------------------------------------


def test_orphan_files_are_removed_but_young_ones_kept(pipeline: Pipeline) -> None:
    lh = pipeline.lh
    rebuild_history(pipeline, 2)
    folder = data_folder(lh, ODS)
    old, young = folder / "crashed-write.parquet", folder / "in-flight-write.parquet"
    for stray in (old, young):
        stray.write_bytes(b"x" * 100)
    two_hours_ago = time.time() - 2 * 3600
    os.utime(old, (two_hours_ago, two_hours_ago))
    before = {str(t): contents(lh, t) for t in (ODS, DWD, ADS)}

    report = maintain(pipeline.settings)  # default safety age: one hour
    assert not old.exists() and young.exists()
    ods = report[str(ODS)]  # Delta's own vacuum takes files its log never mentioned first
    assert ods["orphan_files"] + (ods["vacuum_files"] or 0) == 1 and ods["bytes_freed"] == 100
    assert {str(t): contents(lh, t) for t in (ODS, DWD, ADS)} == before
    again = maintain(pipeline.settings)[str(ODS)]
    assert again["orphan_files"] == 0 and not again["vacuum_files"]


# --- Dagster ----------------------------------------------------------------------------------------


def test_the_dagster_maintenance_job_reports_its_figures(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    import dagster as dg

    from lakehouse_assets.definitions import build_definitions
    from lakehouse_assets.maintenance import HistoryFloor

    land_late_files(pipeline, monkeypatch)
    # a young test lakehouse: its code location lets a run keep no history (run config alone
    # cannot go below the code location's floor: tests/serving/test_security_webserver.py)
    floor = HistoryFloor(retention=dt.timedelta(0), keep_last=1, orphan_age=dt.timedelta(0))
    job = build_definitions(pipeline.settings, maintenance_floor=floor).resolve_job_def("maintenance")
    config = {"retention": "0", "keep_last": 1, "orphan_age": "0"}
    result = job.execute_in_process(
        instance=pipeline.instance, run_config={"ops": {"compact_partitions": {"config": config}}}
    )
    assert result.success
    metadata = {}
    for event in result.all_node_events:
        if event.event_type_value == "STEP_OUTPUT":
            metadata[event.node_name] = {k: v.value for k, v in event.event_specific_data.metadata.items()}
    compact = metadata["compact_partitions"]
    assert compact["partitions_compacted"] >= 1 and compact["dry_run"] is False
    assert compact["figures"][str(ODS)]["files_before"] == LATE_FILES + 1
    assert compact["figures"][str(ODS)]["files_after"] == 1
    assert metadata["expire_snapshots"]["snapshots_expired"] > 0
    assert (
        "orphan_files" in metadata["remove_orphan_files"] and "bytes_freed" in metadata["remove_orphan_files"]
    )
    vacuumed = metadata["vacuum_delta"]["vacuum_files"]
    assert vacuumed > 0 if pipeline.lh.tables.format == "delta" else vacuumed == 0
    observed = pipeline.instance.fetch_observations(dg.AssetKey(["iov", "ods_vehicle_gps_raw"]), limit=1)
    [record] = observed.records
    assert record.asset_observation is not None
    assert record.asset_observation.metadata["files_after"].value == 1
    assert partition_files(pipeline.lh) == 1


def test_the_maintenance_schedule_is_daily_and_on_by_default(tmp_path: Path) -> None:
    import dagster as dg

    from lakehouse_assets.definitions import build_definitions

    defs = build_definitions(LakehouseSettings.for_home(tmp_path))
    schedule = defs.resolve_schedule_def("maintenance_daily")
    assert schedule.job_name == "maintenance" and schedule.cron_schedule == "0 3 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert defs.resolve_job_def("maintenance").name == "maintenance"


# --- S3 ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_server() -> Any:
    """An S3-speaking server in a process of its own (moto_server): deltalake calls that hold the GIL
    while they wait on HTTP would stall the in-process server of the `s3_endpoint` fixture."""
    import subprocess
    import sys
    import urllib.request

    from tests.conftest import free_port

    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(endpoint, timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.s3
def test_maintenance_on_an_s3_warehouse(
    s3_server: str,
    tmp_path: Path,
    table_format: str,
    monkeypatch: pytest.MonkeyPatch,
    instance: Any,
) -> None:
    import dataclasses
    import datetime as dt

    import boto3

    from lakehouse.core.settings import S3Credentials
    from lakehouse.maintenance import MaintenanceOptions
    from lakehouse.maintenance import maintain as run_maintenance

    env = {"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "testing"}
    env |= {"AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    bucket = f"maintain-{table_format}"
    s3 = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    s3.create_bucket(Bucket=bucket)
    settings = dataclasses.replace(
        LakehouseSettings.for_home(tmp_path / "lh", table_format=table_format),
        landing_uri=f"s3://{bucket}/landing",
        warehouse_uri=f"s3://{bucket}/warehouse",
        s3=S3Credentials.from_env(env),
    )
    pipeline = Pipeline(settings, instance)
    pipeline.land(readings(ROWS_PER_FILE, "VIN000"))
    pipeline.scan()
    lh = pipeline.lh
    append_files(lh, ODS, 3)  # an appending writer (Spark, another engine) added three files
    assert partition_files(lh) == 4
    before = {t: contents(lh, t) for t in (ODS, DWD, ADS)}
    folder = "data" if table_format == "iceberg" else "dt=2025-09-17/hh=23"
    stray = f"warehouse/iov/ods_vehicle_gps_raw/{folder}/crashed-write.parquet"
    s3.put_object(Bucket=bucket, Key=stray, Body=b"x" * 10)

    options = MaintenanceOptions(
        max_files=2, retention=dt.timedelta(0), keep_last=1, orphan_age=dt.timedelta(0)
    )
    run = run_maintenance(lh, options=options)
    assert run.errors == []
    ods = run.reports[str(ODS)]
    assert (ods.files_before, ods.files_after, ods.partitions_compacted) == (4, 1, 1)
    assert ods.orphan_files + (ods.vacuum_files or 0) >= 1
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix=stray)
    assert {t: contents(lh, t) for t in (ODS, DWD, ADS)} == before
    assert not run_maintenance(lh, options=options).changed
