"""Run one SQL model for one partition and write the result, like INSERT OVERWRITE ... PARTITION."""

from __future__ import annotations

import datetime
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse_assets.models import PARTITION_COLUMNS, Check, ModelError, ModelGraph, SqlModel
from resources.engine import quote_ident
from resources.table_store import TableId
from sensors.layout import split_partition_key

if TYPE_CHECKING:
    import pyarrow as pa

    from resources.engine import DuckDBSession
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


def day_datasets(
    lh: Lakehouse,
    graph: ModelGraph,
    model: SqlModel,
    partition_keys: list[str],
    present: set[TableId] | None = None,
) -> dict[tuple[TableId, str], Any]:
    """(input, day) -> the rows of that day, for every day the given partitions of a daily model read.

    Daily inputs are partitioned by dt; hourly ones by their day index as well, so one scan plan per
    input finds exactly those days' files (never the rest of history), whichever landing hours they
    came in with."""
    found: dict[tuple[TableId, str], Any] = {}
    if model.partitioning != "daily":
        return found
    for dep in model.deps:
        kind = graph.partitioning(dep)
        column = "dt" if kind == "daily" else graph.day_index(dep) if kind == "hourly" else None
        if not column or not (lh.tables.exists(dep) if present is None else dep in present):
            continue
        offsets = model.input(dep).days
        days = sorted({shift_day(key, o) for key in partition_keys for o in offsets})
        for day, dataset in lh.tables.datasets_by_value(dep, column, days).items():
            found[(dep, day)] = dataset
    return found


def input_sources(
    lh: Lakehouse,
    graph: ModelGraph,
    model: SqlModel,
    partition: Mapping[str, str],
    days: Mapping[tuple[TableId, str], Any] | None = None,
    present: set[TableId] | None = None,
) -> dict[TableId | str, Any]:
    """Each input, narrowed to what this partition reads (never history it does not need).

    `days` (from day_datasets) and `present` (the inputs that exist) let a range of partitions plan
    each input once."""
    import pyarrow.dataset as pads

    if present is None:
        present = {d for d in model.deps if lh.tables.exists(d)}
    if model.partitioning == "daily" and days is None:
        days = day_datasets(lh, graph, model, [partition["dt"]], present)
    sources: dict[TableId | str, Any] = {}
    for dep in model.deps:
        kind = graph.partitioning(dep)
        if dep not in present:
            continue  # an unpartitioned model not built yet (run_model decides)
        if kind == "none" or model.partitioning == "none":
            sources[dep] = lh.tables.dataset(dep)
        elif model.partitioning == "hourly":
            sources[dep] = lh.tables.dataset(dep, partition)
        else:  # a daily model: the days it reads, by offset from its own day, of any landing hour
            assert days is not None
            parts = [days[(dep, shift_day(partition["dt"], o))] for o in model.input(dep).days]
            sources[dep] = parts[0] if len(parts) == 1 else pads.dataset(parts)
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


def _check_sql(check: Check, i: int) -> tuple[str, dict[str, Any]]:
    """One check as a scalar query counting failing rows over `this` (the written partition)."""
    if check.kind == "sql":
        assert check.query is not None
        return check.query, {}
    cols = [quote_ident(c) for c in check.columns]
    if check.kind == "not_null":
        return f"select count(*) from this where {' or '.join(f'{c} is null' for c in cols)}", {}
    if check.kind == "unique":
        group = ", ".join(cols)
        return (
            f"select coalesce(sum(n - 1), 0) from (select count(*) n from this group by {group} having n > 1)",
            {},
        )
    if check.kind == "accepted_range":
        conds, params = [], {}
        if check.min is not None:
            conds.append(f"{cols[0]} < $min_{i}")
            params[f"min_{i}"] = check.min
        if check.max is not None:
            conds.append(f"{cols[0]} > $max_{i}")
            params[f"max_{i}"] = check.max
        return f"select count(*) from this where {' or '.join(conds) or 'false'}", params
    raise ModelError(f"unknown check kind {check.kind!r}")


def _evaluate_all(
    lh: Lakehouse,
    session: DuckDBSession,
    checks: tuple[Check, ...],
    data: Any,
    run: ModelRun,
    sources: Mapping[TableId | str, Any],
) -> list[CheckOutcome]:
    """Every check of one partition in ONE query (one engine session, one scan setup)."""
    outcomes: dict[str, CheckOutcome] = {}
    queries, params = [], model_params(lh, run.partition)
    for i, check in enumerate(checks):
        if check.kind == "reconcile":
            total = run.rows + run.rejected_rows
            outcomes[check.name] = CheckOutcome(
                check,
                run.source_rows == total,
                abs((run.source_rows or 0) - total),
                f"{run.model.reconcile_with}: {run.source_rows} rows; table {run.rows} + rejected {run.rejected_rows}",
            )
            continue
        sql, check_params = _check_sql(check, i)
        queries.append((check, sql))
        params.update(check_params)
    if queries:
        select = ", ".join(f"({sql}) as c{i}" for i, (_, sql) in enumerate(queries))
        result = session.query(
            f"select {select}",
            {**sources, "this": data},
            params,
            default_namespace=run.model.table.namespace,
            statement_name=f"{run.model.path}: checks {', '.join(c.name for c, _ in queries)}",
        ).to_pylist()[0]
        for i, (check, _) in enumerate(queries):
            failing = int(result[f"c{i}"] or 0)
            outcomes[check.name] = CheckOutcome(
                check, failing == 0, failing, f"{failing} failing row(s): {check.description}"
            )
    return [outcomes[c.name] for c in checks]


