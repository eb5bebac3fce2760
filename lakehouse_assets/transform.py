"""Run one SQL model for one partition and write the result, like INSERT OVERWRITE ... PARTITION."""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse_assets.models import Check, ModelError, ModelGraph, SqlModel
from resources.engine import quote_ident
from resources.table_store import TableId
from sensors.layout import split_partition_key

if TYPE_CHECKING:
    import pyarrow as pa

    from resources.lakehouse import Lakehouse


@dataclass(frozen=True)
class CheckOutcome:
    check: Check
    passed: bool
    failing_rows: int
    detail: str


@dataclass
class ModelRun:
    model: SqlModel
    partition_key: str
    rows: int
    partition: dict[str, str] = field(default_factory=dict)
    rejected_rows: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    source_rows: int | None = None
    checks: list[CheckOutcome] = field(default_factory=list)
    version: str | None = None
    changed_days: set[str] = field(default_factory=set)
    """Days (of the model's day_index) whose rows this run may have changed: held before or after."""
    changed_keys: dict[str, list[Any]] | None = None
    """Unpartitioned models: per changes_by column its readers declare, the values whose rows changed."""
    inputs_changed_meanwhile: list[TableId] = field(default_factory=list)
    """Unpartitioned inputs that changed while this run read them (the partition is marked stale again)."""


def partition_of(partitioning: str, partition_key: str | None) -> dict[str, str]:
    """The partition columns' values for a Dagster partition key (hourly YYYY-MM-DD-HH, daily YYYY-MM-DD)."""
    if partitioning == "hourly":
        dt_value, hh_value = split_partition_key(partition_key or "")
        return {"dt": dt_value, "hh": hh_value}
    if partitioning == "daily":
        try:
            return {"dt": datetime.date.fromisoformat(partition_key or "").isoformat()}
        except ValueError:
            raise ValueError(f"daily partition key must be YYYY-MM-DD, got {partition_key!r}") from None
    return {}


def shift_day(day: str, offset: int) -> str:
    return (datetime.date.fromisoformat(day) + datetime.timedelta(days=offset)).isoformat()


def model_params(lh: Lakehouse, partition: Mapping[str, str]) -> dict[str, Any]:
    return {
        **partition,
        "distance_method": lh.settings.distance_method,
        "timezone": lh.settings.timezone,
    }


def input_sources(
    lh: Lakehouse, graph: ModelGraph, model: SqlModel, partition: Mapping[str, str]
) -> dict[TableId | str, Any]:
    """Each input, narrowed to what this partition reads (never history it does not need)."""
    sources: dict[TableId | str, Any] = {}
    for dep in model.deps:
        kind = graph.partitioning(dep)
        if not lh.tables.exists(dep):
            continue  # an unpartitioned model not built yet (run_model decides)
        if kind == "none" or model.partitioning == "none":
            sources[dep] = lh.tables.dataset(dep)
        elif model.partitioning == "hourly":
            sources[dep] = lh.tables.dataset(dep, partition)
        else:  # a daily model: the days it reads, by offset from its own day
            days = [shift_day(partition["dt"], offset) for offset in model.input(dep).days]
            if kind == "daily":
                sources[dep] = lh.tables.dataset_of(dep, [{"dt": d} for d in days])
            else:  # an hourly table: the hours that hold those days, from its day index
                hours = lh.catalog.partitions_holding_days(dep.namespace, dep.name, days)
                sources[dep] = lh.tables.dataset_of(dep, [partition_of("hourly", h) for h in hours])
    return sources


