"""The dashboard's query functions (lakehouse/serving/dashboard_data.py) over a stand-in for the facade:
what they ask `lh.sql` for, as whom, and what they make of a refusal or a failure."""

from __future__ import annotations

import datetime as dt
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from lakehouse.engines.base import QueryError
from lakehouse.governance.store import PermissionDenied
from lakehouse.serving import dashboard_data as d

HOURLY = pd.DataFrame(
    {
        "vin": ["VIN001", "VIN011", "VIN002", "VIN001", "VIN011"],
        "stat_hour": ["2025-09-17 18", "2025-09-17 18", "2025-09-17 18", "2025-09-18 09", "2025-09-18 09"],
        "total_distance": [10.0, 20.0, 5.0, 1.0, 2.0],
        "avg_speed": [50.0, 60.0, 70.0, 40.0, 30.0],
        "dt": ["2025-09-17", "2025-09-17", "2025-09-17", "2025-09-18", "2025-09-18"],
    }
)


class FakeLakehouse:
    """`sql(query, user=...)` over in-memory tables; a user reads iov only, with vin masked (the
    seed's MASKED_STRING_UNMASKED_BA(1, 1)); `fail` makes every query fail with that exception."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.fail = fail
        self.calls: list[tuple[str, str | None]] = []

    def sql(self, query: str, user: str | None = None) -> pa.Table:
        self.calls.append((query, user))
        if self.fail is not None:
            raise self.fail
        if user is not None and "game_db." in query:
            raise PermissionDenied(f"{user} (role thirdparty) has no CreateInstance on project game_db")
        hourly = HOURLY.copy()
        if user is not None:
            hourly["vin"] = hourly["vin"].map(lambda v: v[0] + "*" * (len(v) - 2) + v[-1])
        con = duckdb.connect()
        con.execute("create schema iov")
        con.register("hourly_view", hourly)
        con.execute("create table iov.ads_vehicle_hourly_stat as select * from hourly_view")
        return con.sql(query).to_arrow_table()


def test_the_owner_gets_totals_hours_and_top_vehicles_of_the_days_asked() -> None:
    lh = FakeLakehouse()
    data = d.fleet(lh, None, d.DateRange(dt.date(2025, 9, 17), dt.date(2025, 9, 17)))  # type: ignore[arg-type]
    assert data.totals.frame is not None
    assert data.totals.frame.iloc[0]["total_km"] == 35.0
    assert not data.per_hour
    assert data.top_mileage.frame is not None
    assert data.top_mileage.frame["vehicle"].tolist() == ["VIN011", "VIN001", "VIN002"]
    assert data.top_speed.frame is not None
    assert data.top_speed.frame["vehicle"].tolist() == ["VIN002", "VIN011", "VIN001"]
    assert {user for _, user in lh.calls} == {None}


def test_ambiguous_masked_ids_rank_vehicle_hours_instead_of_adding_vehicles_up() -> None:
    lh = FakeLakehouse()
    data = d.fleet(lh, "RAM$alice")  # type: ignore[arg-type]
    assert data.per_hour  # VIN001 and VIN011 are both V****1
    assert data.top_mileage.frame is not None
    assert data.top_mileage.frame["vehicle"].tolist()[:2] == [
        "1. V****1 @ 2025-09-17 18",
        "2. V****1 @ 2025-09-17 18",
    ]
    assert data.top_mileage.frame["total_km"].tolist()[:2] == [20.0, 10.0]
    assert {user for _, user in lh.calls} == {"RAM$alice"}


def test_a_table_the_user_may_not_read_is_a_short_note() -> None:
    data = d.games(FakeLakehouse(), "RAM$alice")  # type: ignore[arg-type]
    for result in (data.retention, data.purchases, data.devices, data.regions):
        assert result.frame is None
        assert result.note == f"no access to {result.table}"
    assert d.game_totals(data) == d.GameTotals()


@pytest.mark.parametrize(
    ("error", "note"),
    [
        (QueryError("table iov.ads_vehicle_hourly_stat does not exist"), "no data yet in"),
        (QueryError("Binder Error: secret /home/x/catalog.db"), "could not read"),
        (RuntimeError("s3://bucket?key=SECRET"), "could not read"),
    ],
)
def test_failures_show_no_details(error: Exception, note: str) -> None:
    result = d.fleet(FakeLakehouse(fail=error), None).totals  # type: ignore[arg-type]
    assert result.note == f"{note} {d.IOV}"


def test_dates_are_a_predicate_on_dt() -> None:
    assert d.DateRange().where() == "true"
    assert d.DateRange(dt.date(2025, 9, 1), dt.date(2025, 9, 3)).where() == (
        "dt >= '2025-09-01' and dt <= '2025-09-03'"
    )


def test_game_totals_take_the_last_day() -> None:
    frame: Any = pd.DataFrame({"dt": ["2025-09-01", "2025-09-02"], "dau": [10, 12]})
    purchases: Any = pd.DataFrame(
        {"dt": ["2025-09-01", "2025-09-02"], "gmv": [1.5, 2.25], "paying_users": [3, 4]}
    )
    data = d.Games(
        retention=d.Result(d.RETENTION, frame),
        purchases=d.Result(d.PURCHASES, purchases),
        devices=d.Result(d.DEVICES, note="x"),
        regions=d.Result(d.REGIONS, note="x"),
    )
    assert d.game_totals(data) == d.GameTotals(last_day="2025-09-02", dau=12, gmv=3.75, paying_users=4)


def test_tables_the_user_may_not_read_are_not_queried() -> None:
    lh = FakeLakehouse()
    data = d.games(lh, "RAM$alice", readable={d.IOV})  # type: ignore[arg-type]
    assert lh.calls == []
    for result in (data.retention, data.purchases, data.devices, data.regions):
        assert result.hidden and result.frame is None and result.note is None
    assert d.game_totals(data) == d.GameTotals()
    assert d.date_bounds(lh, "RAM$alice", {d.IOV}) == (dt.date(2025, 9, 17), dt.date(2025, 9, 18))  # type: ignore[arg-type]
    assert [q for q, _ in lh.calls] == [f"select min(dt) as first, max(dt) as last from {d.IOV}"]
    assert not d.Result(d.IOV, note="no access").hidden