def _day_counts(session: DuckDBSession, model: SqlModel, written: Any) -> dict[str, int]:
    assert model.day_index
    column = quote_ident(model.day_index)
    counts = session.query(
        f"select cast({column} as varchar) as day, count(*) as n from t where {column} is not null group by 1",
        {"t": written},
        statement_name=f"{model.path}: day index",
    )
    return dict(zip(counts["day"].to_pylist(), counts["n"].to_pylist(), strict=True))


def _changed_keys(
    session: DuckDBSession, model: SqlModel, before: Any, after: Any, columns: set[str]
) -> dict[str, list[Any]]:
    """Values of each column whose rows differ between two versions of an unpartitioned table."""
    names = ", ".join(quote_ident(c.name) for c in model.columns)
    changed: dict[str, list[Any]] = {}
    for column in sorted(columns):
        result = session.query(
            f"select distinct {quote_ident(column)} as k from ("
            f"(select {names} from old except all select {names} from new) union all "
            f"(select {names} from new except all select {names} from old))",
            {"old": before, "new": after},
            statement_name=f"{model.path}: changed {column} values",
        )
        changed[column] = result["k"].to_pylist()
    return changed


def _unbuilt_inputs(lh: Lakehouse, model: SqlModel, graph: ModelGraph) -> dict[TableId | str, Any]:
    """Refuse to run before the inputs exist, except unpartitioned models not built yet: they read
    as empty (when built, their changed keys mark the partitions that read them stale, so those are
    rebuilt with them; see propagate.py). Returns the empty stand-ins."""
    empty: dict[TableId | str, Any] = {}
    missing = []
    for dep in model.deps:
        if lh.tables.exists(dep):
            continue
        if graph.partitioning(dep) == "none" and dep in graph.models:
            empty[dep] = graph.models[dep].arrow_schema().empty_table()
        else:
            missing.append(dep)
    if missing:
        raise ModelError(
            f"{model.path}: upstream table(s) {', '.join(map(str, missing))} do not exist yet; "
            "materialize them first (or wait for DataScan)"
        )
    return empty


def _split_rejected(model: SqlModel, result: pa.Table) -> tuple[pa.Table, pa.Table | None]:
    """(kept rows, rejected rows) by the model's reject_reason_column (None without one)."""
    import pyarrow.compute as pc

    column = model.reject_reason_column
    if not column:
        return result, None
    if column not in result.column_names:
        raise ModelError(f"{model.path}: reject_reason_column {column!r} is not in the result")
    is_rejected = pc.is_valid(result[column])
    return result.filter(pc.invert(is_rejected)), result.filter(is_rejected)


def run_model(
    lh: Lakehouse, model: SqlModel, partition_key: str | None, graph: ModelGraph | None = None
) -> ModelRun:
    """Compute the partition, write it (and its rejected rows), and evaluate the model's checks.

    The result streams from the engine into one atomic partition write, so memory stays bounded;
    checks then run on the partition as it was written. Afterwards the run knows what it changed
    (days, keys) so that readers with other partitioning can be marked stale (see propagate.py)."""
    with lh.engine.session() as session:
        return _run_model(lh, session, model, partition_key, graph or ModelGraph([model]))


