"""Build one partition of a model on Spark: Spark computes and writes Parquet, the table store commits.

The query (DuckDB SQL, translated) reads the data files the table store planned for each input's
current snapshot. Its result never passes through this process: Spark splits kept from rejected
rows, casts the kept ones to the declared column types, adds the partition values, and writes
Parquet (TIMESTAMP_MICROS) into a new staging folder under each table; the table store then
commits those files as one atomic overwrite of the partition (Iceberg: delete + add_files in one
transaction; Delta: one overwrite transaction with add actions). A writer killed before the commit
leaves only unreferenced files (orphans `lakehouse maintain` removes); killed after, the build is
complete. Checks, metrics, day indexes and changed keys are then computed by DuckDB over what was
committed, exactly as for a DuckDB build.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from lakehouse.core.failpoints import failpoint
from lakehouse.core.partitioning import Partitioning
from lakehouse.models.changes import changed_keys, day_counts
from lakehouse.models.checks import evaluate_checks
from lakehouse.models.graph import ModelGraph
from lakehouse.models.inputs import input_sources, model_params, unbuilt_inputs
from lakehouse.models.spec import ModelError, SqlModel

if TYPE_CHECKING:
    from lakehouse.core.ids import TableId
    from lakehouse.engines.spark import SparkEngine
    from lakehouse.facade import Lakehouse
    from lakehouse.models.run import ModelRun


PART = "__part_"
"""Prefix of the copies of partition columns Spark's writer splits files by (see _write)."""


def _write(lh: Lakehouse, engine: SparkEngine, frame: Any, table: TableId, partition: dict[str, str]) -> int:
    """Spark writes the frame as Parquet under the table; the table store commits it as the
    partition. Returns the rows committed.

    The partition's own values are constants. A table partitioned by more columns (a day index,
    event_date) gets one file per value: Spark's writer splits by a copy of each such column (its
    folder names give each file's value), and the files keep the column itself where the format
    wants it in the files (Iceberg) or drop it (Delta)."""
    from pyspark.sql import functions as F  # noqa: N812

    store = lh.tables
    extra = [c for c in store.partition_columns(table) if c not in partition]
    if store.files_hold_partition_columns:
        for column, value in partition.items():
            frame = frame.withColumn(column, F.lit(value))
    else:
        frame = frame.drop(*[c for c in partition if c in frame.columns])
    for column in extra:
        frame = frame.withColumn(PART + column, F.col(column).cast("string"))
    if extra and not store.files_hold_partition_columns:
        frame = frame.drop(*extra)
    staging = store.staging_location(table)
    started = time.perf_counter()
    try:
        writer = frame.write.mode("error")
        if extra:
            writer = writer.partitionBy(*[PART + c for c in extra])
        writer.parquet(_spark_path(staging))
    except Exception as exc:
        raise ModelError(
            f"{table}: Spark could not write the partition: {str(exc).splitlines()[0][:400]}"
        ) from None
    engine._add("execute", time.perf_counter() - started)
    failpoint("model.write", table.name)
    started = time.perf_counter()
    files = [(path, _folder_values(path, staging)) for path in _parquet_files(lh, staging)]
    rows = store.commit_files(table, files, partition)
    engine._add("commit", time.perf_counter() - started)
    return rows


def _folder_values(path: str, staging: str) -> dict[str, str | None]:
    """The partition values Spark's writer put in a file's folder names (__part_col=value)."""
    from urllib.parse import unquote

    values: dict[str, str | None] = {}
    for segment in path.removeprefix(staging).strip("/").split("/")[:-1]:
        name, _, value = segment.partition("=")
        if name.startswith(PART):
            values[name.removeprefix(PART)] = (
                None if value == "__HIVE_DEFAULT_PARTITION__" else unquote(value)
            )
    return values


def _spark_path(location: str) -> str:
    from lakehouse.engines.spark import spark_uri

    return spark_uri(location.removeprefix("file://"))