def _conform_output(model: SqlModel, result: pa.Table) -> pa.Table:
    import pyarrow as pa

    missing = [c.name for c in model.columns if c.name not in result.column_names]
    if missing:
        raise ModelError(f"{model.path}: the query does not return declared column(s) {missing}")
    schema = model.arrow_schema()
    try:
        return pa.Table.from_arrays([result.column(f.name).cast(f.type) for f in schema], schema=schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ModelError(f"{model.path}: result does not fit the declared column types ({exc})") from None


def _with_partition(data: pa.Table, partition: Mapping[str, str]) -> pa.Table:
    import pyarrow as pa

    data = data.drop_columns([c for c in partition if c in data.column_names])
    for column, value in partition.items():
        data = data.append_column(column, pa.repeat(pa.scalar(value, pa.string()), data.num_rows))
    return data


def _evaluate(
    lh: Lakehouse, check: Check, data: Any, run: ModelRun, sources: Mapping[TableId | str, Any]
) -> CheckOutcome:
    if check.kind == "reconcile":
        total = run.rows + run.rejected_rows
        ok = run.source_rows == total
        return CheckOutcome(
            check,
            ok,
            abs((run.source_rows or 0) - total),
            f"{run.model.reconcile_with}: {run.source_rows} rows; table {run.rows} + rejected {run.rejected_rows}",
        )
    if check.kind == "sql":
        assert check.query is not None
        failing = int(
            lh.engine.query(
                check.query,
                {**sources, "this": data},
                model_params(lh, run.partition),
                default_namespace=run.model.table.namespace,
                statement_name=f"{run.model.path}: check {check.name}",
            )
            .column(0)[0]
            .as_py()
            or 0
        )
        return CheckOutcome(check, failing == 0, failing, f"{failing} failing row(s): {check.description}")
    cols = [quote_ident(c) for c in check.columns]
    if check.kind == "not_null":
        sql = f"select count(*) from t where {' or '.join(f'{c} is null' for c in cols)}"
    elif check.kind == "unique":
        sql = f"select coalesce(sum(n - 1), 0) from (select count(*) n from t group by {', '.join(cols)} having n > 1)"
    elif check.kind == "accepted_range":
        conds = []
        if check.min is not None:
            conds.append(f"{cols[0]} < $min")
        if check.max is not None:
            conds.append(f"{cols[0]} > $max")
        sql = f"select count(*) from t where {' or '.join(conds) or 'false'}"
    else:
        raise ModelError(f"unknown check kind {check.kind!r}")
    params = {"min": check.min, "max": check.max}
    failing = int(
        lh.engine.query(sql, {"t": data}, params, statement_name=f"check {check.name}").column(0)[0].as_py()
    )
    return CheckOutcome(check, failing == 0, failing, f"{failing} failing row(s): {check.description}")


def _day_counts(lh: Lakehouse, model: SqlModel, written: Any) -> dict[str, int]:
    assert model.day_index
    column = quote_ident(model.day_index)
    counts = lh.engine.query(
        f"select cast({column} as varchar) as day, count(*) as n from t where {column} is not null group by 1",
        {"t": written},
        statement_name=f"{model.path}: day index",
    )
    return dict(zip(counts["day"].to_pylist(), counts["n"].to_pylist(), strict=True))


def _changed_keys(
    lh: Lakehouse, model: SqlModel, before: Any, after: Any, columns: set[str]
) -> dict[str, list[Any]]:
    """Values of each column whose rows differ between two versions of an unpartitioned table."""
    names = ", ".join(quote_ident(c.name) for c in model.columns)
    changed: dict[str, list[Any]] = {}
    for column in sorted(columns):
        result = lh.engine.query(
            f"select distinct {quote_ident(column)} as k from ("
            f"(select {names} from old except all select {names} from new) union all "
            f"(select {names} from new except all select {names} from old))",
            {"old": before, "new": after},
            statement_name=f"{model.path}: changed {column} values",
        )
        changed[column] = result["k"].to_pylist()
    return changed


def run_model(
    lh: Lakehouse, model: SqlModel, partition_key: str | None, graph: ModelGraph | None = None
) -> ModelRun:
    """Compute the partition, write it (and its rejected rows), and evaluate the model's checks.

    The result streams from the engine into one atomic partition write, so memory stays bounded;
    checks then run on the partition as it was written. Afterwards the run knows what it changed
    (days, keys) so that readers with other partitioning can be marked stale (see propagate.py)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    graph = graph or ModelGraph([model])
    key = partition_key or ""
    partition = partition_of(model.partitioning, partition_key)
    ns = model.table.namespace
    stale_version = lh.catalog.stale_version(ns, model.table.name, key)
    # An unpartitioned model not built yet reads as empty: when it is built, its changed keys mark
    # the partitions that read it stale, so they are rebuilt with it (see propagate.py).
    not_built = {d for d in model.deps if graph.partitioning(d) == "none" and d in graph.models}
    missing = [d for d in model.deps if d not in not_built and not lh.tables.exists(d)]
    if missing:
        raise ModelError(
            f"{model.path}: upstream table(s) {', '.join(map(str, missing))} do not exist yet; "
            "materialize them first (or wait for DataScan)"
        )
    unpartitioned_inputs = [d for d in model.deps if graph.partitioning(d) == "none"]
    versions_read = {d: lh.tables.version(d) for d in unpartitioned_inputs}
    sources = input_sources(lh, graph, model, partition)
    for dep in not_built:
        if not lh.tables.exists(dep):
            sources[dep] = graph.models[dep].arrow_schema().empty_table()
    params = model_params(lh, partition)
    schema = model.arrow_schema()
    for column in model.partitioned_by:
        schema = schema.append(pa.field(column, pa.string()))
    lh.tables.ensure_table(model.table, schema, list(model.partitioned_by), origin="model")
    change_columns = {
        spec.changes_by
        for reader in graph.readers(model.table)
        if (spec := reader.input(model.table)).changes_by
    }
    before = lh.tables.dataset(model.table) if model.partitioning == "none" and change_columns else None

    rejected_parts: list[pa.Table] = []
    result_schema: list[pa.Schema] = []
    reason_column = model.reject_reason_column

    def chunks() -> Iterator[pa.Table]:
        rejected_parts.clear()
        with lh.engine.stream(
            model.sql,
            sources,
            params,
            default_namespace=ns,
            statement_name=str(model.path),
        ) as batches:
            result_schema[:] = [batches.schema]
            for batch in batches:
                part = pa.Table.from_batches([batch])
                if reason_column:
                    if reason_column not in part.column_names:
                        raise ModelError(
                            f"{model.path}: reject_reason_column {reason_column!r} is not in the result"
                        )
                    is_rejected = pc.is_valid(part[reason_column])
                    rejected = part.filter(is_rejected)
                    if rejected.num_rows:
                        rejected_parts.append(rejected)
                    part = part.filter(pc.invert(is_rejected))
                yield _with_partition(_conform_output(model, part), partition)

    run = ModelRun(model, key, rows=0, partition=partition)
    run.rows = lh.tables.overwrite_partition(model.table, chunks, partition)
    if reason_column and model.rejected_table is not None:
        rejected_all = pa.concat_tables(rejected_parts) if rejected_parts else result_schema[0].empty_table()
        rejected_all = _with_partition(rejected_all, partition)
        lh.tables.ensure_table(
            model.rejected_table, rejected_all.schema, list(model.partitioned_by), origin="model"
        )
        run.rejected_rows = lh.tables.overwrite_partition(model.rejected_table, rejected_all, partition)
        counts = rejected_all.group_by(reason_column).aggregate([([], "count_all")])
        run.rejected_by_reason = dict(
            zip(counts[reason_column].to_pylist(), counts["count_all"].to_pylist(), strict=True)
        )
    if model.reconcile_with is not None:
        run.source_rows = lh.tables.dataset(model.reconcile_with, partition).count_rows()
    written = lh.tables.dataset(model.table, partition or None)
    if model.day_index:
        days = _day_counts(lh, model, written)
        before_days = lh.catalog.replace_partition_days(ns, model.table.name, key, days)
        run.changed_days = set(days) | set(before_days)
    if before is not None:
        run.changed_keys = _changed_keys(lh, model, before, written, change_columns)
    run.checks = [_evaluate(lh, check, written, run, sources) for check in model.checks]
    run.version = lh.tables.version(model.table)
    run.inputs_changed_meanwhile = [d for d, v in versions_read.items() if lh.tables.version(d) != v]
    if run.inputs_changed_meanwhile:
        # An input changed after we read it: rebuild again (its own propagation may have missed us).
        lh.catalog.mark_stale(
            ns,
            model.table.name,
            [key],
            f"{', '.join(map(str, run.inputs_changed_meanwhile))} changed meanwhile",
        )
    lh.catalog.clear_stale(ns, model.table.name, key, stale_version)
    return run
