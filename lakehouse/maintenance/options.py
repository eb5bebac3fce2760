"""The thresholds of table maintenance, with their defaults (each one a `lakehouse maintain` option)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

MB = 2**20

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> dt.timedelta:
    """`7d`, `1h`, `30m`, `90s`, `2w` or plain seconds (`0`) as a timedelta (ValueError otherwise)."""
    found = _DURATION.match(str(text))
    if not found:
        raise ValueError(f"{text!r} is not a duration (examples: 7d, 1h, 30m, 90s, 0)")
    return dt.timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2).lower()])


def format_duration(value: dt.timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class MaintenanceOptions:
    """What maintenance does to each table. The defaults are those of the daily `maintenance` job."""

    max_files: int = 8
    """Compact a partition holding more data files than this..."""
    max_small_files: int = 4
    """...or more files smaller than `small_file_bytes` than this."""
    small_file_bytes: int = 32 * MB
    target_file_bytes: int = 128 * MB
    """Compaction writes files of up to this size (as few as it takes), whatever the table's writers use."""
    retention: dt.timedelta = dt.timedelta(days=7)
    """Snapshots younger than this are kept..."""
    keep_last: int = 5
    """...and always the last this many snapshots that changed data (plus the current one, plus
    maintenance's own snapshots newer than the oldest of those, plus every pinned snapshot)."""
    orphan_age: dt.timedelta = dt.timedelta(hours=1)
    """A file nothing references is deleted only when older than this (an in-flight write is younger)."""

    def __post_init__(self) -> None:
        if self.keep_last < 1:
            raise ValueError("keep_last must be at least 1 (the current snapshot is always kept)")
        if min(self.max_files, self.max_small_files) < 1:
            raise ValueError("max_files and max_small_files must be at least 1")
        if self.target_file_bytes < 1 or self.small_file_bytes < 0:
            raise ValueError("target_file_bytes must be positive and small_file_bytes not negative")
        if self.retention < dt.timedelta(0) or self.orphan_age < dt.timedelta(0):
            raise ValueError("retention and orphan_age cannot be negative")

    @property
    def vacuum_hours(self) -> int:
        """Delta vacuum's retention (whole hours): never below the orphan age."""
        return int(-(-self.orphan_age.total_seconds() // 3600))

    def describe(self) -> dict[str, str | int | float]:
        return {
            "max_files": self.max_files,
            "max_small_files": self.max_small_files,
            "small_file_mb": round(self.small_file_bytes / MB, 3),
            "target_file_mb": round(self.target_file_bytes / MB, 3),
            "retention": format_duration(self.retention),
            "keep_last": self.keep_last,
            "orphan_age": format_duration(self.orphan_age),
        }
