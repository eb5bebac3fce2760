"""Asset factories: an ODS asset per landed table, a model asset per SQL file, with their checks."""

import warnings
from collections.abc import Iterator
from typing import Any

import dagster as dg

from lakehouse_assets.models import ModelGraph, SqlModel, arrow_type
from lakehouse_assets.ods import IngestReport, ingest_partition
from lakehouse_assets.propagate import propagate
from lakehouse_assets.transform import run_model, run_models
from resources.governance import masking_metadata
from resources.lakehouse import LakehouseResource
from resources.table_store import TableId

NO_REJECTED_FILES = "no_rejected_files"
# backfill_policy and allow_nonexistent_upstream_partitions are marked beta; we rely on them knowingly.
warnings.filterwarnings("ignore", category=dg.BetaWarning)


def asset_key(table: TableId) -> dg.AssetKey:
    return dg.AssetKey([table.namespace, table.name])


def hourly_partitions(namespace: str) -> dg.DynamicPartitionsDefinition:
    """Partitions are the landing folders DataScan has found (keys YYYY-MM-DD-HH), any date."""
    return dg.DynamicPartitionsDefinition(name=f"{namespace}_hourly")


def daily_partitions(start_date: str) -> dg.DailyPartitionsDefinition:
    """Days (keys YYYY-MM-DD) from LAKEHOUSE_DAILY_START_DATE to tomorrow, e.g. event dates."""
    return dg.DailyPartitionsDefinition(start_date=start_date, end_offset=1)


def late_data_condition() -> dg.AutomationCondition:
    """Rebuild a day when any day it reads (through its time-window mapping) was updated, however old;
    and build a day that is missing while some day it reads exists (also right after a restart).

    Dagster's `eager()` only looks at the latest time window and waits for missing inputs; late data
    changes old days, and day d+7 is legitimately missing for the last week, so neither applies."""
    AC = dg.AutomationCondition
    built_from_existing_days = AC.missing() & AC.any_deps_match(~AC.missing())
    return (
        (AC.any_deps_updated() | built_from_existing_days).since_last_handled()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    ).with_label("rebuild when a day it reads changes")


def _dep(model: SqlModel, dep: TableId, graph: ModelGraph) -> dg.AssetDep:
    kind = graph.partitioning(dep)
    mapping: dg.PartitionMapping | None = None
    if model.partitioning == "daily" and kind == "hourly":
        # Any landing hour may hold events of any day: which ones is data (the day index), not a rule.
        mapping = dg.AllPartitionMapping()
    elif model.partitioning == "daily" and kind == "daily":
        days = model.input(dep).days
        mapping = dg.TimeWindowPartitionMapping(
            start_offset=min(days), end_offset=max(days), allow_nonexistent_upstream_partitions=True
        )
    return dg.AssetDep(asset_key(dep), partition_mapping=mapping)


def _md_table(rows: list[dict[str, Any]], columns: list[str]) -> dg.MetadataValue:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")).replace("|", "\\|") for c in columns) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def ingest_metadata(report: IngestReport) -> dict[str, Any]:
    return {
        "dagster/row_count": report.rows,
        "files_loaded": len(report.loaded),
        "files_rejected": len(report.rejected),
        "rejected_files": _md_table([r.__dict__ for r in report.rejected], ["path", "reason"]),
        "schema_changed": report.schema_changed,
        "table_created": report.created,
    }


def rejected_files_check(report: IngestReport, key: dg.AssetKey) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=NO_REJECTED_FILES,
        passed=not report.rejected,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "rejected": len(report.rejected),
            "files": _md_table([r.__dict__ for r in report.rejected], ["path", "reason"]),
        },
    )


