"""SQL models: one file per table in dbt_like_sql/<namespace>/<table>.sql.

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
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from resources.engine import referenced_tables
from resources.table_store import TableId

if TYPE_CHECKING:
    import pyarrow as pa

HEADER = re.compile(r"^\s*/\*\s*---\s*\n(?P<yaml>.*?)\n\s*---\s*\*/", re.DOTALL)
MODELS_ROOT = Path(__file__).resolve().parent.parent / "dbt_like_sql"
LAYERS = ("ods", "dwd", "dws", "dim", "ads")
HEADER_KEYS = {
    "description",
    "columns",
    "checks",
    "layer",
    "reject_reason_column",
    "reconcile_with",
    "partitions",
    "inputs",
    "day_index",
}
PARTITIONINGS = ("hourly", "daily", "none")
PARTITION_COLUMNS = {"hourly": ("dt", "hh"), "daily": ("dt",), "none": ()}


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
    partitioning: str = "hourly"
    """hourly | daily | none"""
    inputs: dict[TableId, InputSpec] = field(default_factory=dict)
    day_index: str | None = None
    """Hourly models: a DATE column whose days are indexed per partition (for daily readers)."""
    reject_reason_column: str | None = None
    """Rows where this output column is not NULL go to <table>_rejected instead of the table."""
    reconcile_with: TableId | None = None
    """Source whose partition row count must equal table rows + rejected rows."""

    @property
    def partitioned_by(self) -> tuple[str, ...]:
        """Table partition columns: the Dagster partition's, plus the day index, so that a daily
        reader's scan of an hour opens only the files of the days it needs."""
        return PARTITION_COLUMNS[self.partitioning] + ((self.day_index,) if self.day_index else ())

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


def _column(name: str, spec: Any, where: Path) -> Column:
    """`name: type` or `name: {type: ..., description: ...}`."""
    if isinstance(spec, dict):
        if "type" not in spec:
            raise ModelError(f"{where}: column {name!r} needs a type, e.g. {{type: string}}")
        column = Column(name, str(spec["type"]), str(spec.get("description", "")))
    else:
        column = Column(name, str(spec))
    try:
        arrow_type(column.type)
    except ModelError as exc:
        raise ModelError(f"{where}: column {name!r}: {exc}") from None
    return column


def _checks(raw: Any, where: Path) -> tuple[Check, ...]:
    checks = []
    for item in raw or []:
        if not isinstance(item, dict) or len(item) < 1:
            raise ModelError(f"{where}: each check is a mapping like {{not_null: [col]}}")
        kind = next(iter(item))
        spec = item[kind]
        blocking = item.get("blocking", True)
        if kind in ("not_null", "unique"):
            cols = tuple(spec if isinstance(spec, list) else [spec])
            checks.append(
                Check(
                    f"{kind}_{'_'.join(cols)}",
                    kind,
                    cols,
                    blocking=blocking,
                    description=f"{', '.join(cols)} {'never NULL' if kind == 'not_null' else 'unique per partition'}",
                )
            )
        elif kind == "accepted_range":
            if not isinstance(spec, dict) or "column" not in spec:
                raise ModelError(f"{where}: accepted_range takes {{column: c, min: x, max: y}}, got {spec!r}")
            col = spec["column"]
            checks.append(
                Check(
                    f"range_{col}",
                    kind,
                    (col,),
                    spec.get("min"),
                    spec.get("max"),
                    blocking,
                    f"{col} within [{spec.get('min')}, {spec.get('max')}]",
                )
            )
        elif kind == "sql":
            if not isinstance(spec, dict) or not spec.get("name") or not spec.get("query"):
                raise ModelError(f"{where}: an sql check takes {{name: n, query: 'select count(*) ...'}}")
            checks.append(
                Check(
                    str(spec["name"]),
                    kind,
                    blocking=blocking,
                    description=str(spec.get("description", spec["name"])),
                    query=str(spec["query"]),
                )
            )
        else:
            raise ModelError(f"{where}: unknown check {kind!r} (not_null, unique, accepted_range, sql)")
    return tuple(checks)


