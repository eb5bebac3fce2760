"""SQL models: one file per table in dbt_like_sql/<namespace>/<table>.sql.

A model file starts with a YAML header in a block comment (description, columns with types, checks,
rejects), then one SELECT in DuckDB SQL with bound parameters ($dt, $hh, $distance_method).
Dependencies are the tables the SELECT reads, found by parsing it: no second list to keep in sync.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
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
HEADER_KEYS = {"description", "columns", "checks", "layer", "reject_reason_column", "reconcile_with"}


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
    """not_null | unique | accepted_range | reconcile"""
    columns: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    blocking: bool = True
    description: str = ""


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
    partitioned_by: tuple[str, ...] = ("dt", "hh")
    reject_reason_column: str | None = None
    """Rows where this output column is not NULL go to <table>_rejected instead of the table."""
    reconcile_with: TableId | None = None
    """Source whose partition row count must equal table rows + rejected rows."""

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
        else:
            raise ModelError(f"{where}: unknown check {kind!r} (not_null, unique, accepted_range)")
    return tuple(checks)


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
