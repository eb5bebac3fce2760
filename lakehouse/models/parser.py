"""Parse model files: a YAML header in a block comment, then one SELECT; dependencies from the SQL.

A header key the lakehouse does not know is an error naming the file, so a typo never silently
changes what a model does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from lakehouse.core.ids import TableId
from lakehouse.core.partitioning import Partitioning
from lakehouse.engines.sql import ensure_governed_query, referenced_tables
from lakehouse.models.spec import (
    LAYERS,
    PREVIEW_ROWS,
    RESERVED_METRIC_NAMES,
    Check,
    Column,
    InputSpec,
    Metric,
    ModelError,
    SqlModel,
    arrow_type,
)

HEADER = re.compile(r"^\s*/\*\s*---\s*\n(?P<yaml>.*?)\n\s*---\s*\*/", re.DOTALL)
MODELS_ROOT = Path(__file__).resolve().parent.parent.parent / "dbt_like_sql"
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
    "metrics",
    "preview",
}
METRIC_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
MAX_PREVIEW_ROWS = 100


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


def _metric_error(sql: str, columns: set[str]) -> str | None:
    """Why `sql` is not one aggregate expression over the partition's columns (None if it is)."""
    import sqlglot
    from sqlglot import exp

    try:
        statements = [s for s in sqlglot.parse(f"select {sql}\nfrom this", read="duckdb") if s is not None]
    except Exception as exc:  # noqa: BLE001 - sqlglot raises several kinds
        return f"cannot parse SQL ({str(exc).splitlines()[0]})"
    tree = statements[0] if len(statements) == 1 else None
    from_ = tree.args.get("from_") if isinstance(tree, exp.Select) else None
    if (
        not isinstance(tree, exp.Select)
        or len(tree.expressions) != 1
        or {k for k, v in tree.args.items() if v} != {"expressions", "from_"}
        or not isinstance(from_, exp.From)
        or not isinstance(from_.this, exp.Table)
        or from_.this.name != "this"
        or from_.this.db
    ):
        return "must be one SQL expression, e.g. sum(total_distance) (no FROM, WHERE or commas)"
    expression = tree.expressions[0]
    if any(expression.find_all(exp.Select, exp.Subquery, exp.Table, exp.Window)) or any(
        not isinstance(star.parent, exp.Count) for star in expression.find_all(exp.Star)
    ):
        return (
            "is an aggregate over the partition's columns: no subqueries, tables, windows or * (but count(*))"
        )
    aggregate = (exp.AggFunc, exp.Anonymous, exp.Filter)  # FILTER (WHERE ...) belongs to its aggregate
    if not any(expression.find_all(*aggregate)):
        return "must aggregate the partition's rows, e.g. sum(x), count(*), max(x)"
    for column in expression.find_all(exp.Column):
        if column.table or column.name not in columns:
            return f"reads {column.sql('duckdb')!r}, not a column of the table ({sorted(columns)})"
        if column.find_ancestor(*aggregate) is None:
            return f"uses column {column.name!r} outside an aggregate"
    try:
        ensure_governed_query(tree.sql("duckdb"))
    except Exception as exc:  # noqa: BLE001 - QueryError, ReadOnlyViolation
        return str(exc)
    return None


def _metrics(raw: Any, columns: set[str], where: Path) -> tuple[Metric, ...]:
    """`metrics: {name: "sum(column)"}`: each an SQL aggregate over the built partition."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ModelError(f'{where}: metrics is a mapping {{name: "sum(column)"}}, got {raw!r}')
    metrics = []
    for name, sql in raw.items():
        if not isinstance(name, str) or not METRIC_NAME.match(name) or name in RESERVED_METRIC_NAMES:
            raise ModelError(
                f"{where}: metric name {name!r} must be lower_snake_case and not one of "
                f"{sorted(RESERVED_METRIC_NAMES)}"
            )
        if not isinstance(sql, str) or not sql.strip():
            raise ModelError(f'{where}: metrics.{name} is an SQL aggregate, e.g. "sum(total_distance)"')
        problem = _metric_error(sql.strip(), columns)
        if problem:
            raise ModelError(f"{where}: metrics.{name} ({sql.strip()!r}) {problem}")
        metrics.append(Metric(name, sql.strip()))
    return tuple(metrics)


def _preview(raw: Any, layer: str, where: Path) -> int:
    if raw is None:
        return PREVIEW_ROWS.get(layer, 0)
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_PREVIEW_ROWS:
        raise ModelError(f"{where}: preview is a number of rows from 0 to {MAX_PREVIEW_ROWS}, got {raw!r}")
    return raw


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
    try:
        partitioning = Partitioning(str(header.get("partitions", Partitioning.HOURLY.value)))
    except ValueError:
        choices = tuple(p.value for p in Partitioning)
        raise ModelError(
            f"{path}: partitions must be one of {choices}, got {header.get('partitions')!r}"
        ) from None
    inputs = _inputs(header.get("inputs"), deps, namespace, path)
    day_index = header.get("day_index")
    if day_index is not None and (
        partitioning is not Partitioning.HOURLY or day_index not in {c.name for c in columns}
    ):
        raise ModelError(f"{path}: day_index names a declared date column of an hourly model")
    metrics = _metrics(header.get("metrics"), {c.name for c in columns} | set(partitioning.columns), path)
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
        metrics=metrics,
        preview_rows=_preview(header.get("preview"), layer, path),
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
