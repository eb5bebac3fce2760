"""Staleness: after a table partition is written, mark the partitions of other models that read it.

Within one partitioning the work is in the same run (an hour of ODS and the hourly models that read
it), or Dagster's own machinery (daily models reading days d..d+k of a daily model: a time-window
partition mapping and an automation condition). What neither can know is data-dependent:

- which *days* an hour of events holds (a file landing today may carry events of last week): an
  hourly model with `day_index` records its days per hour; the days held before or after a rewrite
  are marked stale for the daily models that read it (shifted by their `inputs.days` offsets);
- which *hours* a change of an unpartitioned table (a dimension) affects: with `changes_by`, only the
  hours holding rows whose key changed; else every hour of the reader;
- an unpartitioned model reading a changed table is marked stale as a whole;
- a daily model that reads a daily table *and* an hourly one (not automated) is marked for the days
  the daily input changed, shifted by its offsets.

Marks live in the catalog database (lakehouse_stale, with a version); the `propagate` sensor turns
them into runs. The cost of an hourly change is the days it touched, never the length of history.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId
from lakehouse.core.partitioning import Partitioning, shift_day
from lakehouse.engines.sql import quote_ident
from lakehouse.models.graph import ModelGraph
from lakehouse.models.spec import SqlModel

if TYPE_CHECKING:
    from lakehouse.facade import Lakehouse


def _hours_of(lh: Lakehouse, table: TableId, column: str | None, values: Iterable[Any] | None) -> list[str]:
    """Hourly partition keys of `table` (only those holding one of `values` in `column`, if given)."""
    import pyarrow as pa

    if not lh.tables.exists(table):
        return []
    sources: dict[TableId | str, Any] = {"t": lh.tables.dataset(table)}
    where = ""
    if column is not None:
        sources["k"] = pa.table({"v": list(values or [])})
        where = f"where {quote_ident(column)} in (select v from k)"
    result = lh.engine.query(
        f"select distinct dt || '-' || hh as key from t {where} order by 1",
        sources,
        statement_name=f"{table}: partitions to rebuild",
    )
    return [k for k in result["key"].to_pylist() if k]


def _days_of(lh: Lakehouse, table: TableId) -> list[str]:
    if not lh.tables.exists(table):
        return []
    result = lh.engine.query(
        "select distinct dt from t order by 1", {"t": lh.tables.dataset(table)}, statement_name=str(table)
    )
    return [d for d in result["dt"].to_pylist() if d]


def stale_keys(
    lh: Lakehouse,
    graph: ModelGraph,
    table: TableId,
    reader: SqlModel,
    changed_days: set[str] | None,
    changed_keys: dict[str, list[Any]] | None,
) -> list[str]:
    """The reader's partitions that a write of `table` leaves stale (beyond the same run)."""
    kind, reads = graph.partitioning(table), reader.partitioning
    if kind is reads is Partitioning.HOURLY or (
        kind is reads is Partitioning.DAILY and graph.automated(reader)
    ):
        return []  # same run (hourly) or Dagster's automation over the time-window mapping (daily)
    if reads is Partitioning.NONE:
        return [""]
    if reads is Partitioning.HOURLY:  # the table is unpartitioned (hourly cannot read daily)
        column = reader.input(table).changes_by
        if column and changed_keys is not None and column in changed_keys:
            return _hours_of(lh, reader.table, column, changed_keys[column]) if changed_keys[column] else []
        return _hours_of(lh, reader.table, None, None)
    # a daily reader
    if kind in (
        Partitioning.HOURLY,
        Partitioning.DAILY,
    ):  # a daily input: only for a reader that also reads hourly tables
        offsets = reader.input(table).days
        return sorted({shift_day(day, -offset) for day in changed_days or () for offset in offsets})
    return _days_of(lh, reader.table)  # reading an unpartitioned table: every day it has


def propagate(
    lh: Lakehouse,
    graph: ModelGraph,
    table: TableId,
    partition_key: str,
    *,
    changed_days: set[str] | None = None,
    changed_keys: dict[str, list[Any]] | None = None,
) -> dict[TableId, list[str]]:
    """Mark what a write of `table` (one partition) leaves stale; returns {reader: keys}."""
    marked: dict[TableId, list[str]] = {}
    where = f"{table}[{partition_key}]" if partition_key else str(table)
    if graph.partitioning(table) is Partitioning.DAILY and partition_key:
        changed_days = {partition_key}
    for reader in graph.readers(table):
        keys = stale_keys(lh, graph, table, reader, changed_days, changed_keys)
        if keys:
            lh.catalog.mark_stale(reader.table.namespace, reader.table.name, keys, f"{where} changed")
            marked[reader.table] = keys
    return marked
