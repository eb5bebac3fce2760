"""Snapshots and time travel, both formats: lakehouse.snapshots, `lakehouse sql --as-of`, the Python
API, and masks holding on an old snapshot."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from lakehouse.core.settings import LakehouseSettings
from lakehouse.engines.base import QueryError
from lakehouse.facade import Lakehouse
from lakehouse.governance.policy_apply import apply_policy
from lakehouse.governance.store import PermissionDenied
from tests.helpers.env import clean_env
from tests.helpers.governed import ALICE, MASKED, SEED_POLICY, VINS, assert_no_raw_vin, land_vehicles
from tests.helpers.pipeline import Pipeline, gps

ADS = "iov.ads_vehicle_hourly_stat"


@dataclass
class History:
    lh: Lakehouse
    settings: LakehouseSettings
    first: str
    """The ADS table's snapshot after the first hour."""
    between: dt.datetime
    """A time after the first hour's build and before the second's."""


@pytest.fixture(scope="module", params=["iceberg", "delta"])
def history(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    settings = LakehouseSettings.for_home(
        tmp_path_factory.mktemp(f"tt-{request.param}") / "lh", table_format=request.param
    )
    with dg.instance_for_test() as instance:
        pipeline = Pipeline(settings, instance)
        land_vehicles(pipeline)  # 2025-09-17 hh=23, three vehicles
        pipeline.scan()
        lh = Lakehouse(settings)
        first = lh.tables.pinned(lh.canonical("iov", "ads_vehicle_hourly_stat")).version
        assert first is not None
        time.sleep(0.05)
        between = dt.datetime.now(dt.UTC)
        time.sleep(0.05)
        hour = [gps(v, "2025-09-18 00:05:00") for v in VINS] + [
            gps(v, "2025-09-18 00:35:00", lng=120.2) for v in VINS
        ]
        pipeline.land(hour, dt="2025-09-18", hh="00")
        pipeline.scan()
    apply_policy(lh, SEED_POLICY.read_text(), "iov", str(SEED_POLICY))
    yield History(lh, settings, first, between)


def test_snapshots_system_table_lists_every_table_and_the_current_one(history: History) -> None:
    rows = history.lh.sql(
        f"select * from lakehouse.snapshots where \"table\" = '{ADS}' order by committed_at"
    ).to_pylist()
    assert {"table", "snapshot_id", "committed_at", "operation", "rows"} <= set(rows[0])
    assert history.first in [r["snapshot_id"] for r in rows]
    current = [r for r in rows if r["is_current"]]
    assert len(current) == 1 and current[0] == rows[-1]
    assert current[0]["rows"] == 2 * len(VINS)
    assert [r["rows"] for r in rows if r["snapshot_id"] == history.first] == [len(VINS)]
    tables = {
        r["table"] for r in history.lh.sql('select distinct "table" from lakehouse.snapshots').to_pylist()
    }
    assert {ADS, "iov.dwd_vehicle_gps", "iov.ods_vehicle_gps_raw"} <= tables
    with pytest.raises(PermissionDenied, match="system tables are the owner's"):
        history.lh.sql("select * from lakehouse.snapshots", user=ALICE)


def test_sql_as_of_a_snapshot_id_and_a_time(history: History) -> None:
    count = f"select count(*) as n from {ADS}"
    assert history.lh.sql(count).to_pylist() == [{"n": 2 * len(VINS)}]
    assert history.lh.sql(count, as_of=history.first).to_pylist() == [{"n": len(VINS)}]
    assert history.lh.sql(count, as_of=history.between.isoformat()).to_pylist() == [{"n": len(VINS)}]
    naive_utc = history.between.replace(tzinfo=None).isoformat()  # no offset: UTC
    assert history.lh.sql(count, as_of=naive_utc).to_pylist() == [{"n": len(VINS)}]
    with pytest.raises(QueryError, match="no snapshot at or before"):
        history.lh.sql(count, as_of="2001-01-01T00:00:00Z")
    with pytest.raises(QueryError, match="has no (snapshot|version)"):
        history.lh.sql(count, as_of="999999999")
    join = f"select count(*) as n from {ADS} a join iov.dwd_vehicle_gps d using (vin)"
    with pytest.raises(QueryError, match="names one table's snapshot"):
        history.lh.sql(join, as_of=history.first)
    assert history.lh.sql(join, as_of=history.between.isoformat()).to_pylist()[0]["n"] > 0


def test_read_table_of_a_snapshot(history: History) -> None:
    old = history.lh.read_table(ADS, snapshot=history.first)
    assert old.num_rows == len(VINS) and set(old.column("stat_hour").to_pylist()) == {"2025-09-17 23"}
    masked = history.lh.read_table(ADS, user=ALICE, snapshot=history.first, partition={"dt": "2025-09-17"})
    assert sorted(masked.column("vin").to_pylist()) == sorted(MASKED.values())


def test_masks_hold_on_an_old_snapshot(history: History) -> None:
    rows = history.lh.sql(f"select * from {ADS}", user=ALICE, as_of=history.first).to_pylist()
    assert len(rows) == len(VINS)
    assert_no_raw_vin(rows)
    audit = history.lh.sql(
        "select statement, status, masked_columns from lakehouse.audit order by id desc limit 3"
    )
    latest = [r for r in audit.to_pylist() if r["statement"] and "as of" in r["statement"]][0]
    assert latest["status"] == "ok" and f"as of {history.first}" in latest["statement"]
    assert latest["masked_columns"] == f"{ADS}.vin:MASKED_STRING_UNMASKED_BA"


def test_cli_as_of(history: History) -> None:
    env = clean_env(
        dict(os.environ),
        LAKEHOUSE_HOME=history.settings.home,
        LAKEHOUSE_TABLE_FORMAT=history.settings.table_format,
    )
    lakehouse = str(Path(sys.executable).parent / "lakehouse")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([lakehouse, *args], env=env, capture_output=True, text=True, timeout=120)

    done = run("sql", f"select count(*) as n from {ADS}", "--as-of", history.first, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f'[{{"n": {len(VINS)}}}]'
    wrong = run("sql", f"select count(*) from {ADS}", "--as-of", "not-a-time")
    assert wrong.returncode != 0 and "give a snapshot id" in wrong.stderr
