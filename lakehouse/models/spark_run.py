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


def _write(
    lh: Lakehouse, engine: SparkEngine, frame: Any, table: TableId, partitions: list[dict[str, str]]
) -> dict[tuple[tuple[str, str | None], ...], int]:
    """Spark writes the frame (its rows of every partition, partition columns included) as Parquet
    under the table; the table store commits it as those partitions. Returns rows by partition.

    Spark's writer splits files by a copy of each partition column of the table (a day index too),
    so each file holds one value of each and its folder names say which; the files keep the
    columns themselves where the format wants them in the files (Iceberg) or drop them (Delta)."""
    from pyspark.sql import functions as F  # noqa: N812

    store = lh.tables
    columns = store.partition_columns(table)
    for column in columns:
        frame = frame.withColumn(PART + column, F.col(column).cast("string"))
    if not store.files_hold_partition_columns:
        frame = frame.drop(*columns)
    staging = store.staging_location(table)
    started = time.perf_counter()
    try:
        writer = frame.write.mode("error")
        if columns:
            writer = writer.partitionBy(*[PART + c for c in columns])
        writer.parquet(_spark_path(staging))
    except Exception as exc:
        first = str(exc).splitlines()[0][:400] if str(exc) else type(exc).__name__
        raise ModelError(f"{table}: Spark could not write the partition(s): {first}") from None
    engine._add("execute", time.perf_counter() - started)
    failpoint("model.write", table.name)
    started = time.perf_counter()
    files = [(path, _folder_values(path, staging)) for path in _parquet_files(lh, staging)]
    committed = store.commit_files(table, files, partitions)
    engine._add("commit", time.perf_counter() - started)
    rows: dict[tuple[tuple[str, str | None], ...], int] = {}
    for file in committed:
        key = tuple(sorted(file.partition_values.items()))
        rows[key] = rows.get(key, 0) + file.rows
    return rows


def _rows_of(rows: dict[tuple[tuple[str, str | None], ...], int], partition: dict[str, str]) -> int:
    """Rows written to a partition: files whose values agree with it (a day index may split it)."""
    return sum(n for key, n in rows.items() if all(dict(key).get(c) == v for c, v in partition.items()))


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
    return run_models_on_spark(lh, model, [partition_key or ""], graph)[0]


SPARK_BATCH = 8
"""Partitions of a model one Spark job computes and one commit writes. More in one union made one
stage hold too much at once: 45 days of ads_retention_daily failed a 1 GB executor with
"Could not allocate memory to grow BytesToBytesMap"."""


def run_models_on_spark(
    lh: Lakehouse, model: SqlModel, partition_keys: list[str], graph: ModelGraph | None = None
) -> list[ModelRun]:
    """Partitions of a model built on Spark, SPARK_BATCH at a time: each batch is one job and one
    commit (see the module doc), each partition's query with its own inputs and parameters, unioned."""
    runs: list[ModelRun] = []
    for start in range(0, len(partition_keys), SPARK_BATCH):
        runs.extend(_run_batch(lh, model, partition_keys[start : start + SPARK_BATCH], graph))
    return runs


def _run_batch(
    lh: Lakehouse, model: SqlModel, partition_keys: list[str], graph: ModelGraph | None = None
) -> list[ModelRun]:
    import pyarrow as pa
    from pyspark.sql import functions as F  # noqa: N812
    from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

    from lakehouse.models.inputs import day_datasets
    from lakehouse.models.run import ModelRun

    engine: SparkEngine = lh.engine  # type: ignore[assignment]
    graph = graph or ModelGraph([model])
    ns = model.table.namespace
    empty_inputs = unbuilt_inputs(lh, model, graph)
    present = {d for d in model.deps if d not in empty_inputs}
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
    keys = [k or "" for k in partition_keys]
    days = day_datasets(lh, graph, model, keys, present) if len(keys) > 1 else None
    reason = model.reject_reason_column
    declared = from_arrow_schema(model.arrow_schema(), prefer_timestamp_ntz=True)
    partitions: list[dict[str, str]] = []
    sources_by_key: dict[str, dict[Any, Any]] = {}
    frames = []
    for i, key in enumerate(keys):
        partition = model.partitioning.values(key or None)
        partitions.append(partition)
        sources = {**input_sources(lh, graph, model, partition, days, present), **empty_inputs}
        sources_by_key[key] = sources
        frame = engine.frame(
            model.sql,
            sources,
            model_params(lh, partition),
            default_namespace=ns,
            statement_name=str(model.path) if len(keys) == 1 else f"{model.path} [{key}]",
            view_suffix=f"_{i}" if len(keys) > 1 else "",
        )
        missing = [c.name for c in model.columns if c.name not in frame.columns]
        if missing:
            raise ModelError(f"{model.path}: the query does not return declared column(s) {missing}")
        if reason and reason not in frame.columns:
            raise ModelError(f"{model.path}: reject_reason_column {reason!r} is not in the result")
        for column, value in partition.items():
            frame = frame.withColumn(column, F.lit(value))
        frames.append(frame)
    frame = frames[0]
    for other in frames[1:]:
        frame = frame.unionByName(other)
    if reason:
        frame = frame.persist()  # read once for the kept and the rejected rows
    runs = [ModelRun(model, key, rows=0, partition=p) for key, p in zip(keys, partitions, strict=True)]
    try:
        kept = frame.where(F.col(reason).isNull()) if reason else frame
        names = [f.name for f in declared]
        extra = [c for c in model.partitioning.columns if c not in names]
        kept = kept.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in declared], *extra)
        written_rows = _write(lh, engine, kept, model.table, partitions)
        for run in runs:
            run.rows = _rows_of(written_rows, run.partition)
        if reason and model.rejected_table is not None:
            rejected = frame.where(F.col(reason).isNotNull())
            rejected_schema = to_arrow_schema(rejected.schema, prefers_large_types=False)
            lh.tables.ensure_table(
                model.rejected_table, rejected_schema, list(model.partitioning.columns), origin="model"
            )
            rejected_rows = _write(lh, engine, rejected, model.rejected_table, partitions)
            for run in runs:
                run.rejected_rows = _rows_of(rejected_rows, run.partition)
                if not run.rejected_rows:
                    continue
                counts = (
                    lh.tables.dataset(model.rejected_table, run.partition or None)
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
    version = lh.tables.version(model.table)
    with lh.local_engine.session() as session:
        for run in runs:
            if model.reconcile_with is not None:
                run.source_rows = lh.tables.dataset(model.reconcile_with, run.partition).count_rows()
            written = lh.tables.dataset(model.table, run.partition or None)
            if model.day_index:
                held = day_counts(session, model, written)
                before_days = lh.catalog.replace_partition_days(ns, model.table.name, run.partition_key, held)
                run.changed_days = set(held) | set(before_days)
            if before is not None:
                run.changed_keys = changed_keys(session, model, before, written, change_columns)
            if model.preview_rows:
                run.preview = written.head(
                    model.preview_rows, columns=[c.name for c in model.columns]
                ).to_pylist()
            run.checks = evaluate_checks(
                lh, session, model.checks, written, run, sources_by_key[run.partition_key], model.metrics
            )
            run.version = version
    return runs
