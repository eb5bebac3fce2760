"""Delta Lake tables under the warehouse, catalogued in lakehouse_tables (same semantics as Iceberg)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId
from lakehouse.storage.schemas import normalize_schema
from lakehouse.storage.tables.base import CommittedFile, Pinned, SnapshotInfo, TableStore

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pads

DELTA_S3_OPTIONS = {
    "endpoint_url": "AWS_ENDPOINT_URL",
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "region": "AWS_REGION",
}


class DeltaTableStore(TableStore):
    """Delta Lake tables under the warehouse, catalogued in lakehouse_tables (same semantics as Iceberg)."""

    format = "delta"

    def _options(self) -> dict[str, str]:
        options = self.settings.s3.options(DELTA_S3_OPTIONS)
        if options.get("AWS_ENDPOINT_URL", "").startswith("http://"):
            options["AWS_ALLOW_HTTP"] = "true"
        return options

    def _table(self, table: TableId) -> Any:
        from deltalake import DeltaTable

        return DeltaTable(self.location(table), storage_options=self._options())

    def exists(self, table: TableId) -> bool:
        record = self.db.get_table(table.namespace, table.name)
        return record is not None and record.format == "delta"

    def schema(self, table: TableId) -> pa.Schema:
        return normalize_schema(self._table(table).to_pyarrow_dataset().schema)

    def _create(self, table: TableId, schema: pa.Schema, partition_by: list[str]) -> None:
        from deltalake import DeltaTable, write_deltalake

        try:
            write_deltalake(
                self.location(table),
                schema.empty_table(),
                mode="append",
                partition_by=partition_by or None,
                storage_options=self._options(),
                schema_mode="merge",
            )
        except Exception:
            # Another run may have created it at the same moment (both wrote version 0).
            if not DeltaTable.is_deltatable(self.location(table), storage_options=self._options()):
                raise

    def _evolve(self, table: TableId, schema: pa.Schema) -> None:
        # Delta evolves on write with schema_mode="merge"; an empty append records the new columns.
        from deltalake import write_deltalake

        write_deltalake(
            self.location(table),
            schema.empty_table(),
            mode="append",
            storage_options=self._options(),
            schema_mode="merge",
        )

    def _replace(
        self,
        table: TableId,
        chunks: Iterator[pa.Table],
        schema: pa.Schema,
        partitions: Sequence[Mapping[str, str]],
    ) -> None:
        import pyarrow as pa
        from deltalake import write_deltalake

        clauses = [" AND ".join(f"{c} = '{_sql_literal(v)}'" for c, v in p.items()) for p in partitions]
        predicate = None if not all(clauses) else " OR ".join(f"({c})" for c in clauses)
        failures: list[BaseException] = []

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for chunk in chunks:
                    yield from chunk.to_batches()
            except BaseException as exc:
                failures.append(exc)  # deltalake wraps it; the caller needs the original
                raise

        try:
            write_deltalake(  # streams the batches; one commit
                self.location(table),
                pa.RecordBatchReader.from_batches(schema, batches()),
                mode="overwrite",
                predicate=predicate,
                storage_options=self._options(),
                schema_mode="merge",
            )
        except Exception:
            if failures:
                raise failures[0] from None
            raise

    files_hold_partition_columns = False

    def _commit_files(
        self, table: TableId, files: Sequence[CommittedFile], partitions: Sequence[Mapping[str, str]]
    ) -> None:
        import json
        import time

        from deltalake.transaction import AddAction

        delta = self._table(table)
        root = self.location(table).removeprefix("file://").rstrip("/") + "/"
        columns = list(delta.metadata().partition_columns)
        now = int(time.time() * 1000)
        # A transaction's partition filters are one conjunction: group the partitions by all their
        # columns but the last, whose values one `in` names exactly.
        groups: dict[tuple[tuple[str, str], ...], list[Mapping[str, str]]] = {}
        for partition in partitions:
            head = tuple((c, v) for c, v in list(partition.items())[:-1])
            groups.setdefault(head, []).append(partition)
        for head, members in groups.items():
            last = [c for c in members[0] if c not in dict(head)]
            filters: list[Any] = [(c, "=", v) for c, v in head]
            if last:
                values = sorted({m[last[0]] for m in members})
                filters.append((last[0], "in", values) if len(values) > 1 else (last[0], "=", values[0]))
            wanted = {tuple(sorted(m.items())) for m in members}
            actions = []
            for file in files:
                key = tuple(sorted((c, file.partition_values.get(c)) for c in members[0]))
                if key not in wanted:
                    continue
                relative = file.path.removeprefix("file://").removeprefix(root)
                stats = json.dumps({"numRecords": file.rows})
                values_of = {c: file.partition_values.get(c) for c in columns}
                actions.append(AddAction(relative, file.bytes, values_of, now, True, stats))
            delta.create_write_transaction(
                actions,
                mode="overwrite",
                schema=delta.schema(),
                partition_by=columns or None,
                partition_filters=filters or None,
            )
            delta.update_incremental()

    def dataset(self, table: TableId, partition: Mapping[str, str] | None = None) -> pads.Dataset:
        filters = [(c, "=", v) for c, v in (partition or {}).items()] or None
        ds = self._table(table).to_pyarrow_dataset(partitions=filters)
        schema = normalize_schema(ds.schema)
        return ds if ds.schema.equals(schema) else ds.replace_schema(schema)

    def dataset_of(self, table: TableId, partitions: Sequence[Mapping[str, str]]) -> pads.Dataset:
        import pyarrow.dataset as pads

        delta = self._table(table)
        parts = [
            delta.to_pyarrow_dataset(partitions=[(c, "=", v) for c, v in p.items()] or None)
            for p in partitions
        ]
        full = delta.to_pyarrow_dataset() if not parts else parts[0]
        schema = normalize_schema(full.schema)
        if not parts:
            return pads.dataset(schema.empty_table())
        parts = [d if d.schema.equals(schema) else d.replace_schema(schema) for d in parts]
        return parts[0] if len(parts) == 1 else pads.dataset(parts)

    def partition_columns(self, table: TableId) -> list[str]:
        return list(self._table(table).metadata().partition_columns)

    def version(self, table: TableId) -> str | None:
        return str(self._table(table).version())

    def pinned(self, table: TableId, snapshot: str | None = None) -> Pinned:
        delta = self._table(table) if snapshot is None else self._at(table, snapshot)
        ds = delta.to_pyarrow_dataset()  # one log replay: its version and that version's files
        schema = normalize_schema(ds.schema)
        size = sum(delta.get_add_actions(flatten=True).column("size_bytes").to_pylist())
        pinned = ds if ds.schema.equals(schema) else ds.replace_schema(schema)
        return Pinned(str(delta.version()), pinned, size)

    def _at(self, table: TableId, snapshot: str) -> Any:
        from deltalake import DeltaTable

        from lakehouse.engines.base import QueryError

        current = self._table(table).version()
        wanted = int(snapshot) if snapshot.strip().isdigit() else -1
        if not 0 <= wanted <= current:
            raise QueryError(
                f"{table} has no version {snapshot!r} (its versions are 0..{current}; see lakehouse.snapshots)"
            )
        try:
            return DeltaTable(self.location(table), version=wanted, storage_options=self._options())
        except Exception as exc:  # its log entries were cleaned up (log retention)
            raise QueryError(
                f"{table}: version {wanted} can no longer be read ({type(exc).__name__})"
            ) from None

    def snapshots(self, table: TableId) -> list[SnapshotInfo]:
        """Every version the log still holds, with its row count from its add actions (each version
        is loaded in turn, ascending, so the log is replayed once)."""
        import datetime as dt

        from deltalake import DeltaTable

        history = sorted(self._table(table).history(), key=lambda h: h["version"])
        if not history:
            return []
        current = history[-1]["version"]
        walker: Any = None
        out = []
        for entry in history:
            version = entry["version"]
            rows: int | None = None
            try:
                if walker is None:
                    walker = DeltaTable(
                        self.location(table), version=version, storage_options=self._options()
                    )
                else:
                    walker.load_as_version(version)
                counts = walker.get_add_actions(flatten=True).column("num_records").to_pylist()
                rows = None if any(c is None for c in counts) else sum(counts)
            except Exception:  # an early version whose log was cleaned up: listed, rows unknown
                walker = None
            out.append(
                SnapshotInfo(
                    snapshot_id=str(version),
                    committed_at=dt.datetime.fromtimestamp(entry["timestamp"] / 1000, dt.UTC),
                    operation=str(entry.get("operation", "unknown")),
                    rows=rows,
                    current=version == current,
                )
            )
        return out

    def list_catalog_tables(self) -> list[TableId]:
        return [TableId(r.namespace, r.name) for r in self.db.list_tables() if r.format == "delta"]


def _sql_literal(value: str) -> str:
    if not all(ch.isalnum() or ch in "-_: " for ch in value):
        raise ValueError(f"partition value {value!r} has characters a partition value may not have")
    return value
