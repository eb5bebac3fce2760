"""Two real `dagster-daemon`s and a `lakehouse scan`, each with its own Dagster instance, share one
lakehouse catalog on a real PostgreSQL server (started by the test on 127.0.0.1, stopped by PID).

They race for the same stale partitions from the first instant: the namespace lease and the build
records in Postgres must make the work happen once (the materializations of all three instances add
up to what one uninterrupted in-process run builds), and nothing may be lost (the game tables equal
the independent reference over the raw files), again after late and replaced files land while the
daemons run."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from lakehouse.core.settings import LakehouseSettings
from lakehouse.facade import Lakehouse
from lakehouse_assets.definitions import build_definitions
from sensors.run_once import catch_up
from tests.e2e.test_e2e_game_daemon import wait_until_equal, wait_until_idle
from tests.helpers.daemon import instance_at, running_daemon
from tests.helpers.env import clean_env
from tests.helpers.game import arrivals, differences, replacement
from tests.helpers.paths import BIN, REPO
from tests.helpers.postgres import PASSWORD

pytestmark = pytest.mark.e2e


def materialized(dagster_home: Path) -> list[tuple[str, str | None]]:
    """(asset, partition) of every materialization recorded in the instance."""
    with instance_at(dagster_home) as instance:
        records = instance.get_event_records(dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION))
        return [
            (r.asset_key.to_user_string() if r.asset_key else "", r.partition_key)
            for r in records
            if r.event_log_entry.dagster_event is not None
        ]


def one_run_builds(tmp_path: Path) -> int:
    """Partitions one uninterrupted in-process run builds for batch 1, on the SQLite defaults."""
    settings = LakehouseSettings.for_home(tmp_path / "baseline", table_format="iceberg")
    lh = Lakehouse(settings)
    for arrival in arrivals()[:5]:
        lh.landing.write_arrow(arrival.path, arrival.table)
    with dg.instance_for_test() as instance:
        result = catch_up(build_definitions(settings), instance, log_level="ERROR")
    assert result.failed == 0
    return sum(result.built.values())


def ticking(logs: list[Path], timeout: float = 120) -> None:
    """Wait until each daemon's DataScan sensor has ticked at least once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all("sensor: datascan" in log.read_text(errors="replace") for log in logs):
            return
        time.sleep(0.5)
    pytest.fail("the daemons' sensors did not tick:\n" + "\n".join(log.read_text()[-2000:] for log in logs))


def test_two_daemons_and_a_scan_on_one_postgres_catalog_do_the_work_once(
    tmp_path: Path, postgres_catalog: str
) -> None:
    expected_builds = one_run_builds(tmp_path)
    homes = [tmp_path / name for name in ("dagster_a", "dagster_b", "dagster_scan")]
    for home in homes:
        home.mkdir()
    base = clean_env(
        dict(os.environ),
        LAKEHOUSE_HOME=str(tmp_path / "lh"),
        LAKEHOUSE_CATALOG_URI=postgres_catalog,
        LAKEHOUSE_SCAN_INTERVAL_SECONDS="2",
        LAKEHOUSE_TABLE_FORMAT="iceberg",
    )
    settings = LakehouseSettings.from_env(base)
    lh = Lakehouse(settings)
    order = arrivals()
    logs = [tmp_path / f"{home.name}.log" for home in homes]

    with (
        running_daemon({**base, "DAGSTER_HOME": str(homes[0])}, logs[0]),
        running_daemon({**base, "DAGSTER_HOME": str(homes[1])}, logs[1]),
    ):
        ticking(logs[:2])  # both sensors tick on the empty landing: the race starts with batch 1
        for arrival in order[:5]:
            lh.landing.write_arrow(arrival.path, arrival.table)
        with logs[2].open("ab") as out:
            scan = subprocess.run(
                [str(BIN / "lakehouse"), "scan"],
                cwd=REPO,
                env={**base, "DAGSTER_HOME": str(homes[2])},
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=300,
            )
        assert scan.returncode == 0, logs[2].read_text()[-3000:]
        wait_until_equal(lh, logs)
        for home, log in zip(homes[:2], logs[:2], strict=True):
            wait_until_idle(home, log)
        by_home = {home.name: materialized(home) for home in homes}
        first = [m for found in by_home.values() for m in found]
        print({name: len(found) for name, found in by_home.items()}, "of", expected_builds)
        # the work of batch 1 happened once, whoever did it
        assert len(first) == expected_builds, sorted(first)
        assert len(set(first)) == len(first), "a partition was built twice"

        # late events, a profile update and a file replaced in place, while both daemons run
        for arrival in [*order[5:], replacement()]:
            lh.landing.write_arrow(arrival.path, arrival.table)
        wait_until_equal(lh, logs)
        for home, log in zip(homes[:2], logs[:2], strict=True):
            wait_until_idle(home, log)

    assert not differences(lh)
    for home in homes:
        with instance_at(home) as instance:
            statuses = {r.dagster_run.status for r in instance.get_run_records()}
        assert statuses <= {dg.DagsterRunStatus.SUCCESS}, (home.name, statuses)
    # both daemons took part in the race (each ticked its sensor against the shared catalog)
    for log in logs[:2]:
        assert "sensor: datascan" in log.read_text(errors="replace"), log.name
    for log in logs:
        assert PASSWORD not in log.read_text(errors="replace"), f"the database password is in {log.name}"
