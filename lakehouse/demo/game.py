"""Sample raw data in the game seed's raw types (seed 004): user_id an integer, every other column
UTF-8 text stored as binary. Event timestamps mix 13-digit epoch ms, 10-digit epoch s and
`YYYY-MM-DD HH:MM:SS`, with stray spaces, and a few that do not parse; event_details is JSON with
numeric or string amounts, some missing or malformed; locations are sometimes empty. A share of
each hour's events belongs to earlier days (late events), so the demo exercises late data.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.storage.object_store import ObjectStore

NAMESPACE = "game_db"
LOCATIONS = [
    "Zhejiang-Hangzhou",
    "Shanghai",
    "Guangdong-Shenzhen",
    "Beijing",
    "Sichuan-Chengdu",
    " Jiangsu-Nanjing ",
    "Guangdong-Guangzhou",
]
DEVICES = ["iOS", "Android", "PC"]
EVENT_TYPES = ["login", "LOGIN", "battle", "Battle", "levelup", "logout", "purchase", "PURCHASE", "Purchase"]
EVENT_WEIGHTS = [0.18, 0.04, 0.3, 0.05, 0.1, 0.18, 0.09, 0.03, 0.03]
PROFILE_COLUMNS = [
    "gender",
    "os_version",
    "current_level",
    "device_type",
    "last_login_date",
    "favorite_game_mode",
    "language_preference",
    "active_time",
    "registration_date",
    "total_deaths",
    "game_hours",
    "location",
    "play_frequency",
]


@dataclass
class GameSummary:
    files: list[str] = field(default_factory=list)
    profile_rows: int = 0
    event_rows: int = 0


def _binary(table: pa.Table, keep: tuple[str, ...] = ("user_id",)) -> pa.Table:
    """Every text column as UTF-8 bytes, as the seed's raw files have them."""
    import pyarrow as pa

    return pa.table(
        {name: table[name] if name in keep else table[name].cast(pa.binary()) for name in table.column_names}
    )


def _strings(values: Any) -> Any:
    import polars as pl

    return pl.Series([None if v is None else str(v) for v in values], dtype=pl.String)


