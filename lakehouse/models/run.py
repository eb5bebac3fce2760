"""Run a SQL model for one partition, or a range of days, and write the result, like INSERT OVERWRITE.

`run_model` streams one partition from the engine into one atomic partition write (bounded memory).
`run_models` computes a range of days of a daily model one by one and writes them in ONE commit,
since a commit costs far more than a day of an aggregate. Both then evaluate the checks on what was
written and say what changed (days, keys) for readers with another partitioning.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse.core.failpoints import failpoint
from lakehouse.core.partitioning import Partitioning
from lakehouse.models.changes import changed_keys, day_counts
from lakehouse.models.checks import CheckOutcome, evaluate_checks
from lakehouse.models.graph import ModelGraph
from lakehouse.models.inputs import day_datasets, input_sources, model_params, unbuilt_inputs
from lakehouse.models.spec import ModelError, SqlModel

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.engines.base import Session
    from lakehouse.facade import Lakehouse


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
    metrics: dict[str, int | float | None] = field(default_factory=dict)
    """The model's partition metrics (header `metrics:`) over what was written, by name."""
    metrics_error: str | None = None
    """Why the metrics could not be computed (the build itself stands)."""
    preview: list[dict[str, Any]] = field(default_factory=list)
    """The first `model.preview_rows` rows written (declared columns, real values: the owner's view)."""


def preview_rows(model: SqlModel, data: pa.Table, have: int = 0) -> list[dict[str, Any]]:
    """Up to the model's preview rows (less `have` already taken) of a conformed result, as Python."""
    want = model.preview_rows - have
    if want <= 0 or not data.num_rows:
        return []
    return data.select([c.name for c in model.columns]).slice(0, want).to_pylist()


