"""The game pipeline under the real `dagster-daemon`: profiles and events land, and with no human
action the daemon's DataScan sensor and the reconcile runs it launches (retention over d, d+1, d+7
included) bring dwd_user_details and every ADS table to the independent reference over the raw files
(tests/helpers/game_reference.py); then a late file of an old day lands and they converge again.
A run killed mid-build is noticed and its work redone. The tests start the daemon and stop it by
process group."""

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


def wait_until_equal(lh: Lakehouse, log: Path | list[Path], timeout: float = 300) -> None:
    """Until the game tables equal the reference; on a timeout, fail with the tail of each log."""
    logs = log if isinstance(log, list) else [log]
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
    tails = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-5000:]}" for p in logs)
    pytest.fail(f"game tables did not converge in {timeout}s: {wrong}\n{tails}")


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
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
    # few, whole runs: one reconcile run per batch of the namespace (a batch landing while a run
    # passes over the namespace is taken by that same run)
    assert {r.dagster_run.job_name for r in records} == {"reconcile"}
    assert {r.dagster_run.tags["lakehouse/namespace"] for r in records} == {"game_db"}
    assert 1 <= len(records) <= 4, [r.dagster_run.tags.get("lakehouse/reason") for r in records]


def test_daemon_notices_a_run_killed_mid_build_and_converges(tmp_path: Path) -> None:
    """SIGKILL the daemon's reconcile run process while it builds (its pid from lakehouse_workers):
    with a DAGSTER_HOME whose dagster.yaml only disables telemetry (no run monitoring), the DataScan
    sensor reports that run failed and a new run brings every table to the reference."""
    import signal

    import sqlalchemy as sa

    from lakehouse.storage.catalog_schema import builds_t
    from lakehouse.storage.leases import workers

    home, dagster_home, log = tmp_path / "lh", tmp_path / "dagster_home", tmp_path / "daemon.log"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {
        **os.environ,
        "LAKEHOUSE_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "LAKEHOUSE_SCAN_INTERVAL_SECONDS": "2",
    }
    lh = Lakehouse(LakehouseSettings.from_env(env))
    lh.landing.write_arrow(profile_path(START, 0, "profiles"), profiles(USERS, START, seed=1))
    for day in range(6):
        date = START + dt.timedelta(days=day)
        for hour in (0, 12):
            begin = dt.datetime.combine(date, dt.time(hour))
            lh.landing.write_arrow(
                event_path(date, hour, "events"),
                events(begin, 400, USERS, seed=day * 10 + hour, late_fraction=0.1, late_days=3, hours=12),
            )
    killed = None
    with running_daemon(env, log):
        deadline = time.monotonic() + 180
        while killed is None and time.monotonic() < deadline:
            with lh.catalog.engine.connect() as conn:
                built = conn.execute(sa.select(sa.func.count()).select_from(builds_t)).scalar() or 0
            running = [w for w in workers(lh.catalog) if w.run_id]
            if running and built >= 13:  # the ODS partitions are in; the models are being built
                os.kill(running[0].pid, signal.SIGKILL)
                killed = running[0].run_id
            time.sleep(0.05)
        assert killed is not None, f"no run was seen building\n{log.read_text()[-3000:]}"
        wait_until_equal(lh, log)
        wait_until_idle(dagster_home, log)
    with instance_at(dagster_home) as instance:
        record = instance.get_run_record_by_id(killed)
        assert record is not None and record.dagster_run.status == dg.DagsterRunStatus.FAILURE
        statuses = [r.dagster_run.status for r in instance.get_run_records()]
    assert statuses.count(dg.DagsterRunStatus.SUCCESS) >= 1
    assert not differences(lh)
