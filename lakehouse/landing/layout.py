"""Landing layouts: where a table's files sit inside its table folder.

A table folder holds its files in one of three layouts:

- hourly: `<table>/dt=YYYY-MM-DD/hh=HH/<file>`, one ODS partition per landing hour (key YYYY-MM-DD-HH);
- daily: `<table>/dt=YYYY-MM-DD/<file>`, one ODS partition per day (key YYYY-MM-DD);
- flat: `<table>/<file>` (OpenLake's `user_event/*.parquet`). The ODS table holds exactly the rows of
  the folder's current files; they are grouped by arrival hour (the UTC hour in which each file was
  last written, as dt/hh), so a new file rebuilds only its arrival hour, a replaced one its old and
  new hour, and a deleted one the hour it was in.

The default DataScan task reads `<namespace>/<table>/...` under LAKEHOUSE_LANDING_URI; a named task
(lakehouse/landing/tasks.py) reads `<table>/...` under its location into its one namespace.

From a path alone a landed object is data of some layout, junk to ignore silently, or a file in the
wrong place that is recorded as rejected (so nobody wonders where it went). A table has one layout:
dt=/hh= folders win over dt= folders, which win over flat files; files of another layout are rejected.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from lakehouse.core.partitioning import Partitioning, hour_key, parse_day, split_hour_key
from lakehouse.storage.object_store import READABLE_SUFFIXES

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
WHERE = "<table>/dt=YYYY-MM-DD/hh=HH/<file>, <table>/dt=YYYY-MM-DD/<file> or <table>/<file>"


class Layout(StrEnum):
    """How files sit in a table folder (see the module docstring)."""

    HOURLY = "hourly"
    DAILY = "daily"
    FLAT = "flat"

    @property
    def partitioning(self) -> Partitioning:
        """The ODS table's partitioning: a flat table is grouped by arrival hour (dt, hh)."""
        return Partitioning.DAILY if self is Layout.DAILY else Partitioning.HOURLY

    @property
    def spelled(self) -> str:
        return {
            Layout.HOURLY: "dt=YYYY-MM-DD/hh=HH/<file>",
            Layout.DAILY: "dt=YYYY-MM-DD/<file>",
            Layout.FLAT: "<file> directly in the table folder",
        }[self]


PRECEDENCE = (Layout.HOURLY, Layout.DAILY, Layout.FLAT)


@dataclass(frozen=True)
class LandedFile:
    """A data file of a table, with the ODS partition it belongs to."""

    path: str
    """As recorded in the manifest: relative to LANDING for the default task, a full URI otherwise."""
    namespace: str
    table: str
    partition_key: str
    layout: Layout = Layout.HOURLY

    @property
    def dt(self) -> str:
        return self.partition_key[:10]

    @property
    def hh(self) -> str | None:
        return None if self.layout is Layout.DAILY else self.partition_key[11:]


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


def arrival_hour(modified: float | None) -> str:
    """The partition key of a flat file: the UTC hour it was last written (YYYY-MM-DD-HH)."""
    return time.strftime("%Y-%m-%d-%H", time.gmtime(modified or 0.0))


def classify(
    path: str,
    size: int | None = None,
    modified: float | None = None,
    *,
    namespace: str | None = None,
    prefix: str = "",
    base: str = "",
) -> LandedFile | Misplaced | None:
    """None for junk; Misplaced for data in the wrong place; LandedFile otherwise.

    `path` is relative to the task's location. The default task (namespace None) reads
    `<namespace>/<table>/...`; a named task reads `<folder>/...` into `namespace`, as table
    `prefix + folder`, and records paths as `base/path` (its location's URI)."""
    if is_junk(path, size):
        return None
    record = f"{base}/{path}" if base else path
    parts = path.split("/")
    if namespace is None:
        if len(parts) < 3:
            where = parts[0] if len(parts) > 1 else None
            return Misplaced(record, f"not in <namespace>/{WHERE}", where)
        namespace, folder, rest = parts[0], parts[1], parts[2:]
        if not IDENTIFIER.match(namespace):
            return Misplaced(
                record, f"namespace folder {namespace!r} is not a valid name (letters, digits, _)"
            )
    else:
        if len(parts) < 2:
            return Misplaced(
                record, f"a file directly in the task's location: data goes in {WHERE}", namespace
            )
        folder, rest = parts[0], parts[1:]
    table = prefix + folder
    if not IDENTIFIER.match(folder) or not IDENTIFIER.match(table):
        return Misplaced(record, f"table folder {folder!r} is not a valid name (letters, digits, _)")
    if len(rest) == 1:
        return LandedFile(record, namespace, table, arrival_hour(modified), Layout.FLAT)
    if len(rest) > 3 or not rest[0].startswith("dt=") or (len(rest) == 3 and not rest[1].startswith("hh=")):
        return Misplaced(
            record,
            f"not in <namespace>/{WHERE} (partition folders are dt=YYYY-MM-DD[/hh=HH])",
            namespace,
            table,
        )
    if len(rest) == 2:
        problem = _day_problem(rest[0][3:])
        if problem:
            return Misplaced(record, problem, namespace, table)
        return LandedFile(record, namespace, table, rest[0][3:], Layout.DAILY)
    dt_value, hh_value = rest[0][3:], rest[1][3:]
    problem = _partition_problem(dt_value, hh_value)
    if problem:
        return Misplaced(record, problem, namespace, table)
    return LandedFile(record, namespace, table, hour_key(dt_value, hh_value), Layout.HOURLY)


def table_layout(files: Iterable[LandedFile], claimed: Layout | None = None) -> Layout:
    """A table's layout: the one recorded when it was first registered, else by precedence."""
    if claimed is not None:
        return claimed
    seen = {f.layout for f in files}
    return next((layout for layout in PRECEDENCE if layout in seen), Layout.HOURLY)


def other_layout(landed: LandedFile, layout: Layout) -> Misplaced:
    """A file of another layout than its table's: rejected, naming both."""
    return Misplaced(
        landed.path,
        f"not in <namespace>/<table>/{layout.spelled}: table {landed.namespace}.{landed.table} is laid "
        f"out {layout.value} ({layout.spelled}); this file is {landed.layout.value} ({landed.layout.spelled})",
        landed.namespace,
        landed.table,
    )


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


@functools.lru_cache(maxsize=4096)
def _day_problem(dt_value: str) -> str | None:
    try:
        parsed = dt.datetime.strptime(dt_value, "%Y-%m-%d")
    except ValueError:
        return f"partition dt={dt_value} is not a valid date"
    if parsed.strftime("%Y-%m-%d") != dt_value:
        return f"partition dt={dt_value} must be zero-padded (dt=YYYY-MM-DD)"
    return None


def partition_prefix(namespace: str, table: str, key: str) -> str:
    """The default task's folder of an hourly partition."""
    dt_value, hh_value = split_hour_key(key)
    return f"{namespace}/{table}/dt={dt_value}/hh={hh_value}"


def partition_values(layout: Layout, key: str) -> dict[str, str]:
    """The ODS partition columns' values for a key of this layout."""
    if layout is Layout.DAILY:
        return {"dt": parse_day(key)}
    day, hour = split_hour_key(key)
    return {"dt": day, "hh": hour}
