"""The landing layout: <namespace>/<table>/dt=YYYY-MM-DD/hh=HH/<file>.parquet|.orc

Decides, from a path alone, whether a landed object is data, junk to ignore silently, or a file in
the wrong place that is recorded as rejected (so nobody wonders where it went).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass

from lakehouse.core.partitioning import hour_key, split_hour_key
from lakehouse.storage.object_store import READABLE_SUFFIXES

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class LandedFile:
    """A data file in its partition folder."""

    path: str
    namespace: str
    table: str
    dt: str
    hh: str

    @property
    def partition_key(self) -> str:
        return hour_key(self.dt, self.hh)


@dataclass(frozen=True)
class Misplaced:
    """A file that looks like data but is not where the layout says data goes."""

    path: str
    reason: str
    namespace: str | None = None
    table: str | None = None


def is_junk(path: str, size: int | None = None) -> bool:
    """System files, hidden or temporary names, uploads in progress, empty files: never data."""
    parts = path.split("/")
    if any(p.startswith((".", "_")) for p in parts):
        return True  # .DS_Store, ._resource forks, _SUCCESS, _temporary/, .staging/ ...
    if not parts[-1].lower().endswith(READABLE_SUFFIXES):
        return True  # unknown extension, e.g. file.parquet.uploading or .crc
    return size == 0


def classify(path: str, size: int | None = None) -> LandedFile | Misplaced | None:
    """None for junk; Misplaced for data in the wrong place; LandedFile otherwise."""
    if is_junk(path, size):
        return None
    parts = path.split("/")
    if len(parts) != 5:
        where = parts[0] if len(parts) > 1 else None
        table = parts[1] if len(parts) > 2 else None
        return Misplaced(path, "not in <namespace>/<table>/dt=YYYY-MM-DD/hh=HH/<file>", where, table)
    namespace, table, dt_part, hh_part, _ = parts
    for kind, name in (("namespace", namespace), ("table", table)):
        if not IDENTIFIER.match(name):
            return Misplaced(path, f"{kind} folder {name!r} is not a valid name (letters, digits, _)")
    if not dt_part.startswith("dt=") or not hh_part.startswith("hh="):
        return Misplaced(path, "partition folders must be dt=YYYY-MM-DD/hh=HH", namespace, table)
    dt_value, hh_value = dt_part[3:], hh_part[3:]
    problem = _partition_problem(dt_value, hh_value)
    if problem:
        return Misplaced(path, problem, namespace, table)
    return LandedFile(path, namespace, table, dt_value, hh_value)


@functools.lru_cache(maxsize=65536)
def _partition_problem(dt_value: str, hh_value: str) -> str | None:
    """Why dt=/hh= folder values are not a partition, or None. Cached: every file of a folder asks."""
    try:
        parsed = dt.datetime.strptime(f"{dt_value} {hh_value}", "%Y-%m-%d %H")
    except ValueError:
        return f"partition dt={dt_value}/hh={hh_value} is not a valid date and hour"
    if parsed.strftime("%Y-%m-%d") != dt_value or parsed.strftime("%H") != hh_value:
        return f"partition dt={dt_value}/hh={hh_value} must be zero-padded (dt=YYYY-MM-DD/hh=HH)"
    return None


def partition_prefix(namespace: str, table: str, key: str) -> str:
    dt_value, hh_value = split_hour_key(key)
    return f"{namespace}/{table}/dt={dt_value}/hh={hh_value}"