def profiles(users: int, first_day: dt.date, seed: int, duplicates: float = 0.03) -> pa.Table:
    """One profile per user, plus older duplicate rows for some users (dedup keeps the latest login)."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    ids = np.arange(1, users + 1, dtype=np.int64)
    dup = ids[rng.random(users) < duplicates]
    all_ids = np.concatenate([ids, dup])
    n = len(all_ids)
    login_offset = np.concatenate([rng.integers(0, 30, users), rng.integers(31, 400, len(dup))])
    # Some duplicates have no login date at all (they sort last).
    login = [
        None if i >= users and rng.random() < 0.3 else (first_day - dt.timedelta(days=int(o))).isoformat()
        for i, o in enumerate(login_offset)
    ]
    location = rng.choice(LOCATIONS, n).astype(object)
    location[rng.random(n) < 0.03] = ""
    device = rng.choice(DEVICES, n).astype(object)
    device[rng.random(n) < 0.02] = None
    level = rng.integers(1, 80, n).astype(str).astype(object)
    level[rng.random(n) < 0.005] = "abc"
    frame = pl.DataFrame(
        {
            "user_id": all_ids,
            "gender": rng.choice(["male", "female", "other"], n),
            "os_version": rng.choice(["iOS 17", "Android 14", "Windows 11"], n),
            "current_level": _strings(level),
            "device_type": _strings(device),
            "last_login_date": _strings(login),
            "favorite_game_mode": rng.choice(["ranked", "casual", "coop"], n),
            "language_preference": rng.choice(["zh-CN", "en-US"], n),
            "active_time": rng.choice(["morning", "afternoon", "evening", "night"], n),
            "registration_date": [
                (first_day - dt.timedelta(days=int(o))).isoformat() for o in rng.integers(30, 900, n)
            ],
            "total_deaths": rng.integers(0, 5000, n).astype(str),
            "game_hours": np.round(rng.random(n) * 2000, 1).astype(str),
            "location": _strings(location),
            "play_frequency": rng.choice(["daily", "weekly", "monthly"], n),
        }
    )
    return _binary(frame.to_arrow())


def events(
    hour_start: dt.datetime,
    count: int,
    users: int,
    seed: int,
    *,
    late_fraction: float = 0.01,
    late_days: int = 10,
    bad_fraction: float = 0.005,
    hours: int = 1,
    cohort: int = 0,
) -> pa.Table:
    """`count` events of the `hours` hours from `hour_start` (UTC), by users active that day.

    The day's active users depend on the day and `cohort` only, so all hours of a day share them."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    day_rng = np.random.default_rng([hour_start.toordinal(), cohort])  # the same active users all day
    active = np.flatnonzero(day_rng.random(users) < 0.55) + 1
    user_id = rng.choice(active, count).astype(np.int64)
    base = int(hour_start.replace(tzinfo=dt.UTC).timestamp())
    seconds = base + rng.integers(0, 3600 * hours, count)
    late = rng.random(count) < late_fraction  # events of 1..late_days days ago, arriving now
    seconds = np.where(late, seconds - rng.integers(1, late_days + 1, count) * 86400, seconds)
    millis = seconds * 1000 + rng.integers(0, 1000, count)
    fmt = rng.choice(4, count, p=[0.4, 0.3, 0.25, 0.05])
    frame = pl.DataFrame({"s": seconds, "ms": millis, "fmt": fmt})
    text = pl.from_epoch(pl.col("s"), time_unit="s").dt.strftime("%Y-%m-%d %H:%M:%S")
    frame = frame.with_columns(
        pl.when(pl.col("fmt") == 0)
        .then(pl.col("ms").cast(pl.String))
        .when(pl.col("fmt") == 1)
        .then(pl.col("s").cast(pl.String))
        .when(pl.col("fmt") == 2)
        .then(text)
        .otherwise(pl.lit("  ") + pl.col("ms").cast(pl.String) + pl.lit(" "))
        .alias("timestamp")
    )
    timestamp = frame["timestamp"].to_numpy().astype(object)
    bad = np.flatnonzero(rng.random(count) < bad_fraction)
    timestamp[bad] = rng.choice(["not-a-time", "", "2025-13-45 99:00:00", "17000000001"], len(bad))
    timestamp[bad[: len(bad) // 5]] = None
    event_type = rng.choice(EVENT_TYPES, count, p=EVENT_WEIGHTS)
    is_purchase = np.char.lower(event_type.astype(str)) == "purchase"
    amount = np.round(rng.gamma(2.0, 15.0, count), 2)
    kind = rng.choice(5, count, p=[0.6, 0.2, 0.08, 0.07, 0.05])
    details = np.where(
        kind == 0,
        np.char.add(np.char.add('{"amount": ', amount.astype(str)), ', "item": "gem"}'),
        np.where(
            kind == 1,
            np.char.add(np.char.add('{"amount": "', amount.astype(str)), '"}'),
            np.where(kind == 2, '{"item": "sword"}', np.where(kind == 3, '{"amount": 0}', '{"amount": 12.5')),
        ),
    ).astype(object)
    details[~is_purchase] = '{"level": 3}'
    location = rng.choice(LOCATIONS, count).astype(object)
    missing = rng.random(count)
    location[missing < 0.3] = ""
    location[missing > 0.8] = None
    table = pl.DataFrame(
        {
            "user_id": user_id,
            "event_type": event_type,
            "timestamp": _strings(timestamp),
            "event_details": _strings(details),
            "location": _strings(location),
        }
    ).to_arrow()
    return _binary(table)


def event_path(day: dt.date, hour: int, name: str) -> str:
    return f"{NAMESPACE}/ods_user_event/dt={day.isoformat()}/hh={hour:02d}/{name}.parquet"


def profile_path(day: dt.date, hour: int, name: str) -> str:
    return f"{NAMESPACE}/ods_user_profile/dt={day.isoformat()}/hh={hour:02d}/{name}.parquet"


def generate_game(
    landing: ObjectStore,
    *,
    days: int = 8,
    users: int = 2_000,
    events_per_day: int = 10_000,
    hours_per_day: int = 1,
    start: dt.date = dt.date(2025, 9, 1),
    seed: int = 11,
    with_profiles: bool = True,
    tag: str = "",
    cohort: int = 0,
) -> GameSummary:
    """Profiles at the first hour, then `hours_per_day` event files per day (each a landing hour).

    With one file per day it lands at hh=00 and holds the whole day's events (a daily drop). A day's
    active players depend on the day and `cohort`: another cohort brings (partly) other players."""
    summary = GameSummary()
    if with_profiles:
        table = profiles(users, start + dt.timedelta(days=days), seed)
        path = profile_path(start, 0, f"profiles{tag}")
        landing.write_arrow(path, table)
        summary.files.append(path)
        summary.profile_rows = table.num_rows
    span = 24 // hours_per_day
    for d in range(days):
        day = start + dt.timedelta(days=d)
        for h in range(hours_per_day):
            hour = h * span
            begin = dt.datetime.combine(day, dt.time(hour))
            table = events(
                begin,
                events_per_day // hours_per_day,
                users,
                seed * 1000 + d * 24 + hour,
                hours=span,
                cohort=cohort,
            )
            path = event_path(day, hour, f"events_{day:%Y%m%d}_{hour:02d}{tag}")
            landing.write_arrow(path, table)
            summary.files.append(path)
            summary.event_rows += table.num_rows
    return summary