def _parquet_files(lh: Lakehouse, folder: str) -> list[str]:
    """The Parquet files Spark wrote into a staging folder (not its _SUCCESS marker or .crc files)."""
    import pyarrow.fs as pafs

    from lakehouse.storage.tables.base import arrow_paths

    filesystem, (path,) = arrow_paths([folder], lh.settings)
    found = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
    prefix = folder[: len(folder) - len(path)] if folder.endswith(path) else ""
    return sorted(
        prefix + f.path
        for f in found
        if f.type == pafs.FileType.File
        and f.base_name.endswith(".parquet")
        and not f.base_name.startswith(".")
    )


def run_model_on_spark(
    lh: Lakehouse, model: SqlModel, partition_key: str | None, graph: ModelGraph | None = None
) -> ModelRun:
    """One partition of a model built on the Spark engine (see the module doc)."""
    import pyarrow as pa
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    from lakehouse.models.run import ModelRun

    engine: SparkEngine = lh.engine  # type: ignore[assignment]
    graph = graph or ModelGraph([model])
    key = partition_key or ""
    partition = model.partitioning.values(partition_key)
    ns = model.table.namespace
    sources = {**input_sources(lh, graph, model, partition), **unbuilt_inputs(lh, model, graph)}
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
    frame = engine.frame(
        model.sql, sources, model_params(lh, partition), default_namespace=ns, statement_name=str(model.path)
    )
    missing = [c.name for c in model.columns if c.name not in frame.columns]
    if missing:
        raise ModelError(f"{model.path}: the query does not return declared column(s) {missing}")
    reason = model.reject_reason_column
    if reason and reason not in frame.columns:
        raise ModelError(f"{model.path}: reject_reason_column {reason!r} is not in the result")
    declared = from_arrow_schema(model.arrow_schema(), prefer_timestamp_ntz=True)
    if reason:
        frame = frame.persist()  # read once for the kept and the rejected rows
    try:
        kept = frame.where(F.col(reason).isNull()) if reason else frame
        kept = kept.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in declared])
        run = ModelRun(model, key, rows=0, partition=partition)
        run.rows = _write(lh, engine, kept, model.table, partition)
        if reason and model.rejected_table is not None:
            rejected = frame.where(F.col(reason).isNotNull())
            rejected_schema = to_arrow_schema(rejected.schema, prefers_large_types=False)
            for column in model.partitioning.columns:
                if column not in rejected_schema.names:
                    rejected_schema = rejected_schema.append(pa.field(column, pa.string()))
            lh.tables.ensure_table(
                model.rejected_table, rejected_schema, list(model.partitioning.columns), origin="model"
            )
            run.rejected_rows = _write(lh, engine, rejected, model.rejected_table, partition)
            counts = (
                lh.tables.dataset(model.rejected_table, partition or None)
                .to_table(columns=[reason])
                .group_by(reason)
                .aggregate([([], "count_all")])
            )
            run.rejected_by_reason = dict(
                zip(counts[reason].to_pylist(), counts["count_all"].to_pylist(), strict=True)
            )
    finally:
        if reason:
            frame.unpersist()
    if model.reconcile_with is not None:
        run.source_rows = lh.tables.dataset(model.reconcile_with, partition).count_rows()
    written = lh.tables.dataset(model.table, partition or None)
    with lh.local_engine.session() as session:
        if model.day_index:
            days = day_counts(session, model, written)
            before_days = lh.catalog.replace_partition_days(ns, model.table.name, key, days)
            run.changed_days = set(days) | set(before_days)
        if before is not None:
            run.changed_keys = changed_keys(session, model, before, written, change_columns)
        if model.preview_rows:
            names = [c.name for c in model.columns]
            run.preview = written.head(model.preview_rows, columns=names).to_pylist()
        run.checks = evaluate_checks(lh, session, model.checks, written, run, sources, model.metrics)
    run.version = lh.tables.version(model.table)
    return run
