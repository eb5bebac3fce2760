"""The dashboard's data: plain functions of a `Lakehouse` and a user (`readable_tables`, `fleet`,
`games`, `game_totals`, `date_bounds`, `read`), unit-testable without Streamlit. Every read is the
facade's governed call `lh.sql(query, user=...)`, and only of a table governance says the user may
SELECT (`readable_tables`: asked first, nothing queried or audited for the others), so an open tab
of a user without a table writes no refused attempt to the audit at every refresh;
lakehouse/serving/dashboard.py renders what they return."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    import pandas as pd

    from lakehouse.facade import Lakehouse

log = logging.getLogger("lakehouse.dashboard")

IOV = "iov.ads_vehicle_hourly_stat"
RETENTION = "game_db.ads_retention_daily"
PURCHASES = "game_db.ads_purchase_trends_daily"
DEVICES = "game_db.ads_device_preference_daily"
REGIONS = "game_db.ads_region_distribution_daily"
TABLES = (IOV, RETENTION, PURCHASES, DEVICES, REGIONS)
GAME_TABLES = (RETENTION, PURCHASES, DEVICES, REGIONS)
TOP_VEHICLES = 10


@dataclass(frozen=True)
class DateRange:
    """Inclusive days; both None means every day."""

    first: dt.date | None = None
    last: dt.date | None = None

    def where(self, column: str = "dt") -> str:
        """A SQL predicate on a 'YYYY-MM-DD' text column (the dates are date objects, never user text)."""
        parts = []
        if self.first is not None:
            parts.append(f"{column} >= '{dt.date.isoformat(self.first)}'")
        if self.last is not None:
            parts.append(f"{column} <= '{dt.date.isoformat(self.last)}'")
        return " and ".join(parts) or "true"


@dataclass(frozen=True)
class Result:
    """What one read gave: rows, or a short note saying why there are none (safe to show); neither
    for a table the user may not read, which was not queried (`hidden`: its panel is not shown)."""

    table: str
    frame: pd.DataFrame | None = None
    note: str | None = None

    @property
    def hidden(self) -> bool:
        return self.frame is None and self.note is None


def readable_tables(lh: Lakehouse, user: str | None) -> frozenset[str]:
    """The dashboard's tables (TABLES) the user may SELECT, as governance decides it for a query
    (`authorize`: CreateInstance on the project, SELECT on the table, masks that agree): asked of
    the grants, never by a query, so nothing is refused or audited. The owner (None) reads all.
    Remembered until the policy changes (a serving lakehouse); a user that is gone reads nothing."""
    if user is None:
        return frozenset(TABLES)
    from lakehouse.core.ids import TableId
    from lakehouse.governance.store import PermissionDenied

    def decide() -> frozenset[str]:
        try:
            principal = lh.governance.resolve(user, None)
        except PermissionDenied:
            return frozenset()
        found = set()
        for table in TABLES:
            try:
                lh.governance.authorize(principal, [TableId.parse(table)])
            except PermissionDenied:
                continue
            found.add(table)
        return frozenset(found)

    decided: frozenset[str] = lh.access.memory.remembered(("dashboard readable tables", user), decide)
    return decided


def read(lh: Lakehouse, user: str | None, table: str, query: str) -> Result:
    """One governed query as a DataFrame, or a note: no access, no data yet, or a failure (its
    details go to the server's log only, never to the page)."""
    from lakehouse.engines.base import QueryError, QueryLimitExceeded
    from lakehouse.governance.store import PermissionDenied

    try:
        return Result(table, frame=lh.sql(query, user=user).to_pandas())
    except PermissionDenied:
        return Result(table, note=f"no access to {table}")
    except QueryLimitExceeded:
        return Result(table, note=f"reading {table} took too long; try a shorter date range")
    except QueryError as exc:
        if "does not exist" in str(exc):
            return Result(table, note=f"no data yet in {table}")
        log.warning("dashboard query on %s failed: %s", table, type(exc).__name__)
        return Result(table, note=f"could not read {table}")
    except Exception:  # the page's boundary: log the details server-side, show a note
        log.exception("dashboard query on %s failed", table)
        return Result(table, note=f"could not read {table}")


def date_bounds(
    lh: Lakehouse, user: str | None, tables: Iterable[str] = TABLES
) -> tuple[dt.date, dt.date] | None:
    """The first and last day of `tables` (those the user may read; None when none has rows)."""
    days: list[dt.date] = []
    for table in (t for t in TABLES if t in set(tables)):
        found = read(lh, user, table, f"select min(dt) as first, max(dt) as last from {table}")
        if found.frame is not None and len(found.frame):
            for value in found.frame.iloc[0]:
                if isinstance(value, str) and value:
                    days.append(dt.date.fromisoformat(value))
    return (min(days), max(days)) if days else None


@dataclass(frozen=True)
class Fleet:
    """The vehicle seed (iov): totals, mileage per hour, top vehicles."""

    totals: Result
    """total_km, vehicle_hours, avg_speed, vehicle_keys (one row)."""
    hourly: Result
    """stat_hour, total_km."""
    top_mileage: Result
    """vehicle, total_km, avg_speed: the vehicles (or numbered vehicle-hours) with the most mileage."""
    top_speed: Result
    """vehicle, avg_speed, total_km: the vehicles with the highest average speed."""
    per_hour: bool = False
    """True when masked ids are not unique (several vehicles share one): the top lists then rank
    vehicle-hours (one vehicle each, `vehicle` is `id @ hour`), since summing per masked id would
    add up different vehicles."""


def fleet(lh: Lakehouse, user: str | None, days: DateRange = DateRange()) -> Fleet:
    where = days.where()
    totals = read(
        lh,
        user,
        IOV,
        "select coalesce(sum(total_distance), 0) as total_km, count(*) as vehicle_hours, "
        "avg(avg_speed) as avg_speed, count(distinct vin || ' ' || stat_hour) as vehicle_keys "
        f"from {IOV} where {where}",
    )
    # the ADS table has one row per vehicle and hour: fewer distinct (id, hour) than rows means
    # masking made ids ambiguous
    per_hour = bool(
        totals.frame is not None
        and len(totals.frame)
        and int(totals.frame.iloc[0]["vehicle_keys"]) < int(totals.frame.iloc[0]["vehicle_hours"])
    )
    if per_hour:
        ranked = (
            f"select vin || ' @ ' || stat_hour as vehicle, total_distance as total_km, avg_speed "
            f"from {IOV} where {where}"
        )
    else:
        ranked = (
            f"select vin as vehicle, sum(total_distance) as total_km, avg(avg_speed) as avg_speed "
            f"from {IOV} where {where} group by vin"
        )
    top_mileage = read(lh, user, IOV, f"{ranked} order by total_km desc, vehicle limit {TOP_VEHICLES}")
    top_speed = read(lh, user, IOV, f"{ranked} order by avg_speed desc, vehicle limit {TOP_VEHICLES}")
    if per_hour:  # one masked id in one hour may still be several vehicles: a bar per row, numbered
        for result in (top_mileage, top_speed):
            if result.frame is not None:
                result.frame["vehicle"] = [f"{i}. {v}" for i, v in enumerate(result.frame["vehicle"], 1)]
    return Fleet(
        totals=totals,
        hourly=read(
            lh,
            user,
            IOV,
            f"select stat_hour, sum(total_distance) as total_km from {IOV} where {where} "
            "group by stat_hour order by stat_hour",
        ),
        top_mileage=top_mileage,
        top_speed=top_speed,
        per_hour=per_hour,
    )


@dataclass(frozen=True)
class Games:
    """The game seed (game_db): retention, purchases, devices, regions per day."""

    retention: Result
    """dt, dau, d1_retained, d1_retention_rate, d7_retained, d7_retention_rate."""
    purchases: Result
    """dt, gmv, paying_users, orders, arppu."""
    devices: Result
    """dt, device_type, users, share."""
    regions: Result
    """province, city, dau (summed over the days: user-days)."""


def games(
    lh: Lakehouse, user: str | None, days: DateRange = DateRange(), readable: Iterable[str] = TABLES
) -> Games:
    """The game panels' data; a table not in `readable` is not queried (a hidden Result)."""
    where = days.where()
    allowed = set(readable)

    def one(table: str, query: str) -> Result:
        return read(lh, user, table, query) if table in allowed else Result(table)

    return Games(
        retention=one(
            RETENTION,
            "select dt, dau, d1_retained, d1_retention_rate, d7_retained, d7_retention_rate "
            f"from {RETENTION} where {where} order by dt",
        ),
        purchases=one(
            PURCHASES,
            f"select dt, gmv, paying_users, orders, arppu from {PURCHASES} where {where} order by dt",
        ),
        devices=one(
            DEVICES,
            f"select dt, device_type, users, share from {DEVICES} where {where} order by dt, device_type",
        ),
        regions=one(
            REGIONS,
            f"select province, city, sum(dau) as dau from {REGIONS} where {where} "
            "group by province, city order by dau desc, province, city",
        ),
    )


@dataclass(frozen=True)
class GameTotals:
    """The headline numbers of the game seed over the chosen days (None: no rows)."""

    last_day: str | None = None
    dau: int | None = None
    gmv: float | None = None
    paying_users: int | None = None


def game_totals(data: Games) -> GameTotals:
    """DAU of the last day with retention rows; GMV summed over the days; paying users of the last day."""
    last_day = dau = paying = None
    gmv = None
    if data.retention.frame is not None and len(data.retention.frame):
        row = data.retention.frame.iloc[-1]
        last_day, dau = str(row["dt"]), int(row["dau"])
    if data.purchases.frame is not None and len(data.purchases.frame):
        frame = data.purchases.frame
        gmv = float(frame["gmv"].sum())
        paying = int(frame.iloc[-1]["paying_users"])
    return GameTotals(last_day=last_day, dau=dau, gmv=gmv, paying_users=paying)


def km(value: float) -> str:
    return f"{value:,.1f} km"


def money(value: float) -> str:
    return f"{value:,.2f}"
