"""ODS: load one partition of a landed table, exactly as its files are now.

A partition is rebuilt from all its current files every time (late files, replaced files and deleted
files are then all the same case), and written with one atomic overwrite: re-runs never duplicate.
Corrupt or incompatible files are rejected with the reason, recorded in the manifest, and the rest of
the partition is still loaded. Raw files are only ever read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from resources.catalog import FileRecord
from resources.object_store import UnreadableFileError
from resources.table_store import SchemaConflictError, TableId, conform, merge_schemas, normalize_schema
from sensors.datascan import conflict_reason
from sensors.layout import LandedFile, classify, partition_prefix, split_partition_key

if TYPE_CHECKING:
    import pyarrow as pa

    from resources.lakehouse import Lakehouse

SOURCE_FILE_COLUMN = "_source_file"
PARTITION_COLUMNS = ("dt", "hh")


class TableConflictError(RuntimeError):
    """The discovered table name belongs to a table DataScan did not create."""


@dataclass
class IngestReport:
    table: TableId
    partition_key: str
    rows: int = 0
    loaded: list[FileRecord] = field(default_factory=list)
    rejected: list[FileRecord] = field(default_factory=list)
    schema_changed: bool = False
    created: bool = False


def _landed_files(lh: Lakehouse, table: TableId, key: str) -> list[tuple[LandedFile, int, str]]:
    prefix = partition_prefix(table.namespace, table.name, key)
    found = []
    for info in lh.landing.walk(prefix):
        kind = classify(info.path, info.size)
        if isinstance(kind, LandedFile):
            found.append((kind, info.size, info.fingerprint))
    return found


def ingest_partition(lh: Lakehouse, table: TableId, key: str) -> IngestReport:
    import pyarrow as pa

    dt_value, hh_value = split_partition_key(key)
    reason = conflict_reason(lh, table)
    if reason:
        raise TableConflictError(reason)

    report = IngestReport(table, key)
    exists = lh.tables.exists(table)
    schema = lh.tables.schema(table) if exists else None
    frames: list[pa.Table] = []
    for landed, size, fingerprint in _landed_files(lh, table, key):
        record = FileRecord(landed.path, table.namespace, table.name, key, size, fingerprint, "loaded")
        try:
            data = lh.landing.read_arrow(landed.path)
            data = data.drop_columns([c for c in (SOURCE_FILE_COLUMN, *PARTITION_COLUMNS) if c in data.column_names])
            data = data.append_column(SOURCE_FILE_COLUMN, pa.array([landed.path] * data.num_rows, pa.string()))
            data = data.append_column("dt", pa.array([dt_value] * data.num_rows, pa.string()))
            data = data.append_column("hh", pa.array([hh_value] * data.num_rows, pa.string()))
            where = f"{lh.landing.uri}/{landed.path}"
            merged = merge_schemas(schema, data.schema, where) if schema is not None else normalize_schema(data.schema)
            data = conform(data, merged)  # raises for values that cannot be cast
        except (UnreadableFileError, SchemaConflictError) as exc:
            report.rejected.append(FileRecord(**{**record.__dict__, "status": "rejected", "reason": str(exc)}))
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            reason_text = f"{lh.landing.uri}/{landed.path}: cannot convert to the table schema ({exc})"
            report.rejected.append(FileRecord(**{**record.__dict__, "status": "rejected", "reason": reason_text}))
            continue
        schema = merged
        frames.append(data)
        report.loaded.append(FileRecord(**{**record.__dict__, "rows": data.num_rows}))

    if schema is None:
        # Nothing readable and no table yet: nothing to register, but remember the rejections.
        lh.catalog.replace_partition_files(table.namespace, table.name, key, report.rejected)
        return report

    before = lh.tables.schema(table) if exists else None
    final_schema = lh.tables.ensure_table(table, schema, list(PARTITION_COLUMNS), origin="datascan")
    report.created = not exists
    report.schema_changed = before is not None and not before.equals(final_schema)
    combined = (pa.concat_tables([conform(f, final_schema) for f in frames]) if frames
                else final_schema.empty_table())
    report.rows = lh.tables.overwrite_partition(table, combined, {"dt": dt_value, "hh": hh_value})
    lh.catalog.replace_partition_files(table.namespace, table.name, key, [*report.loaded, *report.rejected])
    return report
