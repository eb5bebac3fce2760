"""Scale-out: the same SQL models on a real Spark cluster (standalone master + 2 workers + Spark
Connect, started here with `lakehouse spark start --workers 2` and stopped with `lakehouse spark stop`).

Both seeds, in both formats, built once on DuckDB and once on Spark from the same landed files: every
DWD, DWS and ADS table (rejected rows included) is equal (strings, integers, dates exactly, doubles
within 1e-9 relative), and every model table's data files are the Parquet Spark wrote. The game's
late-data invariant holds on Spark. `lakehouse scan` on Spark, SIGKILLed after Spark wrote a partition
and before the table store committed it, loses and duplicates nothing. `dagster asset materialize`
runs a partition on Spark.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from lakehouse.core.ids import TableId
from lakehouse.core.settings import LakehouseSettings
from lakehouse.demo.game import generate_game
from lakehouse.demo.iov import generate_iov
from lakehouse.engines.spark_cluster import alive, read_state
from lakehouse.facade import Lakehouse
from lakehouse_assets.definitions import build_definitions
from sensors.run_once import catch_up
from tests.helpers.env import clean_env
from tests.helpers.game import GameLake, arrivals, replacement
from tests.helpers.paths import BIN, REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

LAKEHOUSE = BIN / "lakehouse"
MODEL_LAYERS = ("dwd_", "dws_", "ads_")


@dataclass(frozen=True)
class Cluster:
    url: str
    home: Path
    pids: dict[str, int]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("spark-cluster")
    env = clean_env(dict(os.environ), LAKEHOUSE_HOME=str(home))
    started = subprocess.run(
        [str(LAKEHOUSE), "spark", "start", "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    state = read_state(home)
    try:
        assert started.returncode == 0, started.stderr[-3000:]
        url = started.stdout.strip().splitlines()[-1]
        assert re.fullmatch(r"sc://127\.0\.0\.1:\d+", url), started.stdout
        assert state is not None and state.connect_url == url
        yield Cluster(url, home, dict(state.pids))
    finally:
        stopped = subprocess.run(
            [str(LAKEHOUSE), "spark", "stop"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert stopped.returncode == 0, stopped.stderr
        if state is not None:
            assert not [name for name, pid in state.pids.items() if alive(pid)], "spark stop left processes"


def settings_for(home: Path, table_format: str, cluster: Cluster | None) -> LakehouseSettings:
    extra: dict[str, Any] = {"engine": "spark", "spark_remote": cluster.url} if cluster else {}
    return LakehouseSettings.for_home(home, table_format=table_format, **extra)


def land_seeds(lh: Lakehouse) -> None:
    generate_iov(
        lh.landing,
        hours=2,
        vehicles=5,
        start=dt.datetime(2025, 9, 17, 18),
        interval_seconds=300,
        junk=True,
        file_format="parquet",
    )
    generate_game(lh.landing, days=2, users=60, events_per_day=300, start=dt.date(2025, 9, 1))


def build(settings: LakehouseSettings) -> Lakehouse:
    with dg.instance_for_test() as instance:
        result = catch_up(build_definitions(settings), instance, log_level="ERROR")
    assert result.failed == 0, f"{result.failed} run(s) failed"
    return Lakehouse(settings)


def model_tables(lh: Lakehouse) -> list[TableId]:
    return sorted((t for t in lh.tables.list_catalog_tables() if t.name.startswith(MODEL_LAYERS)), key=str)


def sorted_rows(lh: Lakehouse, table: TableId) -> tuple[list[str], list[tuple[Any, ...]]]:
    data = lh.tables.read(table)
    columns = sorted(data.column_names)
    rows = [tuple(row[c] for c in columns) for row in data.to_pylist()]
    return columns, sorted(rows, key=lambda r: tuple((v is None, str(v)) for v in r))


def differences(expected: Lakehouse, actual: Lakehouse) -> list[str]:
    """Every difference between the model tables of two lakehouses (doubles within 1e-9 relative)."""
    found = []
    tables = model_tables(expected)
    if model_tables(actual) != tables:
        return [f"tables differ: {model_tables(expected)} vs {model_tables(actual)}"]
    for table in tables:
        (want_cols, want), (got_cols, got) = sorted_rows(expected, table), sorted_rows(actual, table)
        if want_cols != got_cols or len(want) != len(got):
            found.append(f"{table}: columns {want_cols} vs {got_cols}, rows {len(want)} vs {len(got)}")
            continue
        for want_row, got_row in zip(want, got, strict=True):
            for column, a, b in zip(want_cols, want_row, got_row, strict=True):
                if isinstance(a, float) and isinstance(b, float):
                    same = (
                        a == b
                        or (math.isnan(a) and math.isnan(b))
                        or abs(a - b) <= 1e-9 * max(abs(a), abs(b))
                    )
                else:
                    same = a == b and type(a) is type(b)
                if not same:
                    found.append(f"{table}.{column}: DuckDB {a!r}, Spark {b!r}")
    return found


def spark_written(lh: Lakehouse, table: TableId) -> bool:
    """Whether every data file of the table's current snapshot is one Spark wrote (staging folders)."""
    dataset = lh.tables.dataset(table)
    paths = [f.path for f in dataset.get_fragments()]
    return bool(paths) and all("/data/_engine_" in p or p.startswith("data/_engine_") for p in paths)