def _run_model(
    lh: Lakehouse, session: DuckDBSession, model: SqlModel, partition_key: str | None, graph: ModelGraph
) -> ModelRun:
    import pyarrow as pa

    key = partition_key or ""
    partition = partition_of(model.partitioning, partition_key)
    ns = model.table.namespace
    stale_version = lh.catalog.stale_version(ns, model.table.name, key)
    empty_inputs = _unbuilt_inputs(lh, model, graph)
    unpartitioned_inputs = [d for d in model.deps if graph.partitioning(d) == "none"]

    def version_of(table: TableId) -> str | None:
        return lh.tables.version(table) if lh.tables.exists(table) else None

    versions_read = {d: version_of(d) for d in unpartitioned_inputs}
    sources = {**input_sources(lh, graph, model, partition), **empty_inputs}
    params = model_params(lh, partition)
    schema = model.arrow_schema()
    for column in model.partitioned_by:
        if column not in schema.names:
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
        with session.stream(
            model.sql,
            sources,
            params,
            default_namespace=ns,
            statement_name=str(model.path),
        ) as batches:
            result_schema[:] = [batches.schema]
            for batch in batches:
                part, rejected = _split_rejected(model, pa.Table.from_batches([batch]))
                if rejected is not None and rejected.num_rows:
                    rejected_parts.append(rejected)
                yield _with_partition(_conform_output(model, part), partition)

    run = ModelRun(model, key, rows=0, partition=partition)
    run.rows = lh.tables.overwrite_partition(model.table, chunks, partition)
    if reason_column and model.rejected_table is not None:
        rejected_all = pa.concat_tables(rejected_parts) if rejected_parts else result_schema[0].empty_table()
        rejected_all = _with_partition(rejected_all, partition)
        lh.tables.ensure_table(
            model.rejected_table,
            rejected_all.schema,
            list(PARTITION_COLUMNS[model.partitioning]),
            origin="model",
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
        days = _day_counts(session, model, written)
        before_days = lh.catalog.replace_partition_days(ns, model.table.name, key, days)
        run.changed_days = set(days) | set(before_days)
    if before is not None:
        run.changed_keys = _changed_keys(session, model, before, written, change_columns)
    run.checks = _evaluate_all(lh, session, model.checks, written, run, sources)
    run.version = lh.tables.version(model.table)
    run.inputs_changed_meanwhile = [d for d, v in versions_read.items() if version_of(d) != v]
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


def run_models(
    lh: Lakehouse, model: SqlModel, partition_keys: list[str], graph: ModelGraph | None = None
) -> list[ModelRun]:
    """Several partitions of a daily model (a range of days) computed one by one, written in ONE commit.

    A commit costs far more than a day of an aggregate, so a range of days (a backfill, or the days
    late data touched) pays it once. The days' results are held in memory: meant for daily
    aggregates; a single partition streams instead (run_model)."""

    if len(partition_keys) == 1 or model.partitioning != "daily":
        return [run_model(lh, model, key, graph) for key in partition_keys]
    with lh.engine.session() as session:
        return _run_models(lh, session, model, partition_keys, graph or ModelGraph([model]))


def _run_models(
    lh: Lakehouse, session: DuckDBSession, model: SqlModel, partition_keys: list[str], graph: ModelGraph
) -> list[ModelRun]:
    import pyarrow as pa

    ns = model.table.namespace
    stale_versions = {k: lh.catalog.stale_version(ns, model.table.name, k) for k in partition_keys}
    empty_inputs = _unbuilt_inputs(lh, model, graph)
    present = {d for d in model.deps if d not in empty_inputs}  # _unbuilt_inputs raised for the rest
    schema = model.arrow_schema().append(pa.field("dt", pa.string()))
    lh.tables.ensure_table(model.table, schema, list(model.partitioned_by), origin="model")
    reason_column = model.reject_reason_column
    runs: list[ModelRun] = []
    kept: list[pa.Table] = []
    rejected: list[pa.Table] = []
    sources_by_key = {}
    days = day_datasets(lh, graph, model, partition_keys, present)
    for key in partition_keys:
        partition = partition_of("daily", key)
        sources = {**input_sources(lh, graph, model, partition, days, present), **empty_inputs}
        sources_by_key[key] = sources
        result = session.query(
            model.sql,
            sources,
            model_params(lh, partition),
            default_namespace=ns,
            statement_name=f"{model.path} [{key}]",
        )
        run = ModelRun(model, key, rows=0, partition=partition)
        result, bad = _split_rejected(model, result)
        if bad is not None:
            bad = _with_partition(bad, partition)
            run.rejected_rows = bad.num_rows
            rejected.append(bad)
        data = _with_partition(_conform_output(model, result), partition)
        run.rows = data.num_rows
        kept.append(data)
        runs.append(run)
    partitions = [r.partition for r in runs]
    lh.tables.overwrite_partitions(model.table, pa.concat_tables(kept), partitions)
    if reason_column and model.rejected_table is not None:
        bad_all = pa.concat_tables(rejected)
        lh.tables.ensure_table(
            model.rejected_table, bad_all.schema, list(PARTITION_COLUMNS[model.partitioning]), origin="model"
        )
        lh.tables.overwrite_partitions(model.rejected_table, bad_all, partitions)
    version = lh.tables.version(model.table)
    for run, data in zip(runs, kept, strict=True):
        if model.reconcile_with is not None:
            run.source_rows = lh.tables.dataset(model.reconcile_with, run.partition).count_rows()
        run.checks = _evaluate_all(lh, session, model.checks, data, run, sources_by_key[run.partition_key])
        run.version = version
        lh.catalog.clear_stale(ns, model.table.name, run.partition_key, stale_versions[run.partition_key])
    return runs