def _inputs(raw: Any, deps: tuple[TableId, ...], namespace: str, where: Path) -> dict[TableId, InputSpec]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ModelError(f"{where}: inputs is a mapping {{table: {{days: [0, 1]}}}}")
    inputs = {}
    for name, spec in raw.items():
        table = TableId.parse(str(name), namespace)
        if table not in deps:
            raise ModelError(f"{where}: inputs names {table}, which the query does not read")
        if not isinstance(spec, dict) or set(spec) - {"days", "changes_by"}:
            raise ModelError(f"{where}: inputs.{name} takes days: [offsets] and/or changes_by: column")
        days = spec.get("days", [0])
        if not isinstance(days, list) or not days or not all(isinstance(d, int) for d in days):
            raise ModelError(f"{where}: inputs.{name}.days is a list of whole day offsets, e.g. [0, 1, 7]")
        inputs[table] = InputSpec(tuple(sorted(set(days))), spec.get("changes_by"))
    return inputs


def parse_model(path: Path, namespace: str) -> SqlModel:
    text = path.read_text()
    match = HEADER.match(text)
    if not match:
        raise ModelError(f"{path}: a model starts with a /* --- YAML header --- */ block")
    try:
        header = yaml.safe_load(match["yaml"]) or {}
    except yaml.YAMLError as exc:
        raise ModelError(f"{path}: header is not valid YAML ({exc})") from None
    if not isinstance(header, dict):
        raise ModelError(f"{path}: the header must be a YAML mapping (description:, columns:, checks:)")
    unknown = sorted(set(header) - HEADER_KEYS)
    if unknown:
        raise ModelError(f"{path}: unknown header key(s) {unknown}; known: {sorted(HEADER_KEYS)}")
    sql = text[match.end() :].strip().rstrip(";")
    name = path.stem
    try:
        deps = tuple(TableId(ns or namespace, t) for ns, t in referenced_tables(sql))
        for check in _checks(header.get("checks"), path) if isinstance(header.get("checks"), list) else ():
            if check.query:  # a check may read other tables (e.g. reconcile with DWD): they are inputs too
                extra = [
                    TableId(ns or namespace, t) for ns, t in referenced_tables(check.query) if t != "this"
                ]
                deps += tuple(t for t in extra if t not in deps)
    except Exception as exc:
        raise ModelError(f"{path}: cannot parse SQL ({str(exc).splitlines()[0]})") from None
    columns = tuple(_column(name, spec, path) for name, spec in (header.get("columns") or {}).items())
    if not columns:
        raise ModelError(f"{path}: the header must declare the table's columns with their types")
    layer = header.get("layer") or name.split("_", 1)[0]
    if layer not in LAYERS:
        raise ModelError(
            f"{path}: layer {layer!r} unknown; name the file <layer>_... with a layer in {LAYERS}"
        )
    reconcile = header.get("reconcile_with")
    checks = _checks(header.get("checks"), path)
    partitioning = str(header.get("partitions", "hourly"))
    if partitioning not in PARTITIONINGS:
        raise ModelError(f"{path}: partitions must be one of {PARTITIONINGS}, got {partitioning!r}")
    inputs = _inputs(header.get("inputs"), deps, namespace, path)
    day_index = header.get("day_index")
    if day_index is not None and (partitioning != "hourly" or day_index not in {c.name for c in columns}):
        raise ModelError(f"{path}: day_index names a declared date column of an hourly model")
    if reconcile:
        checks += (
            Check("rows_reconcile", "reconcile", description=f"{reconcile} rows = rows + rejected rows"),
        )
    return SqlModel(
        table=TableId(namespace, name),
        path=path,
        sql=sql,
        description=str(header.get("description", "")).strip(),
        layer=layer,
        columns=columns,
        deps=deps,
        checks=checks,
        partitioning=partitioning,
        inputs=inputs,
        day_index=day_index,
        reject_reason_column=header.get("reject_reason_column"),
        reconcile_with=TableId.parse(reconcile, namespace) if reconcile else None,
    )