@pytest.mark.parametrize("table_format", ["iceberg", "delta"])
def test_both_seeds_on_spark_equal_duckdb(tmp_path: Path, cluster: Cluster, table_format: str) -> None:
    homes = {}
    for engine in ("duckdb", "spark"):
        settings = settings_for(tmp_path / engine, table_format, cluster if engine == "spark" else None)
        land_seeds(Lakehouse(settings))
        homes[engine] = build(settings)
    duck, spark = homes["duckdb"], homes["spark"]
    tables = model_tables(duck)
    assert {t.name for t in tables} >= {
        "dwd_vehicle_gps",
        "ads_vehicle_hourly_stat",
        "dwd_user_details",
        "dwd_user_event",
        "dwd_user_event_rejected",
        "dws_user_event_hourly",
        "dws_user_activity_daily",
        "ads_retention_daily",
        "ads_device_preference_daily",
        "ads_purchase_trends_daily",
        "ads_region_distribution_daily",
    }
    assert sum(duck.tables.read(t).num_rows for t in tables) > 1000
    assert differences(duck, spark) == []
    built_by_spark = [t for t in tables if spark.tables.read(t).num_rows]
    assert built_by_spark and all(spark_written(spark, t) for t in built_by_spark)
    assert not any(spark_written(duck, t) for t in built_by_spark)
    # timestamps are TIMESTAMP_MICROS and the schema is the header's, as DuckDB writes them
    for t in tables:
        assert spark.tables.schema(t) == duck.tables.schema(t), t


def test_late_data_invariant_on_spark(tmp_path: Path, cluster: Cluster) -> None:
    with dg.instance_for_test() as instance:
        game = GameLake(settings_for(tmp_path / "late", "iceberg", cluster), instance)
        order = [*arrivals(), replacement()]
        for batch in (order[:5], order[5:]):
            for arrival in batch:
                game.lh.landing.write_arrow(arrival.path, arrival.table)
            game.catch_up()
            game.assert_matches_full_recompute()
        assert spark_written(game.lh, TableId("game_db", "ads_retention_daily"))


def test_scan_on_spark_killed_before_its_commit_recovers(tmp_path: Path, cluster: Cluster) -> None:
    """SIGKILL right after Spark wrote an ADS partition's Parquet and before the table store
    committed it: the partition is not there (work left to redo, never falsely done); the next scan
    builds it, and every table equals the DuckDB build of the same files."""
    reference = settings_for(tmp_path / "reference", "iceberg", None)
    generate_iov(
        Lakehouse(reference).landing, hours=2, vehicles=4, start=dt.datetime(2025, 9, 17, 18), junk=False
    )
    duck = build(reference)
    home = tmp_path / "killed"
    env = clean_env(
        dict(os.environ),
        LAKEHOUSE_HOME=str(home),
        LAKEHOUSE_ENGINE="spark",
        LAKEHOUSE_SPARK_REMOTE=cluster.url,
        DAGSTER_HOME=str(tmp_path / "dagster_home"),
    )
    (tmp_path / "dagster_home").mkdir()
    lh = Lakehouse(LakehouseSettings.from_env(env))
    generate_iov(lh.landing, hours=2, vehicles=4, start=dt.datetime(2025, 9, 17, 18), junk=False)
    killed = subprocess.run(
        [str(LAKEHOUSE), "scan"],
        env={**env, "LAKEHOUSE_FAILPOINT": "model.write:ads_vehicle_hourly_stat"},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=REPO,
    )
    assert killed.returncode == -9, killed.stderr[-2000:]
    ads = TableId("iov", "ads_vehicle_hourly_stat")
    lh = Lakehouse(LakehouseSettings.from_env(env))
    staged = list(
        (home / "warehouse" / "iov" / "ads_vehicle_hourly_stat" / "data").glob("_engine_*/**/*.parquet")
    )
    assert staged, "Spark had written the partition before the kill"
    assert not lh.tables.exists(ads) or lh.tables.read(ads).num_rows < duck.tables.read(ads).num_rows
    again = subprocess.run(
        [str(LAKEHOUSE), "scan"], env=env, capture_output=True, text=True, timeout=600, check=False, cwd=REPO
    )
    assert again.returncode == 0, again.stderr[-2000:]
    assert differences(duck, Lakehouse(LakehouseSettings.from_env(env))) == []


