"""Asset factories: an ODS asset per landed table, a model asset per SQL file, with their checks.

Everything an asset does is in the `lakehouse` package (landing.ods, models.run, models.staleness);
these functions only say how it looks to Dagster: keys, partitions, deps, checks and metadata.
"""

import warnings
from collections.abc import Iterator
from typing import Any

import dagster as dg

from lakehouse.core.ids import TableId
from lakehouse.core.partitioning import Partitioning
from lakehouse.core.settings import LakehouseSettings
from lakehouse.landing.ods import IngestReport, ingest_partition
from lakehouse.models.graph import ModelGraph
from lakehouse.models.run import run_model, run_models
from lakehouse.models.spec import SqlModel
from lakehouse.models.staleness import propagate
from lakehouse_assets.automation import late_data_condition
from lakehouse_assets.metadata import (
    column_schema,
    governance_metadata,
    ingest_metadata,
    marked_metadata,
    md_table,
)
from resources.lakehouse import LakehouseResource

NO_REJECTED_FILES = "no_rejected_files"
# backfill_policy and allow_nonexistent_upstream_partitions are marked beta; we rely on them knowingly.
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def asset_key(table: TableId) -> dg.AssetKey:
    return dg.AssetKey([table.namespace, table.name])


def _dep(model: SqlModel, dep: TableId, graph: ModelGraph) -> dg.AssetDep:
    kind = graph.partitioning(dep)
    mapping: dg.PartitionMapping | None = None
    if model.partitioning is Partitioning.DAILY and kind is Partitioning.HOURLY:
        # Any landing hour may hold events of any day: which ones is data (the day index), not a rule.
        mapping = dg.AllPartitionMapping()
    elif model.partitioning is Partitioning.DAILY and kind is Partitioning.DAILY:
        days = model.input(dep).days
        mapping = dg.TimeWindowPartitionMapping(
            start_offset=min(days), end_offset=max(days), allow_nonexistent_upstream_partitions=True
        )
    return dg.AssetDep(asset_key(dep), partition_mapping=mapping)


def rejected_files_check(report: IngestReport, key: dg.AssetKey) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=NO_REJECTED_FILES,
        passed=not report.rejected,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rejected": len(report.rejected),
            "files": md_table([r.__dict__ for r in report.rejected], ["path", "reason"]),
        },
    )


