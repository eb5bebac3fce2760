"""Asset factories: an ODS asset per landed table, a model asset per SQL file, with their checks.

Everything an asset does is in the `lakehouse` package (models.reconcile: the same build and
record as a reconcile run); these functions only say how it looks to Dagster: keys, partitions,
deps, checks and metadata. Sensors do not launch these assets: the DataScan sensor launches one
reconcile run per namespace (sensors/reconcile.py), which reports the same materializations.
"""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from lakehouse.core.ids import TableId
from lakehouse.core.partitioning import Partitioning
from lakehouse.core.settings import LakehouseSettings
from lakehouse.facade import Lakehouse
from lakehouse.landing.ods import IngestReport
from lakehouse.models.graph import ModelGraph
from lakehouse.models.reconcile import Reconciler
from lakehouse.models.spec import SqlModel
from lakehouse.storage.leases import Worker
from lakehouse_assets.metadata import (
    column_schema,
    governance_metadata,
    ingest_metadata,
    md_table,
    run_metadata,
)
from resources.lakehouse import LakehouseResource

NO_REJECTED_FILES = "no_rejected_files"
# backfill_policy and allow_nonexistent_upstream_partitions are marked beta; we rely on them knowingly.
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def asset_key(table: TableId) -> dg.AssetKey:
    return dg.AssetKey([table.namespace, table.name])


@contextmanager
def writing(
    lakehouse: LakehouseResource, namespace: str, context: dg.AssetExecutionContext
) -> Iterator[Lakehouse]:
    """The lakehouse, as the one writer of the namespace (waits for a reconcile run to finish)."""
    lh = lakehouse.open()
    with Worker(lh.catalog, namespace, run_id=context.run_id) as worker:
        worker.acquire(on_wait=lambda holder: context.log.info(f"waiting for {holder} to finish {namespace}"))
        yield lh


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
        description=f"Raw files of table folder {table.name} (landing/{table.namespace}/{table.name}/ or a DataScan task's location), registered by DataScan. "
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
        # By hand (UI, `dagster asset materialize`): the same build and record as a reconcile run.
        with writing(lakehouse, table.namespace, context) as lh:
            built = Reconciler(lh, graph).build_ods(table, [context.partition_key])
        [report] = built.reports
        for record in report.rejected:
            context.log.warning(f"rejected {record.path}: {record.reason}")
        yield dg.MaterializeResult(metadata=ingest_metadata(report))
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
        # By hand (UI, `dagster asset materialize`, a backfill): the partitions asked for, built and
        # recorded as a reconcile run would; what they leave stale downstream, the next tick builds.
        if model.partitioning is Partitioning.NONE:
            keys = [""]
        elif daily:
            keys = list(context.partition_keys)
        else:
            keys = [context.partition_key]
        with writing(lakehouse, model.table.namespace, context) as lh:
            reconciler = Reconciler(lh, graph)
            built = reconciler.build_model(model, {k: reconciler.wanted(model, k) for k in keys})
        runs = built.runs
        if len(runs) == 1:
            metadata = run_metadata(model, runs[0])
        else:  # a range of days in one run: one materialization per day, each with its own figures
            for run in runs:
                context.add_asset_metadata(run_metadata(model, run), partition_key=run.partition_key)
            metadata = {
                "partitions": len(runs),
                "dagster/row_count": sum(r.rows for r in runs),
                "by_partition": dg.MetadataValue.json(
                    {r.partition_key: {"rows": r.rows, "version": r.version} for r in runs}
                ),
            }
        if built.blocked:
            metadata["blocked_partitions"] = dg.MetadataValue.json(built.blocked)
        yield dg.MaterializeResult(metadata=metadata)
        outcomes: dict[str, list[tuple[str, Any]]] = {}
        for run in runs:
            for outcome in run.checks:
                outcomes.setdefault(outcome.check.name, []).append((run.partition_key, outcome))
        for name, results in outcomes.items():
            failing = {k: o.failing_rows for k, o in results if not o.passed}
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
