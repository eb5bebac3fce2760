"""Materialization and definition metadata: what a user sees of a table in the Dagster UI."""

from __future__ import annotations

from typing import Any

import dagster as dg

from lakehouse.core.ids import TableId
from lakehouse.core.settings import LakehouseSettings
from lakehouse.governance.store import MASKING_ENABLED_KEY, table_governance
from lakehouse.landing.ods import IngestReport
from lakehouse.models.checks import CheckOutcome
from lakehouse.models.run import ModelRun
from lakehouse.models.spec import SqlModel, arrow_type


def md_table(rows: list[dict[str, Any]], columns: list[str]) -> dg.MetadataValue:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")).replace("|", "\\|") for c in columns) + " |")
    return dg.MetadataValue.md("\n".join(lines))


def ingest_metadata(report: IngestReport) -> dict[str, Any]:
    return {
        "dagster/row_count": report.rows,
        "files_loaded": len(report.loaded),
        "files_rejected": len(report.rejected),
        "rejected_files": md_table([r.__dict__ for r in report.rejected], ["path", "reason"]),
        "schema_changed": report.schema_changed,
        "table_created": report.created,
    }


def run_metadata(model: SqlModel, run: ModelRun) -> dict[str, Any]:
    """What one built partition of a model shows: rows, version, rejected rows, what changed."""
    metadata: dict[str, Any] = {"dagster/row_count": run.rows, "table_version": run.version or ""}
    if model.rejected_table:
        metadata["rejected_rows"] = run.rejected_rows
        metadata["rejected_by_reason"] = dg.MetadataValue.json(run.rejected_by_reason)
    if run.source_rows is not None:
        metadata["source_rows"] = run.source_rows
    if model.day_index:
        metadata["changed_days"] = dg.MetadataValue.json(sorted(run.changed_days))
    if run.changed_keys is not None:
        metadata["changed_keys"] = dg.MetadataValue.json({c: len(v) for c, v in run.changed_keys.items()})
    metadata.update(metric_metadata(run))
    if model.preview_rows:
        metadata["preview"] = preview_table(model, run.preview)
    return metadata


def metric_metadata(run: ModelRun) -> dict[str, dg.MetadataValue]:
    """The model's partition metrics as numbers, so the asset's Plots tab charts them per partition."""
    metadata: dict[str, dg.MetadataValue] = {
        # NULL (say max() of an empty partition) stays a float without a value: a gap in the plot
        name: dg.MetadataValue.int(value) if isinstance(value, int) else dg.FloatMetadataValue(value)
        for name, value in run.metrics.items()
    }
    if run.metrics_error:
        metadata["metrics_error"] = dg.MetadataValue.text(run.metrics_error)
    return metadata


PREVIEW_TEXT = 200
"""Longer strings in a preview cell are cut to this many characters."""


def _cell(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool | int | float):
        return value
    text = str(value)
    return text if len(text) <= PREVIEW_TEXT else text[: PREVIEW_TEXT - 1] + "…"


def preview_table(model: SqlModel, rows: list[dict[str, Any]]) -> dg.MetadataValue:
    """The partition's first rows as written, with real (unmasked) values: the owner's view."""
    columns = [dg.TableColumn(c.name, str(arrow_type(c.type))) for c in model.columns]
    records = [dg.TableRecord({c.name: _cell(row.get(c.name)) for c in model.columns}) for row in rows]
    return dg.MetadataValue.table(records=records, schema=dg.TableSchema(columns=columns))


def check_metadata(outcome: CheckOutcome) -> dict[str, Any]:
    return {"failing_rows": outcome.failing_rows, "detail": outcome.detail}


def column_schema(model: SqlModel) -> dg.TableSchema:
    columns = [
        dg.TableColumn(c.name, str(arrow_type(c.type)), description=c.description) for c in model.columns
    ]
    described = {"dt": "Partition date", "hh": "Partition hour (landing folder)"}
    declared = {c.name for c in model.columns}
    columns += [
        dg.TableColumn(c, "string", description=described.get(c, "Partition column"))
        for c in model.partitioned_by
        if c not in declared
    ]
    return dg.TableSchema(columns=columns)


def governance_metadata(table: TableId, settings: LakehouseSettings) -> dict[str, Any]:
    """Which columns of the table are masked, for which roles, and who may read it.

    Read when the code location loads (reload it after `lakehouse policy apply`). A catalog that does
    not exist yet, or cannot be read, gives no governance metadata rather than a broken code location."""
    found = table_governance(settings, table)
    if found is None:
        return {}
    bindings, readers = found["bindings"], found["readers"]
    lines = ["| column | masked for roles | function | policy |", "|---|---|---|---|"]
    lines += [f"| {b['column']} | {b['roles']} | {b['function']} | {b['policy']} |" for b in bindings]
    if bindings and not bindings[0]["enabled"]:
        lines.append(
            f"\nMasking is switched off for project {table.namespace} ({MASKING_ENABLED_KEY}=false)."
        )
    return {
        "governance/masked_columns": dg.MetadataValue.md(
            "\n".join(lines) if bindings else "no masked columns"
        ),
        "governance/masked_column_names": dg.MetadataValue.json(sorted({b["column"] for b in bindings})),
        "governance/readers": dg.MetadataValue.json(readers),
    }