def build_ods_asset(
    table: TableId,
    partitions_def: dg.PartitionsDefinition,
    settings: LakehouseSettings,
    graph: ModelGraph,
) -> dg.AssetsDefinition:
    key = asset_key(table)

    @dg.asset(
        key=key,
        partitions_def=partitions_def,
        group_name="ods",
        kinds={settings.table_format, "parquet"},
        description=f"Raw files of landing/{table.namespace}/{table.name}/dt=.../hh=..., registered by DataScan. "
        "Each partition holds exactly the rows of its current files; `_source_file` names each row's file.",
        check_specs=[
            dg.AssetCheckSpec(
                NO_REJECTED_FILES,
                asset=key,
                description="Every landed file of the partition could be read and fits the schema",
            )
        ],
        metadata={"table": str(table), "layer": "ods", **governance_metadata(table, settings)},
    )
    def _ods(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> Iterator[Any]:
        lh = lakehouse.open()
        report = ingest_partition(lh, table, context.partition_key)
        for record in report.rejected:
            context.log.warning(f"rejected {record.path}: {record.reason}")
        marked = propagate(lh, graph, table, context.partition_key)
        yield dg.MaterializeResult(metadata={**ingest_metadata(report), **marked_metadata(marked)})
        yield rejected_files_check(report, key)

    return _ods


def build_model_asset(
    model: SqlModel,
    partitions_def: dg.PartitionsDefinition | None,
    settings: LakehouseSettings,
    graph: ModelGraph,
) -> dg.AssetsDefinition:
    key = asset_key(model.table)
    check_specs = [
        dg.AssetCheckSpec(c.name, asset=key, description=c.description, blocking=c.blocking)
        for c in model.checks
    ]
    daily = model.partitioning is Partitioning.DAILY

    @dg.asset(
        key=key,
        deps=[_dep(model, d, graph) for d in model.deps],
        partitions_def=partitions_def,
        group_name=model.layer,
        kinds={"duckdb", settings.table_format},
        description=model.description or None,
        check_specs=check_specs,
        code_version=model.code_version,
        automation_condition=late_data_condition() if graph.automated(model) else None,
        # A range of days (a backfill, or days the automation found stale) runs in one process.
        backfill_policy=dg.BackfillPolicy.single_run() if daily else None,
        metadata={
            "dagster/column_schema": column_schema(model),
            "table": str(model.table),
            **governance_metadata(model.table, settings),
            "layer": model.layer,
            "partitioning": model.partitioning.value,
            "sql": dg.MetadataValue.md(f"```sql\n{model.sql}\n```"),
            "model_file": str(model.path.relative_to(model.path.parent.parent.parent)),
            **({"rejected_rows_table": str(model.rejected_table)} if model.rejected_table else {}),
            **({"day_index": model.day_index} if model.day_index else {}),
        },
    )
    def _model(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> Iterator[Any]:
        lh = lakehouse.open()
        if model.partitioning is Partitioning.NONE:
            keys: list[str | None] = [None]
        elif daily:
            keys = list(context.partition_keys)
        else:
            keys = [context.partition_key]
        outcomes: dict[str, list[tuple[str | None, Any]]] = {}
        per_partition: dict[str, Any] = {}
        metadata: dict[str, Any] = {}
        runs = (
            run_models(lh, model, [k for k in keys if k], graph)
            if daily
            else [run_model(lh, model, keys[0], graph)]
        )
        for partition_key, run in zip(keys, runs, strict=True):
            marked = propagate(
                lh,
                graph,
                model.table,
                partition_key or "",
                changed_days=run.changed_days,
                changed_keys=run.changed_keys,
            )
            metadata = {"dagster/row_count": run.rows, "table_version": run.version or ""}
            if model.rejected_table:
                metadata["rejected_rows"] = run.rejected_rows
                metadata["rejected_by_reason"] = dg.MetadataValue.json(run.rejected_by_reason)
            if run.source_rows is not None:
                metadata["source_rows"] = run.source_rows
            if model.day_index:
                metadata["changed_days"] = dg.MetadataValue.json(sorted(run.changed_days))
            if run.changed_keys is not None:
                metadata["changed_keys"] = dg.MetadataValue.json(
                    {c: len(v) for c, v in run.changed_keys.items()}
                )
            if run.inputs_changed_meanwhile:
                metadata["inputs_changed_meanwhile"] = ", ".join(map(str, run.inputs_changed_meanwhile))
            metadata.update(marked_metadata(marked))
            per_partition[partition_key or ""] = {"rows": run.rows, "version": run.version}
            for outcome in run.checks:
                outcomes.setdefault(outcome.check.name, []).append((partition_key, outcome))
        if len(keys) > 1:  # a range of days in one run: one materialization per day, summed up here
            metadata = {
                "partitions": len(keys),
                "dagster/row_count": sum(p["rows"] for p in per_partition.values()),
                "by_partition": dg.MetadataValue.json(per_partition),
            }
        yield dg.MaterializeResult(metadata=metadata)
        for name, results in outcomes.items():
            failing = {k or "": o.failing_rows for k, o in results if not o.passed}
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=name,
                passed=not failing,
                metadata={
                    "failing_rows": sum(o.failing_rows for _, o in results),
                    "detail": results[0][1].detail
                    if len(results) == 1
                    else f"{len(failing)} partition(s) failing",
                    **({"failing_partitions": dg.MetadataValue.json(failing)} if len(results) > 1 else {}),
                },
            )

    return _model