def conform_output(model: SqlModel, result: pa.Table) -> pa.Table:
    import pyarrow as pa

    missing = [c.name for c in model.columns if c.name not in result.column_names]
    if missing:
        raise ModelError(f"{model.path}: the query does not return declared column(s) {missing}")
    schema = model.arrow_schema()
    try:
        return pa.Table.from_arrays([result.column(f.name).cast(f.type) for f in schema], schema=schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ModelError(f"{model.path}: result does not fit the declared column types ({exc})") from None


def with_partition(data: pa.Table, partition: Mapping[str, str]) -> pa.Table:
    import pyarrow as pa

    data = data.drop_columns([c for c in partition if c in data.column_names])
    for column, value in partition.items():
        data = data.append_column(column, pa.repeat(pa.scalar(value, pa.string()), data.num_rows))
    return data


def split_rejected(model: SqlModel, result: pa.Table) -> tuple[pa.Table, pa.Table | None]:
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
    (days, keys); what it was built from is recorded by the caller (see reconcile.py).
    On the Spark engine, Spark writes the partition and the table store commits it (spark_run.py)."""
    if lh.engine.name == "spark":
        from lakehouse.models.spark_run import run_model_on_spark

        return run_model_on_spark(lh, model, partition_key, graph)
    with lh.engine.session() as session:
        return _run_model(lh, session, model, partition_key, graph or ModelGraph([model]))


def _run_model(
    lh: Lakehouse, session: Session, model: SqlModel, partition_key: str | None, graph: ModelGraph
) -> ModelRun:
    import pyarrow as pa

    key = partition_key or ""
    partition = model.partitioning.values(partition_key)
    ns = model.table.namespace
    empty_inputs = unbuilt_inputs(lh, model, graph)
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
    before = (
        lh.tables.dataset(model.table) if model.partitioning is Partitioning.NONE and change_columns else None
    )

    rejected_parts: list[pa.Table] = []
    result_schema: list[pa.Schema] = []
    reason_column = model.reject_reason_column

    preview: list[dict[str, Any]] = []

    def chunks() -> Iterator[pa.Table]:
        rejected_parts.clear()
        preview.clear()
        with session.stream(
            model.sql,
            sources,
            params,
            default_namespace=ns,
            statement_name=str(model.path),
        ) as batches:
            result_schema[:] = [batches.schema]
            for batch in batches:
                part, rejected = split_rejected(model, pa.Table.from_batches([batch]))
                if rejected is not None and rejected.num_rows:
                    rejected_parts.append(rejected)
                kept = conform_output(model, part)
                preview.extend(preview_rows(model, kept, len(preview)))  # from the rows in hand
                yield with_partition(kept, partition)
                failpoint("model.write", model.table.name)

    run = ModelRun(model, key, rows=0, partition=partition)
    run.rows = lh.tables.overwrite_partition(model.table, chunks, partition)
    if reason_column and model.rejected_table is not None:
        rejected_all = pa.concat_tables(rejected_parts) if rejected_parts else result_schema[0].empty_table()
        rejected_all = with_partition(rejected_all, partition)
        lh.tables.ensure_table(
            model.rejected_table,
            rejected_all.schema,
            list(model.partitioning.columns),
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
        days = day_counts(session, model, written)
        before_days = lh.catalog.replace_partition_days(ns, model.table.name, key, days)
        run.changed_days = set(days) | set(before_days)
    if before is not None:
        run.changed_keys = changed_keys(session, model, before, written, change_columns)
    run.preview = preview
    run.checks = evaluate_checks(lh, session, model.checks, written, run, sources, model.metrics)
    run.version = lh.tables.version(model.table)
    return run


def run_models(
    lh: Lakehouse, model: SqlModel, partition_keys: list[str], graph: ModelGraph | None = None
) -> list[ModelRun]:
    """Several partitions of a model (a range of days, or hours) computed one by one, written in ONE
    commit.

    A commit costs far more than a day of an aggregate or a small hour, so a range of partitions (a
    backfill, the days late data touched, the hours of a batch of files) pays it once. The results
    are held in memory: the caller bounds the batch (reconcile.py batches hours by their input
    rows); a single partition streams instead (run_model)."""

    if lh.engine.name == "spark" and model.partitioning is not Partitioning.NONE:
        from lakehouse.models.spark_run import run_models_on_spark

        return run_models_on_spark(lh, model, partition_keys, graph)
    if len(partition_keys) == 1 or model.partitioning is Partitioning.NONE:
        return [run_model(lh, model, key, graph) for key in partition_keys]
    with lh.engine.session() as session:
        return _run_models(lh, session, model, partition_keys, graph or ModelGraph([model]))


def _run_models(
    lh: Lakehouse, session: Session, model: SqlModel, partition_keys: list[str], graph: ModelGraph
) -> list[ModelRun]:
    import pyarrow as pa

    ns = model.table.namespace
    empty_inputs = unbuilt_inputs(lh, model, graph)
    present = {d for d in model.deps if d not in empty_inputs}  # _unbuilt_inputs raised for the rest
    schema = model.arrow_schema()
    for column in model.partitioned_by:
        if column not in schema.names:
            schema = schema.append(pa.field(column, pa.string()))
    lh.tables.ensure_table(model.table, schema, list(model.partitioned_by), origin="model")
    reason_column = model.reject_reason_column
    runs: list[ModelRun] = []
    kept: list[pa.Table] = []
    rejected: list[pa.Table] = []
    sources_by_key = {}
    days = day_datasets(lh, graph, model, partition_keys, present)
    for key in partition_keys:
        partition = model.partitioning.values(key)
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
        result, bad = split_rejected(model, result)
        if bad is not None:
            bad = with_partition(bad, partition)
            run.rejected_rows = bad.num_rows
            rejected.append(bad)
        conformed = conform_output(model, result)
        run.preview = preview_rows(model, conformed)
        data = with_partition(conformed, partition)
        run.rows = data.num_rows
        kept.append(data)
        runs.append(run)
        failpoint("model.write", model.table.name)
    partitions = [r.partition for r in runs]
    lh.tables.overwrite_partitions(model.table, pa.concat_tables(kept), partitions)
    if reason_column and model.rejected_table is not None:
        bad_all = pa.concat_tables(rejected)
        lh.tables.ensure_table(
            model.rejected_table, bad_all.schema, list(model.partitioning.columns), origin="model"
        )
        lh.tables.overwrite_partitions(model.rejected_table, bad_all, partitions)
    version = lh.tables.version(model.table)
    for run, data in zip(runs, kept, strict=True):
        if model.day_index:
            held = day_counts(session, model, data)
            before_days = lh.catalog.replace_partition_days(ns, model.table.name, run.partition_key, held)
            run.changed_days = set(held) | set(before_days)
        if model.reconcile_with is not None:
            run.source_rows = lh.tables.dataset(model.reconcile_with, run.partition).count_rows()
        run.checks = evaluate_checks(
            lh, session, model.checks, data, run, sources_by_key[run.partition_key], model.metrics
        )
        run.version = version
    return runs