def load_models(root: Path = MODELS_ROOT) -> list[SqlModel]:
    """Every model under root, in dependency order (a model after the models it reads)."""
    models = {}
    for path in sorted(root.glob("*/*.sql")):
        model = parse_model(path, path.parent.name)
        models[model.table] = model
    ordered: list[SqlModel] = []
    visiting: set[TableId] = set()

    def visit(m: SqlModel) -> None:
        if m in ordered:
            return
        if m.table in visiting:
            raise ModelError(f"{m.path}: dependency cycle through {m.table}")
        visiting.add(m.table)
        for dep in m.deps:
            if dep in models:
                visit(models[dep])
        visiting.discard(m.table)
        ordered.append(m)

    for m in models.values():
        visit(m)
    return ordered


class ModelGraph:
    """The models and the tables they read, with how partitions of one relate to the other."""

    def __init__(self, models: list[SqlModel]) -> None:
        self.ordered = models
        self.models = {m.table: m for m in models}
        self._readers: dict[TableId, list[SqlModel]] = {}
        for model in models:
            for dep in model.deps:
                self._readers.setdefault(dep, []).append(model)
        for model in models:
            for dep in model.deps:
                self._validate_edge(model, dep)

    def partitioning(self, table: TableId) -> str:
        """Models declare theirs; every other table is an hourly landing (ODS) table."""
        model = self.models.get(table)
        return model.partitioning if model else "hourly"

    def day_index(self, table: TableId) -> str | None:
        model = self.models.get(table)
        return model.day_index if model else None

    def readers(self, table: TableId) -> list[SqlModel]:
        return self._readers.get(table, [])

    def hourly_closure(self, table: TableId) -> list[SqlModel]:
        """Hourly models that a change of one hour of `table` rebuilds in the same run, in build order."""
        seen: set[TableId] = set()
        stack = [table]
        while stack:
            current = stack.pop()
            if self.partitioning(current) != "hourly":
                continue
            for reader in self.readers(current):
                if reader.partitioning == "hourly" and reader.table not in seen:
                    seen.add(reader.table)
                    stack.append(reader.table)
        return [m for m in self.ordered if m.table in seen]

    def datascan_closure(self, table: TableId) -> list[SqlModel]:
        """What a DataScan run of one hour of `table` rebuilds: the hourly models that read it, and the
        unpartitioned models that read any of those (their own readers follow through propagation)."""
        hourly = self.hourly_closure(table)
        changed = [table, *[m.table for m in hourly]]
        whole = {r.table for t in changed for r in self.readers(t) if r.partitioning == "none"}
        return [m for m in self.ordered if m in hourly or m.table in whole]

    def automated(self, model: SqlModel) -> bool:
        """Daily models that read only daily tables follow them through Dagster's automation
        (time-window partition mappings); every other cross-partitioning edge is propagated."""
        return model.partitioning == "daily" and all(self.partitioning(d) == "daily" for d in model.deps)

    def _validate_edge(self, reader: SqlModel, dep: TableId) -> None:
        kind = self.partitioning(dep)
        if reader.partitioning == "hourly" and kind == "daily":
            raise ModelError(f"{reader.path}: an hourly model cannot read the daily table {dep}")
        if reader.partitioning == "daily" and kind == "hourly" and not self.day_index(dep):
            raise ModelError(
                f"{reader.path}: a daily model reads the hourly table {dep}, which has no day_index; "
                f"declare `day_index: <date column>` in {dep}'s model"
            )
        spec = reader.input(dep)
        if spec.changes_by and not (reader.partitioning == "hourly" and kind == "none"):
            raise ModelError(
                f"{reader.path}: changes_by applies to an hourly model reading an unpartitioned one"
            )
