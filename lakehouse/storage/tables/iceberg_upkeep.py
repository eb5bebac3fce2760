"""Maintenance of Apache Iceberg tables (pyiceberg): compaction as a rewrite of a partition's files
in one OVERWRITE snapshot, snapshot expiry, and the files the remaining snapshots reference.

pyiceberg has no data compaction of its own; the rewrite here is an optimistic commit: it names the
exact files it replaces and is validated against every commit since it read them (pyiceberg's
commit retry re-checks that those files still exist and that nothing was added to the partition),
so a concurrent build of the partition always wins and the compaction is reported as skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId
from lakehouse.storage.schemas import conform, normalize_schema
from lakehouse.storage.tables import upkeep
from lakehouse.storage.tables.base import arrow_paths
from lakehouse.storage.tables.iceberg import ICEBERG_FILE_ROWS, _iceberg_filter, _partition_text
from lakehouse.storage.tables.upkeep import (
    MAINTENANCE_PROPERTY,
    Compacted,
    DataFile,
    StoredFile,
    TableUpkeep,
    Version,
    plain_path,
)

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.storage.tables.iceberg import IcebergTableStore

TARGET_FILE_SIZE = "write.target-file-size-bytes"


class IcebergUpkeep(TableUpkeep):
    """Maintenance operations on Iceberg tables."""

    store: IcebergTableStore
    rows_per_file = ICEBERG_FILE_ROWS

    def _load(self, table: TableId) -> Any:
        return self.store._load(table)

    def location(self, table: TableId) -> str:
        return str(self._load(table).location())

    def live_files(self, table: TableId) -> list[DataFile]:
        loaded = self._load(table)
        if loaded.current_snapshot() is None:
            return []
        schema = loaded.schema()
        arrow = normalize_schema(schema.as_arrow())
        specs = loaded.specs()
        found = []
        for task in loaded.scan().plan_files():
            if task.delete_files:
                raise NotImplementedError(f"{table}: merge-on-read delete files are not supported yet")
            data = task.file
            names = [schema.find_field(f.source_id).name for f in specs[data.spec_id].fields]
            partition = tuple(
                (
                    name,
                    None
                    if data.partition[i] is None
                    else _partition_text(data.partition[i], arrow.field(name).type),
                )
                for i, name in enumerate(names)
            )
            found.append(DataFile(data.file_path, data.file_size_in_bytes, data.record_count, partition))
        return found

    def versions(self, table: TableId) -> list[Version]:
        import datetime as dt

        loaded = self._load(table)
        current = loaded.current_snapshot()
        out = []
        for snap in sorted(loaded.snapshots(), key=lambda s: (s.timestamp_ms, s.sequence_number or 0)):
            props = dict(snap.summary.additional_properties) if snap.summary is not None else {}
            out.append(
                Version(
                    snapshot_id=str(snap.snapshot_id),
                    committed_at=dt.datetime.fromtimestamp(snap.timestamp_ms / 1000, dt.UTC),
                    maintenance=MAINTENANCE_PROPERTY in props,
                    current=current is not None and snap.snapshot_id == current.snapshot_id,
                )
            )
        return out

    def compact(self, table: TableId, partition: Mapping[str, str], target_bytes: int) -> Compacted:
        import pyarrow as pa
        import pyarrow.dataset as pads
        from pyiceberg.exceptions import CommitFailedException, ValidationException
        from pyiceberg.io.pyarrow import _dataframe_to_data_files

        loaded = self._load(table)  # the snapshot the compaction is based on
        condition = _iceberg_filter(partition)
        files = [t.file for t in loaded.scan(row_filter=condition).plan_files()]
        if len(files) < 2:
            return Compacted(len(files), len(files), skipped="nothing to compact (the partition changed)")
        schema = normalize_schema(loaded.schema().as_arrow())
        filesystem, paths = arrow_paths([f.file_path for f in files], self.settings)
        dataset = pads.dataset(paths, schema=schema, format="parquet", filesystem=filesystem)
        chunks: list[pa.Table] = []
        pending: list[pa.RecordBatch] = []
        size = 0
        for batch in dataset.to_batches():  # the same rows readers see, chunk by chunk
            pending.append(batch)
            size += batch.num_rows
            if size >= ICEBERG_FILE_ROWS:
                chunks.append(conform(pa.Table.from_batches(pending, schema), schema))
                pending, size = [], 0
        if pending or not chunks:
            chunks.append(conform(pa.Table.from_batches(pending, schema), schema))
        rows = sum(c.num_rows for c in chunks)

        upkeep.before_compaction_commit(table, partition)
        tx = loaded.transaction()
        # The compaction's own target file size, whatever the table's writers use.
        metadata = tx.table_metadata.model_copy(
            update={"properties": {**tx.table_metadata.properties, TARGET_FILE_SIZE: str(target_bytes)}}
        )
        written: list[Any] = []
        try:
            with tx.update_snapshot(
                snapshot_properties={MAINTENANCE_PROPERTY: "compact"}
            ).overwrite() as rewrite:
                rewrite.delete_by_predicate(condition)  # conflicts are checked within the partition
                for old in files:
                    rewrite.delete_data_file(old)
                for chunk in chunks:
                    if chunk.num_rows == 0:
                        continue
                    for new in _dataframe_to_data_files(
                        table_metadata=metadata, df=chunk, io=loaded.io, write_uuid=rewrite.commit_uuid
                    ):
                        written.append(new)
                        rewrite.append_data_file(new)
            tx.commit_transaction()
        except (CommitFailedException, ValidationException) as exc:
            for new in written:  # never committed: nothing references them
                with contextlib.suppress(Exception):
                    loaded.io.delete(new.file_path)
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return Compacted(
                len(files),
                len(files),
                rows,
                skipped=f"a concurrent write changed the partition, which won ({type(exc).__name__}: {reason})",
            )
        return Compacted(len(files), len(written), rows)

    def expire(
        self, table: TableId, expire: list[str], keep: set[str], dry_run: bool, vacuum_hours: int
    ) -> tuple[list[str], str | None]:
        from lakehouse.storage.tables.base import is_commit_conflict

        loaded = self._load(table)
        existing = {str(s.snapshot_id) for s in loaded.snapshots()}
        ids = [s for s in expire if s in existing and s not in keep]
        if dry_run or not ids:
            return ids, None
        try:
            loaded.maintenance.expire_snapshots().by_ids([int(s) for s in ids]).commit()
        except Exception as exc:  # a concurrent commit won: the next run expires them
            if not is_commit_conflict(exc):
                raise
            return [], f"expiry skipped: a concurrent commit won ({type(exc).__name__})"
        return ids, None

    def referenced(self, table: TableId, versions: set[str]) -> set[str]:
        loaded = self._load(table)
        metadata = loaded.metadata
        found = {plain_path(loaded.metadata_location)}
        found |= {plain_path(entry.metadata_file) for entry in metadata.metadata_log}
        found |= {plain_path(s.statistics_path) for s in metadata.statistics}
        found |= {plain_path(s.statistics_path) for s in metadata.partition_statistics}
        manifests: dict[str, Any] = {}
        for snap in loaded.snapshots():
            if str(snap.snapshot_id) not in versions:
                continue
            found.add(plain_path(snap.manifest_list))
            for manifest in snap.manifests(loaded.io):
                manifests.setdefault(manifest.manifest_path, manifest)
        for path, manifest in manifests.items():  # a manifest shared by many snapshots is read once
            found.add(plain_path(path))
            for entry in manifest.fetch_manifest_entry(loaded.io, discard_deleted=True):
                found.add(plain_path(entry.data_file.file_path))
        return found

    def candidates(self, table: TableId) -> list[StoredFile]:
        root = self.location(table).rstrip("/")
        # Only the folders Iceberg writes: anything else under the location is not ours to judge.
        return self.list_files(f"{root}/data") + self.list_files(f"{root}/metadata")
