"""The game pipeline under the real `dagster-daemon`: profiles and events land, and with no human
action the daemon's sensors (DataScan, propagate) and its automation (retention over d, d+1, d+7)
bring dwd_user_details and every ADS table to the independent reference over the raw files
(tests/helpers/game_reference.py); then a late file of an old day lands and they converge again.
The test starts the daemon and stops it by process group."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from lakehouse.core.settings import LakehouseSettings
from lakehouse.demo.game import event_path, events, profile_path, profiles
from lakehouse.facade import Lakehouse
from tests.helpers import game_reference
from tests.helpers.daemon import instance_at, running_daemon
from tests.helpers.game import differences as game_differences

pytestmark = pytest.mark.e2e
START = dt.date(2025, 9, 1)
USERS = 120


def differences(lh: Lakehouse) -> list[str]:
    """The tables that differ from the reference (game_reference) over the raw files so far."""
    return game_differences(lh, game_reference.COMPARED_TABLES)


def wait_until_equal(lh: Lakehouse, log: Path, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    wrong = ["not checked yet"]
    while time.monotonic() < deadline:
        try:
            wrong = differences(lh)
        except Exception as exc:  # noqa: BLE001 - tables appear while we look
            wrong = [repr(exc)]
        if not wrong:
            return
        time.sleep(2)
    tail = log.read_text(errors="replace")[-5000:]
    pytest.fail(f"game tables did not converge in {timeout}s: {wrong}\nDaemon log tail:\n{tail}")


def wait_until_idle(dagster_home: Path, log: Path, timeout: float = 180) -> None:
    """No run queued or running for a few seconds: the daemon has nothing left in flight."""
    busy = [
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.QUEUED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
    ]
    deadline = time.monotonic() + timeout
    quiet = 0
    while time.monotonic() < deadline:
        with instance_at(dagster_home) as instance:
            running = instance.get_runs_count(dg.RunsFilter(statuses=busy))
        quiet = quiet + 1 if not running else 0
        if quiet >= 3:
            return
        time.sleep(2)
    pytest.fail(f"runs still in flight after {timeout}s\nDaemon log tail:\n{log.read_text()[-3000:]}")


def test_daemon_brings_game_ads_up_to_date_and_again_after_late_data(
    tmp_path: Path, table_format: str
) -> None:
    home, dagster_home, log = tmp_path / "lh", tmp_path / "dagster_home", tmp_path / "daemon.log"
    dagster_home.mkdir()
    env = {
        **os.environ,
        "LAKEHOUSE_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "LAKEHOUSE_SCAN_INTERVAL_SECONDS": "2",
        "LAKEHOUSE_TABLE_FORMAT": table_format,
    }
    lh = Lakehouse(LakehouseSettings.from_env(env))
    lh.landing.write_arrow(profile_path(START, 0, "profiles"), profiles(USERS, START, seed=1))
    for day in range(3):
        date = START + dt.timedelta(days=day)
        begin = dt.datetime.combine(date, dt.time(0))
        lh.landing.write_arrow(
            event_path(date, 0, "events"),
            events(begin, 500, USERS, seed=day, late_fraction=0.05, late_days=2, hours=24),
        )
    with running_daemon(env, log):
        wait_until_equal(lh, log)
        before = {r["dt"]: r for r in lh.sql("select * from game_db.ads_retention_daily").to_pylist()}
        # a late file for day 1: other players, landing after everything else was processed
        late = events(dt.datetime.combine(START, dt.time(0)), 300, USERS, seed=77, hours=24, cohort=5)
        lh.landing.write_arrow(event_path(START, 0, "late"), late)
        wait_until_equal(lh, log)
        wait_until_idle(dagster_home, log)  # stopping the daemon would interrupt a run still in flight
    after = {r["dt"]: r for r in lh.sql("select * from game_db.ads_retention_daily").to_pylist()}
    assert after[str(START)]["dau"] > before[str(START)]["dau"]

    with instance_at(dagster_home) as instance:
        records = instance.get_run_records()
        tags = [r.dagster_run.tags for r in records]
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
    assert any(t.get("lakehouse/datascan") == "true" for t in tags)
    assert any(t.get("lakehouse/propagate") == "true" for t in tags)
    assert any("dagster/automation_condition" in k or "automation" in k for t in tags for k in t)