def build_ods_asset(
    table: TableId,
    partitions_def: dg.PartitionsDefinition,
    table_format: str,
    graph: ModelGraph | None = None,
) -> dg.AssetsDefinition:
    key = asset_key(table)

    @dg.asset(
        key=key,
        partitions_def=partitions_def,
        group_name="ods",
        kinds={table_format, "parquet"},
        description=f"Raw files of landing/{table.namespace}/{table.name}/dt=.../hh=..., registered by DataScan. "
        "Each partition holds exactly the rows of its current files; `_source_file` names each row's file.",
        check_specs=[
            dg.AssetCheckSpec(
                NO_REJECTED_FILES,
                asset=key,
                description="Every landed file of the partition could be read and fits the schema",
            )
        ],
        metadata={"table": str(table), "layer": "ods", **masking_metadata(table)},
    )
    def _ods(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> Iterator[Any]:
        lh = lakehouse.open()
        report = ingest_partition(lh, table, context.partition_key)
        for record in report.rejected:
            context.log.warning(f"rejected {record.path}: {record.reason}")
        marked = propagate(lh, graph, table, context.partition_key) if graph else {}
        yield dg.MaterializeResult(metadata={**ingest_metadata(report), **_marked_metadata(marked)})
        yield rejected_files_check(report, key)

    return _ods


def _column_schema(model: SqlModel) -> dg.TableSchema:
    columns = [
        dg.TableColumn(c.name, str(arrow_type(c.type)), description=c.description) for c in model.columns
    ]
    columns += [
        dg.TableColumn("dt", "string", description="Partition date (landing folder)"),
        dg.TableColumn("hh", "string", description="Partition hour (landing folder)"),
    ]
    return dg.TableSchema(columns=columns)


def _marked_metadata(marked: dict[TableId, list[str]]) -> dict[str, Any]:
    if not marked:
        return {}
    return {"marked_stale": dg.MetadataValue.json({str(t): keys for t, keys in marked.items()})}


def build_model_asset(
    model: SqlModel,
    partitions_def: dg.PartitionsDefinition | None,
    table_format: str,
    graph: ModelGraph | None = None,
) -> dg.AssetsDefinition:
    key = asset_key(model.table)
    graph = graph or ModelGraph([model])
    check_specs = [
        dg.AssetCheckSpec(c.name, asset=key, description=c.description, blocking=c.blocking)
        for c in model.checks
    ]
    daily = model.partitioning == "daily"

    @dg.asset(
        key=key,
        deps=[_dep(model, d, graph) for d in model.deps],
        partitions_def=partitions_def,
        group_name=model.layer,
        kinds={"duckdb", table_format},
        description=model.description or None,
        check_specs=check_specs,
        code_version=model.code_version,
        automation_condition=late_data_condition() if graph.automated(model) else None,
        # A range of days (a backfill, or days the automation found stale) runs in one process.
        backfill_policy=dg.BackfillPolicy.single_run() if daily else None,
        metadata={
            "dagster/column_schema": _column_schema(model),
            "table": str(model.table),
            **masking_metadata(model.table),
            "layer": model.layer,
            "partitioning": model.partitioning,
            "sql": dg.MetadataValue.md(f"```sql\n{model.sql}\n```"),
            "model_file": str(model.path.relative_to(model.path.parent.parent.parent)),
            **({"rejected_rows_table": str(model.rejected_table)} if model.rejected_table else {}),
            **({"day_index": model.day_index} if model.day_index else {}),
        },
    )
    def _model(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> Iterator[Any]:
        lh = lakehouse.open()
        if model.partitioning == "none":
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
            metadata.update(_marked_metadata(marked))
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


class IngestConfig(dg.Config):
    """Which table partition to load (for tables DataScan found after the definitions were loaded)."""

    namespace: str
    """Catalog namespace (the landing folder's first level)."""
    table: str
    """Table name (the landing folder's second level)."""
    partition_key: str
    """YYYY-MM-DD-HH."""


@dg.op(description="Load one partition of a newly discovered landing table into its ODS table.")
def ingest_new_table_partition(
    context: dg.OpExecutionContext, config: IngestConfig, lakehouse: LakehouseResource
) -> None:
    table = TableId(config.namespace, config.table)
    report = ingest_partition(lakehouse.open(), table, config.partition_key)
    context.log_event(
        dg.AssetMaterialization(
            asset_key=asset_key(table), partition=config.partition_key, metadata=ingest_metadata(report)
        )
    )


@dg.job(
    description="DataScan's loader for tables that appeared after the code location was loaded; "
    "they get their own asset on the next reload."
)
def datascan_ingest_job() -> None:
    ingest_new_table_partition()