def test_dagster_asset_materialize_on_spark(tmp_path: Path, cluster: Cluster) -> None:
    home = tmp_path / "cli"
    env = clean_env(
        dict(os.environ),
        LAKEHOUSE_HOME=str(home),
        LAKEHOUSE_ENGINE="spark",
        LAKEHOUSE_SPARK_REMOTE=cluster.url,
        DAGSTER_HOME=str(tmp_path / "dagster_home"),
    )
    (tmp_path / "dagster_home").mkdir()
    lh = Lakehouse(LakehouseSettings.from_env(env))
    generate_iov(lh.landing, hours=1, vehicles=3, start=dt.datetime(2025, 9, 17, 23), junk=False)
    subprocess.run([str(LAKEHOUSE), "scan", "--plan"], env=env, cwd=REPO, check=True, capture_output=True)
    done = subprocess.run(
        [
            str(BIN / "dagster"),
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
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lh = Lakehouse(LakehouseSettings.from_env(env))
    ads = TableId("iov", "ads_vehicle_hourly_stat")
    assert lh.tables.read(ads).num_rows == 3
    assert spark_written(lh, ads)


def test_cluster_listens_on_loopback_only(cluster: Cluster) -> None:
    pids = set(cluster.pids.values())
    for proc in Path("/proc").iterdir():  # the executors are the workers' children
        if proc.name.isdigit():
            try:
                parent = int((proc / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent in cluster.pids.values():
                pids.add(int(proc.name))
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    ours = [line for line in listening.splitlines() if any(f"pid={pid}," in line for pid in pids)]
    assert len(pids) > len(cluster.pids), "the workers run executors"
    assert ours, listening
    for line in ours:
        local = line.split()[3]
        assert local.startswith(("127.0.0.1:", "[::ffff:127.0.0.1]:")), line
    status = subprocess.run(
        [str(LAKEHOUSE), "spark", "status"],
        env=clean_env(dict(os.environ), LAKEHOUSE_HOME=str(cluster.home)),
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout.count("running") == len(cluster.pids) == 4
    assert status.stdout.strip().splitlines()[-1] == cluster.url


def test_an_unreachable_cluster_is_a_clear_error(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "nowhere", "iceberg", Cluster("sc://127.0.0.1:9", tmp_path, {}))
    lh = Lakehouse(settings)
    generate_iov(lh.landing, hours=1, vehicles=2, start=dt.datetime(2025, 9, 17, 23), junk=False)
    from lakehouse.engines.base import QueryError

    with pytest.raises(
        QueryError, match=r"cannot reach Spark Connect at sc://127\.0\.0\.1:9 \(LAKEHOUSE_SPARK_REMOTE\)"
    ):
        _ = lh.engine.spark  # type: ignore[attr-defined]


def test_masked_share_is_a_spark_view_refreshed_on_new_snapshots(tmp_path: Path, cluster: Cluster) -> None:
    """`lakehouse share spark`: the third party's own Spark session reads, in one line, what
    RAM$alice may see of the ADS table (masked VINs only), and the next snapshot after a publish."""
    from pyspark.sql import SparkSession

    from lakehouse.governance.policy_apply import apply_policy
    from tests.helpers.governed import ALICE, MASKED, SEED_POLICY, VINS, land_vehicles
    from tests.helpers.pipeline import Pipeline, gps

    settings = LakehouseSettings.for_home(tmp_path / "gov")
    with dg.instance_for_test() as instance:
        pipeline = Pipeline(settings, instance)
        land_vehicles(pipeline)
        pipeline.scan()
        lh = Lakehouse(settings)
        apply_policy(lh, SEED_POLICY.read_text(), "iov", str(SEED_POLICY))
        env = clean_env(
            dict(os.environ), LAKEHOUSE_HOME=str(settings.home), LAKEHOUSE_SPARK_REMOTE=cluster.url
        )
        argv = [
            str(LAKEHOUSE),
            "share",
            "spark",
            "--user",
            ALICE,
            "--table",
            "iov.ads_vehicle_hourly_stat",
            "--to",
            str(tmp_path / "share"),
            "--spark-table",
            "iov_share.ads_vehicle_hourly_stat",
        ]
        first = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert first.returncode == 0, first.stderr[-2000:]
        assert "published" in first.stdout
        reader = SparkSession.builder.remote(cluster.url).create()  # the Spark team's own session
        try:
            rows = reader.table("iov_share.ads_vehicle_hourly_stat").collect()
            assert sorted(r["vin"] for r in rows) == sorted(MASKED.values())
            assert not any(vin in str(rows) for vin in VINS)
            again = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
            assert again.returncode == 0 and "unchanged" in again.stdout, again.stdout + again.stderr
            pipeline.land(
                [gps(VINS[0], f"2025-09-18 00:{m:02d}:00", lng=120.0 + m / 1000) for m in range(0, 60, 10)],
                dt="2025-09-18",
                hh="00",
            )
            pipeline.scan()
            third = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, check=False)
            assert third.returncode == 0 and "published" in third.stdout, third.stderr[-2000:]
            rows = reader.table("iov_share.ads_vehicle_hourly_stat").collect()
            assert len(rows) == 4 and {r["stat_hour"] for r in rows} == {"2025-09-17 23", "2025-09-18 00"}
            assert not any(vin in str(rows) for vin in VINS)
        finally:
            reader.stop()
    audited = (
        Lakehouse(settings)
        .sql("select user_name, status from lakehouse.audit where kind = 'export' order by id")
        .to_pylist()
    )
    assert [(a["user_name"], a["status"]) for a in audited] == [(ALICE, "ok"), (ALICE, "ok")], audited
