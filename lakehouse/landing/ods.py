"""ODS: load one partition of a landed table, exactly as its files are now.

The table's files are read from the location of the DataScan task that holds it, in its layout
(lakehouse/landing/layout.py: hourly, daily, or flat grouped by arrival hour).

A partition is rebuilt from all its current files every time (late files, replaced files and deleted
files are then all the same case), and written with one atomic overwrite: re-runs never duplicate.
Corrupt or incompatible files are rejected with the reason, recorded in the manifest, and the rest of
the partition is still loaded. Raw files are only ever read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lakehouse.core.failpoints import failpoint
from lakehouse.core.ids import TableId
from lakehouse.landing.layout import LandedFile, Layout, partition_values
from lakehouse.landing.scan import conflict_reason
from lakehouse.landing.tasks import ScanTask, default_task, find_task, task_store
from lakehouse.storage.catalog import FileRecord
from lakehouse.storage.object_store import UnreadableFileError
from lakehouse.storage.schemas import SchemaConflictError, conform, merge_schemas, normalize_schema

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.facade import Lakehouse

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


@dataclass(frozen=True)
class Source:
    """Where a discovered table's files are: its task, its folder in the task's location, its layout."""

    task: ScanTask
    folder: str
    layout: Layout

    def prefix(self, key: str) -> str:
        """The folder to list for one partition (a flat table's hour is all of its folder)."""
        if self.layout is Layout.FLAT:
            return self.folder
        values = partition_values(self.layout, key)
        return "/".join([self.folder, *(f"{c}={v}" for c, v in values.items())])


def table_source(lh: Lakehouse, table: TableId) -> Source:
    """The task that holds the table (the default one for tables registered before tasks existed)."""
    claim = lh.catalog.table_claims().get((table.namespace, table.name))
    if claim is None:
        return Source(default_task(lh.settings), f"{table.namespace}/{table.name}", Layout.HOURLY)
    task = find_task(lh, claim.task)
    return Source(task, claim.folder, Layout(claim.layout))


def _landed_files(
    lh: Lakehouse, source: Source, keys: list[str]
) -> dict[str, list[tuple[LandedFile, int, str]]]:
    """key -> the partition's files now (each folder listed once: a flat table's hours share one)."""
    task = source.task
    found: dict[str, list[tuple[LandedFile, int, str]]] = {key: [] for key in keys}
    for prefix in sorted({source.prefix(key) for key in keys}):
        for info in task_store(lh, task).walk(prefix):
            kind = task.classify(info)
            if isinstance(kind, LandedFile) and kind.layout is source.layout and kind.partition_key in found:
                found[kind.partition_key].append((kind, info.size, info.fingerprint))
    return found


class _FileFailed(Exception):
    """A file failed while its rows were being streamed into the partition write."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path = path
        self.reason = reason


def _with_lineage(data: pa.Table, path: str, values: dict[str, str]) -> pa.Table:
    import pyarrow as pa

    data = data.drop_columns([c for c in (SOURCE_FILE_COLUMN, *PARTITION_COLUMNS) if c in data.column_names])
    n = data.num_rows
    data = data.append_column(SOURCE_FILE_COLUMN, pa.repeat(pa.scalar(path, pa.string()), n))
    for column, value in values.items():
        data = data.append_column(column, pa.repeat(pa.scalar(value, pa.string()), n))
    return data


def _lineage_schema(schema: pa.Schema, columns: tuple[str, ...]) -> pa.Schema:
    import pyarrow as pa

    kept = [f for f in schema if f.name not in (SOURCE_FILE_COLUMN, *PARTITION_COLUMNS)]
    return pa.schema(
        [*kept, pa.field(SOURCE_FILE_COLUMN, pa.string()), *(pa.field(c, pa.string()) for c in columns)]
    )


def ingest_partition(lh: Lakehouse, table: TableId, key: str) -> IngestReport:
    """Rebuild one ODS partition from its current files (see ingest_partitions)."""
    [report] = ingest_partitions(lh, table, [key])
    return report


def ingest_partitions(lh: Lakehouse, table: TableId, keys: list[str]) -> list[IngestReport]:
    """Rebuild ODS partitions from their current files, in two passes with bounded memory, in ONE
    commit (a commit costs more than a small hour of files; the caller bounds the batch).

    Pass 1 reads only footers: unreadable files and incompatible schemas are rejected there, and
    the table schema is evolved once. Pass 2 streams row groups / stripes into one atomic write;
    a file that fails mid-stream is rejected and the write is retried without it."""
    import pyarrow as pa

    reason = conflict_reason(lh, table)
    if reason:
        raise TableConflictError(reason)

    source = table_source(lh, table)
    store = task_store(lh, source.task)
    columns = source.layout.partitioning.columns
    reports = {key: IngestReport(table, key) for key in keys}
    exists = lh.tables.exists(table)
    before = lh.tables.schema(table) if exists else None
    schema = before
    accepted: list[FileRecord] = []
    for key, files in _landed_files(lh, source, keys).items():
        for landed, size, fingerprint in files:
            record = FileRecord(landed.path, table.namespace, table.name, key, size, fingerprint, "loaded")
            where = source.task.uri(landed.path)
            try:
                incoming = _lineage_schema(store.read_schema(source.task.relative(landed.path)), columns)
                schema = (
                    merge_schemas(schema, incoming, where)
                    if schema is not None
                    else normalize_schema(incoming)
                )
            except (UnreadableFileError, SchemaConflictError) as exc:
                reports[key].rejected.append(_rejected(record, str(exc)))
                continue
            accepted.append(record)

    if schema is None:
        # Nothing readable and no table yet: nothing to register, but remember the rejections.
        lh.catalog.replace_partitions_files(
            table.namespace, table.name, {key: report.rejected for key, report in reports.items()}
        )
        return list(reports.values())

    final_schema = lh.tables.ensure_table(table, schema, list(columns), origin="datascan")
    for report in reports.values():
        report.created = not exists
        report.schema_changed = before is not None and not before.equals(final_schema)

    partitions = [partition_values(source.layout, key) for key in keys]
    while True:
        rows: dict[str, int] = {}

        def chunks(files: list[FileRecord] = accepted, rows: dict[str, int] = rows) -> Iterator[pa.Table]:
            rows.clear()
            for record in files:
                assert record.partition_key is not None
                values = partition_values(source.layout, record.partition_key)
                try:
                    for part in store.iter_arrow(source.task.relative(record.path)):
                        chunk = conform(_with_lineage(part, record.path, values), final_schema)
                        rows[record.path] = rows.get(record.path, 0) + chunk.num_rows
                        yield chunk
                        failpoint("ods.write", table.name)
                except UnreadableFileError as exc:
                    raise _FileFailed(record.path, str(exc)) from exc
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise _FileFailed(
                        record.path,
                        f"{source.task.uri(record.path)}: cannot convert to the table schema ({exc})",
                    ) from exc

        try:
            if len(partitions) == 1:
                lh.tables.overwrite_partition(table, chunks, partitions[0])
            else:
                lh.tables.overwrite_partitions(table, chunks, partitions)
            break
        except _FileFailed as failed:  # nothing was committed: drop the file and write again
            bad = next(r for r in accepted if r.path == failed.path)
            accepted = [r for r in accepted if r.path != failed.path]
            assert bad.partition_key is not None
            reports[bad.partition_key].rejected.append(_rejected(bad, failed.reason))

    for record in accepted:
        assert record.partition_key is not None
        report = reports[record.partition_key]
        report.loaded.append(FileRecord(**{**record.__dict__, "rows": rows.get(record.path, 0)}))
        report.rows += rows.get(record.path, 0)
    lh.catalog.replace_partitions_files(
        table.namespace,
        table.name,
        {key: [*report.loaded, *report.rejected] for key, report in reports.items()},
    )
    return list(reports.values())


def _rejected(record: FileRecord, reason: str) -> FileRecord:
    return FileRecord(**{**record.__dict__, "status": "rejected", "reason": reason})
