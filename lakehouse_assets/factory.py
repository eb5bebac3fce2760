"""Asset factories: an ODS asset per landed table, a model asset per SQL file, with their checks."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from lakehouse_assets.models import SqlModel, arrow_type
from lakehouse_assets.ods import IngestReport, ingest_partition
from lakehouse_assets.transform import run_model
from resources.governance import masking_metadata
from resources.lakehouse import LakehouseResource
from resources.table_store import TableId

NO_REJECTED_FILES = "no_rejected_files"


def asset_key(table: TableId) -> dg.AssetKey:
    return dg.AssetKey([table.namespace, table.name])


def hourly_partitions(namespace: str) -> dg.DynamicPartitionsDefinition:
    """Partitions are the landing folders DataScan has found (keys YYYY-MM-DD-HH), any date."""
    return dg.DynamicPartitionsDefinition(name=f"{namespace}_hourly")


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
    table: TableId, partitions_def: dg.PartitionsDefinition, table_format: str
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
        report = ingest_partition(lakehouse.open(), table, context.partition_key)
        for record in report.rejected:
            context.log.warning(f"rejected {record.path}: {record.reason}")
        yield dg.MaterializeResult(metadata=ingest_metadata(report))
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


def build_model_asset(
    model: SqlModel, partitions_def: dg.PartitionsDefinition, table_format: str
) -> dg.AssetsDefinition:
    key = asset_key(model.table)
    check_specs = [
        dg.AssetCheckSpec(c.name, asset=key, description=c.description, blocking=c.blocking)
        for c in model.checks
    ]

    @dg.asset(
        key=key,
        deps=[asset_key(d) for d in model.deps],
        partitions_def=partitions_def,
        group_name=model.layer,
        kinds={"duckdb", table_format},
        description=model.description or None,
        check_specs=check_specs,
        code_version=model.code_version,
        metadata={
            "dagster/column_schema": _column_schema(model),
            "table": str(model.table),
            **masking_metadata(model.table),
            "layer": model.layer,
            "sql": dg.MetadataValue.md(f"```sql\n{model.sql}\n```"),
            "model_file": str(model.path.relative_to(model.path.parent.parent.parent)),
            **({"rejected_rows_table": str(model.rejected_table)} if model.rejected_table else {}),
        },
    )
    def _model(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> Iterator[Any]:
        run = run_model(lakehouse.open(), model, context.partition_key)
        metadata: dict[str, Any] = {"dagster/row_count": run.rows, "table_version": run.version or ""}
        if model.rejected_table:
            metadata["rejected_rows"] = run.rejected_rows
            metadata["rejected_by_reason"] = dg.MetadataValue.json(run.rejected_by_reason)
        if run.source_rows is not None:
            metadata["source_rows"] = run.source_rows
        yield dg.MaterializeResult(metadata=metadata)
        for outcome in run.checks:
            yield dg.AssetCheckResult(
                asset_key=key,
                check_name=outcome.check.name,
                passed=outcome.passed,
                metadata={"failing_rows": outcome.failing_rows, "detail": outcome.detail},
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
