"""Crash recovery, tested by killing processes: `lakehouse scan` is SIGKILLed at a failpoint (mid-write,
right after a table commit, inside the bookkeeping transaction, between tables), then a new scan
recovers. Afterwards every table equals, row for row, the same landing reconciled without a crash,
and a further scan finds nothing stale (no work falsely done, none repeated forever).

The scenario is the game pipeline with late data: a first batch is reconciled, then a second one
lands (late events for old days, a profile update that changes dwd_user_details, an event file
replaced in place) and its scan is the one killed. Each point starts from a copy of the same state.
Also here: two scans at once. The randomized sweep (kills at random instants) is
tests/integration/test_crash_sweep.py, marked `sweep` (make bench).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from lakehouse.core.ids import TableId
from lakehouse.core.settings import LakehouseSettings
from lakehouse.facade import Lakehouse
from lakehouse.storage.catalog import CatalogDB
from lakehouse_assets.definitions import build_definitions
from sensors.run_once import catch_up
from tests.helpers.daemon import instance_at
from tests.helpers.env import clean_env
from tests.helpers.game import arrivals, differences, replacement
from tests.helpers.paths import BIN, REPO

LAKEHOUSE = BIN / "lakehouse"
NAMESPACE = "game_db"


def table_rows(lh: Lakehouse) -> dict[str, list[str]]:
    """Every table of the namespace, rows as sorted reprs (ODS tables included)."""
    found = {}
    for record in lh.table_records(NAMESPACE):
        ident = TableId(record.namespace, record.name)
        rows = lh.tables.read(ident).to_pylist()
        found[record.name] = sorted(repr(sorted(r.items())) for r in rows)
    return found


@dataclass
class Scenario:
    home: Path
    """Where the lakehouse lives (absolute paths are in its metadata: each point restores here)."""
    template: Path
    table_format: str
    expected: dict[str, list[str]]
    batch2_built: int = 0
    """Partitions the uninterrupted reconcile of batch 2 materialized."""

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(
            dict(os.environ),
            LAKEHOUSE_HOME=str(self.home),
            DAGSTER_HOME=str(self.home / "dagster_home"),
            LAKEHOUSE_TABLE_FORMAT=self.table_format,
            **extra,
        )

    def settings(self) -> LakehouseSettings:
        return LakehouseSettings.for_home(self.home, table_format=self.table_format)

    def restore(self) -> None:
        CatalogDB.dispose_all()  # this process's pooled connections point at the files replaced here
        shutil.rmtree(self.home, ignore_errors=True)
        shutil.copytree(self.template, self.home, symlinks=True)

    def scan(self, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(LAKEHOUSE), "scan"],
            cwd=REPO,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=300,
        )

    def catch_up_in_process(self) -> Any:
        (self.home / "dagster_home").mkdir(parents=True, exist_ok=True)
        with instance_at(self.home / "dagster_home") as instance:
            return catch_up(build_definitions(self.settings()), instance, log_level="ERROR")


def _land(lh: Lakehouse, batch: list[Any]) -> None:
    for arrival in batch:
        lh.landing.write_arrow(arrival.path, arrival.table)


_scenarios: dict[str, Scenario] = {}


def scenario(tmp_path_factory: pytest.TempPathFactory, table_format: str) -> Scenario:
    """Batch 1 reconciled, batch 2 landed (saved as the template); expected = batch 2 reconciled."""
    if table_format in _scenarios:
        return _scenarios[table_format]
    root = tmp_path_factory.mktemp(f"crash-{table_format}")
    found = Scenario(root / "lh", root / "template", table_format, {})
    os.environ.pop("LAKEHOUSE_FAILPOINT", None)
    lh = Lakehouse(found.settings())
    order = arrivals()
    _land(lh, order[:5])
    assert found.catch_up_in_process().failed == 0
    _land(lh, [*order[5:], replacement()])
    shutil.copytree(found.home, found.template, symlinks=True)
    found.restore()  # a copy gives the files new inodes (part of a local fingerprint), as every point's
    second = found.catch_up_in_process()
    assert second.failed == 0
    found.batch2_built = sum(second.built.values())
    assert not differences(lh)
    found.expected = table_rows(lh)
    _scenarios[table_format] = found
    return found


POINTS = [
    "ods.write:ods_user_event@2",  # mid-stream, before the commit
    "ods.committed:ods_user_event",  # the hours committed, no manifest nor build record yet
    "ods.committed:ods_user_profile",
    "model.write:dwd_user_event@2",  # hours computed, not committed
    "model.committed:dwd_user_event",
    "model.committed:dwd_user_details",  # the dimension rewritten, its key changes unrecorded
    "catalog.commit:dwd_user_details",  # inside the transaction recording it
    "model.write:dws_user_activity_daily@3",  # a daily rebuild, mid-range
    "model.committed:dws_user_activity_daily",
    "catalog.commit:dws_user_event_hourly",
    "catalog.commit:ads_retention_daily",
    "reconcile.pass:dws_user_activity_daily",  # between two tables
]
DELTA_POINTS = [
    "ods.committed:ods_user_event",
    "model.committed:dwd_user_details",
    "catalog.commit:dws_user_event_hourly",
]


@pytest.mark.parametrize(
    ("table_format", "point"),
    [("iceberg", p) for p in POINTS] + [("delta", p) for p in DELTA_POINTS],
)
def test_sigkill_at_a_failpoint_then_recovery(
    tmp_path_factory: pytest.TempPathFactory, table_format: str, point: str
) -> None:
    case = scenario(tmp_path_factory, table_format)
    case.restore()
    killed = case.scan(LAKEHOUSE_FAILPOINT=point)
    assert killed.returncode == -9, (
        f"the failpoint {point} was not reached:\n{killed.stdout}\n{killed.stderr[-2000:]}"
    )
    lh = Lakehouse(case.settings())
    recovered = case.scan()
    assert recovered.returncode == 0, recovered.stderr[-3000:]
    assert "reconcile run(s) succeeded" in recovered.stdout, recovered.stdout
    assert table_rows(lh) == case.expected, f"tables differ after a crash at {point}"
    again = case.catch_up_in_process()
    assert again.requested == 0, f"still stale after recovery from {point}: {again.first_skip_reason}"
    with instance_at(case.home / "dagster_home") as instance:
        statuses = [r.dagster_run.status.value for r in instance.get_run_records()]
    assert "STARTED" not in statuses, f"the killed run was not noticed: {statuses}"
    assert "FAILURE" in statuses


def materializations(home: Path) -> int:
    with instance_at(home / "dagster_home") as instance:
        records = instance.get_event_records(dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION))
        return len(records)


def test_two_scans_at_once_do_the_work_once(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Both exit 0 with the right tables; batch 2 is built by one reconcile run, once (the other
    scan waits for it, then finds nothing stale)."""
    case = scenario(tmp_path_factory, "iceberg")
    case.restore()
    before = materializations(case.home)
    procs = [
        subprocess.Popen(
            [str(LAKEHOUSE), "scan"],
            cwd=REPO,
            env=case.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert table_rows(Lakehouse(case.settings())) == case.expected
    with instance_at(case.home / "dagster_home") as instance:
        runs = [r.dagster_run for r in instance.get_run_records() if r.dagster_run.job_name == "reconcile"]
        built = {
            r.run_id: len(instance.all_logs(r.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION))
            for r in runs
        }
    assert {r.status.value for r in runs} == {"SUCCESS"}
    # batch 1's run, then batch 2 built by one run (the other scan's run, if it started one before
    # the first run held the lease, waited for it and found nothing stale)
    assert len([n for n in built.values() if n]) == 2, built
    assert materializations(case.home) - before == case.batch2_built, "no partition built twice"
