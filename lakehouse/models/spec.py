"""What a SQL model is: its table, query, columns, checks, partitioning and how it reads its inputs.

Models live one file per table in dbt_like_sql/<namespace>/<table>.sql (parsed by parser.py).

A model file starts with a YAML header in a block comment (description, columns with types, checks,
rejects, partitioning), then one SELECT in DuckDB SQL with bound parameters ($dt, $hh,
$distance_method, $timezone). Dependencies are the tables the SELECT reads, found by parsing it: no
second list to keep in sync.

Partitioning (header `partitions:`):
- hourly (default): one partition per landing hour (dt, hh), like the ODS tables it reads.
- daily: one partition per day (dt), e.g. an event date. Reading an hourly table needs that table's
  `day_index` (which days each hour holds); reading a daily table reads the days listed in
  `inputs: {table: {days: [0, 1, 7]}}` (offsets from the partition's day).
- none: the whole table is rebuilt (a dimension such as the latest profile per user).

Partition metrics (header `metrics: {name: "sum(total_distance)"}`): each an SQL aggregate over
the built partition, evaluated with the checks (same query, same scan) and reported with each
materialization; `preview: N` shows the partition's first N rows (default 5 for ads_ models).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.core.ids import TableId
from lakehouse.core.partitioning import Partitioning

if TYPE_CHECKING:
    import pyarrow as pa

LAYERS = ("ods", "dwd", "dws", "dim", "ads")
PREVIEW_ROWS = {"ads": 5}
"""Rows of a built partition a materialization shows when the header has no `preview:`, by layer."""
RESERVED_METRIC_NAMES = frozenset(
    {
        "rows",
        "row_count",
        "table_version",
        "rejected_rows",
        "rejected_by_reason",
        "source_rows",
        "changed_days",
        "changed_keys",
        "partitions",
        "by_partition",
        "blocked_partitions",
        "preview",
        "metrics_error",
    }
)
"""Names a materialization's own figures use: a metric may not take them."""


class ModelError(ValueError):
    """A model file is malformed; the message names the file."""


def arrow_type(sql_type: str) -> pa.DataType:
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "varchar": pa.string(),
        "text": pa.string(),
        "double": pa.float64(),
        "float": pa.float32(),
        "real": pa.float32(),
        "bigint": pa.int64(),
        "int": pa.int32(),
        "integer": pa.int32(),
        "smallint": pa.int16(),
        "boolean": pa.bool_(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us"),
        "datetime": pa.timestamp("us"),
        "date": pa.date32(),
        "decimal": pa.decimal128(38, 9),
    }
    try:
        return types[sql_type.lower()]
    except KeyError:
        raise ModelError(f"unknown column type {sql_type!r}; use one of {sorted(types)}") from None


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    description: str = ""


@dataclass(frozen=True)
class Check:
    """A data quality rule evaluated on every materialized partition."""

    name: str
    kind: str
    """not_null | unique | accepted_range | reconcile | sql"""
    columns: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    blocking: bool = True
    description: str = ""
    query: str | None = None
    """For kind sql: a query returning the number of failing rows; `this` is the written partition."""


@dataclass(frozen=True)
class Metric:
    """A figure of each built partition (header `metrics:`): one SQL aggregate over its rows."""

    name: str
    sql: str
    """An aggregate expression over the partition's columns, e.g. sum(total_distance)."""


@dataclass(frozen=True)
class InputSpec:
    """How a model reads one of its inputs (header `inputs:`)."""

    days: tuple[int, ...] = (0,)
    """Daily models: the days read, as offsets from the partition's day."""
    changes_by: str | None = None
    """Hourly readers of an unpartitioned table: only partitions holding rows whose value in this
    column changed are rebuilt when the table changes (else every partition is)."""


@dataclass(frozen=True)
class SqlModel:
    table: TableId
    path: Path
    sql: str
    description: str
    layer: str
    columns: tuple[Column, ...]
    deps: tuple[TableId, ...]
    checks: tuple[Check, ...] = ()
    partitioning: Partitioning = Partitioning.HOURLY
    inputs: dict[TableId, InputSpec] = field(default_factory=dict)
    day_index: str | None = None
    """Hourly models: a DATE column whose days are indexed per partition (for daily readers)."""
    reject_reason_column: str | None = None
    """Rows where this output column is not NULL go to <table>_rejected instead of the table."""
    reconcile_with: TableId | None = None
    """Source whose partition row count must equal table rows + rejected rows."""
    metrics: tuple[Metric, ...] = ()
    """Figures of each built partition, reported with its materialization (plotted per partition)."""
    preview_rows: int = 0
    """The first rows of each built partition a materialization shows (0: none)."""

    @property
    def partitioned_by(self) -> tuple[str, ...]:
        """Table partition columns: the Dagster partition's, plus the day index, so that a daily
        reader's scan of an hour opens only the files of the days it needs."""
        return self.partitioning.columns + ((self.day_index,) if self.day_index else ())

    def input(self, table: TableId) -> InputSpec:
        return self.inputs.get(table, InputSpec())

    @property
    def rejected_table(self) -> TableId | None:
        if not self.reject_reason_column:
            return None
        return TableId(self.table.namespace, f"{self.table.name}_rejected")

    @property
    def code_version(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()[:12]

    def arrow_schema(self) -> pa.Schema:
        import pyarrow as pa

        return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in self.columns])
