"""Partitioning and partition keys, in one place.

A table is partitioned by landing hour (keys `YYYY-MM-DD-HH`, columns dt and hh), by day (keys
`YYYY-MM-DD`, column dt), or not at all (the whole table is one partition, key ''). Day arithmetic
for late data (shifting a day by a model's input offsets, ranges of days) lives here too.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

HOUR_KEY_FORMAT = "%Y-%m-%d-%H"
RANGE_SEPARATOR = "..."
"""Between the first and last key of a range of days, as Dagster spells partition ranges."""


class Partitioning(StrEnum):
    """How a table is partitioned (a model header's `partitions:`)."""

    HOURLY = "hourly"
    """One partition per landing hour (dt, hh), like the ODS tables DataScan loads."""
    DAILY = "daily"
    """One partition per day (dt), e.g. an event date."""
    NONE = "none"
    """Unpartitioned: the whole table is rebuilt at once."""

    @property
    def columns(self) -> tuple[str, ...]:
        """The table's partition columns that come from the partition key."""
        return _COLUMNS[self]

    def values(self, key: str | None) -> dict[str, str]:
        """The partition columns' values for a key (hourly YYYY-MM-DD-HH, daily YYYY-MM-DD, none '')."""
        if self is Partitioning.HOURLY:
            day, hour = split_hour_key(key or "")
            return {"dt": day, "hh": hour}
        if self is Partitioning.DAILY:
            return {"dt": parse_day(key or "")}
        return {}


_COLUMNS = {Partitioning.HOURLY: ("dt", "hh"), Partitioning.DAILY: ("dt",), Partitioning.NONE: ()}


def hour_key(day: str, hour: str) -> str:
    """('2025-09-17', '23') -> '2025-09-17-23'."""
    return f"{day}-{hour}"


def split_hour_key(key: str) -> tuple[str, str]:
    """'2025-09-17-23' -> ('2025-09-17', '23'); a malformed key raises ValueError naming it."""
    try:
        parsed = dt.datetime.strptime(key, HOUR_KEY_FORMAT)
    except ValueError:
        parsed = None
    # strptime accepts '2025-9-1-7'; only the zero-padded form names a partition (one key, one folder)
    if parsed is None or parsed.strftime(HOUR_KEY_FORMAT) != key:
        raise ValueError(f"partition key {key!r} is not YYYY-MM-DD-HH")
    return parsed.strftime("%Y-%m-%d"), parsed.strftime("%H")


def is_hour_key(key: str) -> bool:
    """Whether a key names an hourly partition (YYYY-MM-DD-HH), e.g. not a daily ODS table's day."""
    try:
        split_hour_key(key)
    except ValueError:
        return False
    return True


def parse_day(key: str) -> str:
    """A daily key in its one spelling, YYYY-MM-DD; anything else raises ValueError naming it."""
    try:
        return dt.date.fromisoformat(key).isoformat()
    except ValueError:
        raise ValueError(f"daily partition key must be YYYY-MM-DD, got {key!r}") from None


def shift_day(day: str, offset: int) -> str:
    """The day `offset` days after `day` (negative: before)."""
    return (dt.date.fromisoformat(day) + dt.timedelta(days=offset)).isoformat()


def next_day(day: str) -> str:
    return shift_day(day, 1)


def days_between(first: str, last: str) -> list[str]:
    """Every day from first to last, both included."""
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def expand_range(key: str) -> list[str]:
    """'2025-09-01...2025-09-03' -> the three days; any other key -> [key]."""
    if RANGE_SEPARATOR in key:
        first, last = key.split(RANGE_SEPARATOR)
        return days_between(first, last)
    return [key]
