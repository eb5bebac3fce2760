"""Apache Iceberg tables in a pyiceberg SQL catalog (SQLite or Postgres)."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from lakehouse.core.ids import TableId
from lakehouse.storage.catalog import CatalogDB, schema_change
from lakehouse.storage.schemas import normalize_schema
from lakehouse.storage.tables.base import (
    CommittedFile,
    Pinned,
    SnapshotInfo,
    TableStore,
    arrow_paths,
    is_commit_conflict,
)

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pads

    from lakehouse.core.settings import LakehouseSettings

ICEBERG_S3_OPTIONS = {
    "endpoint_url": "s3.endpoint",
    "access_key_id": "s3.access-key-id",
    "secret_access_key": "s3.secret-access-key",
    "region": "s3.region",
}

ICEBERG_TABLE_PROPERTIES = {
    # Every commit copies the metadata: keep its log short and delete superseded metadata files.
    "write.metadata.previous-versions-max": "8",
    "write.metadata.delete-after-commit.enabled": "true",
}
ICEBERG_SNAPSHOTS_KEPT = 8
"""Snapshots an Iceberg table keeps for time travel (expired in batches, see _expire_snapshots)."""
ICEBERG_FILE_ROWS = 500_000
"""Rows gathered before pyiceberg writes them out as one append (bounds memory and file count)."""


class IcebergTableStore(TableStore):
    """Apache Iceberg tables in a pyiceberg SQL catalog (SQLite or Postgres)."""

    format = "iceberg"
    _catalogs: ClassVar[dict[tuple[tuple[str, str], ...], Any]] = {}

    @classmethod
    def forget_catalogs(cls) -> None:
        for catalog in cls._catalogs.values():
            engine = getattr(catalog, "engine", None)
            if engine is not None:
                engine.dispose()
        cls._catalogs.clear()

    def __init__(self, settings: LakehouseSettings, catalog_db: CatalogDB) -> None:
        super().__init__(settings, catalog_db)
        from pyiceberg.catalog.sql import SqlCatalog

        warehouse = settings.warehouse_uri
        if "://" not in warehouse:
            warehouse = f"file://{warehouse}"
        props = {
            "uri": settings.catalog_uri,
            "warehouse": warehouse,
            **settings.s3.options(ICEBERG_S3_OPTIONS),
        }
        # One catalog object per process and location: building one costs ~0.15 s (it checks and
        # creates its tables), and every run step opens the lakehouse anew.
        key = tuple(sorted(props.items()))
        if key not in IcebergTableStore._catalogs:
            from pyiceberg.catalog.sql import SqlCatalogBaseTable

            with schema_change(catalog_db.engine) as conn:  # not pyiceberg's own unlocked create
                SqlCatalogBaseTable.metadata.create_all(conn)
            IcebergTableStore._catalogs[key] = SqlCatalog("lakehouse", **props)
        self._catalog = IcebergTableStore._catalogs[key]
        self._pinned: dict[TableId, tuple[str, Pinned]] = {}
        """The last pinned snapshot of each table read, by its metadata file (serving re-reads)."""

    def _load(self, table: TableId) -> Any:
        return self._catalog.load_table((table.namespace, table.name))

    def _ensure_namespace(self, namespace: str) -> None:
        from pyiceberg.exceptions import NamespaceAlreadyExistsError
        from sqlalchemy.exc import IntegrityError

        # A concurrent writer may create it between pyiceberg's look and its insert.
        with contextlib.suppress(NamespaceAlreadyExistsError, IntegrityError):
            self._catalog.create_namespace_if_not_exists(namespace)

    def exists(self, table: TableId) -> bool:
        if self._metadata_location(table) is not None:  # one catalog row, not the metadata file
            return True
        return bool(self._catalog.table_exists((table.namespace, table.name)))

    def schema(self, table: TableId) -> pa.Schema:
        return normalize_schema(self._load(table).schema().as_arrow())

    def _create(self, table: TableId, schema: pa.Schema, partition_by: list[str]) -> None:
        from pyiceberg.exceptions import CommitFailedException, TableAlreadyExistsError

        self._ensure_namespace(table.namespace)
        try:
            # Schema and partition spec in one commit: no writer ever sees the table unpartitioned.
            with self._catalog.create_table_transaction(
                (table.namespace, table.name), schema=schema, properties=ICEBERG_TABLE_PROPERTIES
            ) as tx:
                if partition_by:
                    with tx.update_spec() as spec:
                        for column in partition_by:
                            spec.add_identity(column)
        except (TableAlreadyExistsError, CommitFailedException):
            # Another run created it a moment ago (pyiceberg reports that race either way).
            if not self.exists(table):
                raise

    def _evolve(self, table: TableId, schema: pa.Schema) -> None:
        with self._load(table).update_schema() as update:
            update.union_by_name(schema)

    def _replace(
        self,
        table: TableId,
        chunks: Iterator[pa.Table],
        schema: pa.Schema,
        partitions: Sequence[Mapping[str, str]],
    ) -> None:
        import pyarrow as pa
        from pyiceberg.expressions import AlwaysFalse, Or

        condition: Any = AlwaysFalse()
        for partition in partitions:
            condition = Or(condition, _iceberg_filter(partition))
        # One transaction = one commit: readers see the old partition or the new one, never a mix.
        with warnings.catch_warnings(), self._load(table).transaction() as tx:
            # The first load of a partition has nothing to delete; pyiceberg warns about that.
            warnings.filterwarnings("ignore", message="Delete operation did not match any records")
            tx.delete(condition)
            pending: list[pa.Table] = []
            size = 0
            for chunk in chunks:
                pending.append(chunk)
                size += chunk.num_rows
                if size >= ICEBERG_FILE_ROWS:
                    tx.append(pa.concat_tables(pending))
                    pending, size = [], 0
            if size:
                tx.append(pa.concat_tables(pending))
        self._expire_snapshots(table)

    def _commit_files(
        self, table: TableId, files: Sequence[CommittedFile], partitions: Sequence[Mapping[str, str]]
    ) -> None:
        from pyiceberg.expressions import AlwaysFalse, Or

        condition: Any = AlwaysFalse()
        for partition in partitions:
            condition = Or(condition, _iceberg_filter(partition))
        # Delete and add in one transaction = one commit (as _replace). add_files takes each file's
        # partition values from its column statistics: the files hold the partition columns.
        with warnings.catch_warnings(), self._load(table).transaction() as tx:
            warnings.filterwarnings("ignore", message="Delete operation did not match any records")
            tx.delete(condition)
            if files:
                tx.add_files([f.path for f in files], check_duplicate_files=False)
        self._expire_snapshots(table)

    def _expire_snapshots(self, table: TableId) -> None:
        """Keep the table's metadata bounded: past 2 x ICEBERG_SNAPSHOTS_KEPT snapshots, expire the oldest.

        Every commit copies and rewrites the metadata, so without this each write of a long-lived
        table would cost more than the one before. Pinned snapshots (lakehouse_snapshot_pins: a
        trained model read them) are never expired. Data files of expired snapshots stay on disk
        until `lakehouse maintain` removes them as orphans."""
        loaded = self._load(table)
        snapshots = sorted(loaded.metadata.snapshots, key=lambda s: s.timestamp_ms)
        if len(snapshots) <= 2 * ICEBERG_SNAPSHOTS_KEPT:
            return
        current = loaded.current_snapshot()
        pinned = self.db.pinned_snapshots(table.namespace, table.name)
        old = [
            s.snapshot_id
            for s in snapshots[:-ICEBERG_SNAPSHOTS_KEPT]
            if (current is None or s.snapshot_id != current.snapshot_id) and str(s.snapshot_id) not in pinned
        ]
        if not old:
            return
        try:
            loaded.maintenance.expire_snapshots().by_ids(old).commit()
        except Exception as exc:  # best effort: a concurrent commit wins, the next write expires
            if not is_commit_conflict(exc):
                raise

    def _file_paths(
        self, table: TableId, partition: Mapping[str, str] | None, condition: Any = None
    ) -> tuple[Any, list[str]]:
        loaded = self._load(table)
        condition = _iceberg_filter(partition) if condition is None else condition
        tasks = list(loaded.scan(row_filter=condition).plan_files())
        if any(t.delete_files for t in tasks):
            raise NotImplementedError(f"{table}: merge-on-read delete files are not supported yet")
        return loaded, [t.file.file_path for t in tasks]

    def dataset(self, table: TableId, partition: Mapping[str, str] | None = None) -> pads.Dataset:
        import pyarrow.dataset as pads

        loaded, paths = self._file_paths(table, partition)
        schema = normalize_schema(loaded.schema().as_arrow())
        filesystem, paths = arrow_paths(paths, self.settings)
        return pads.dataset(paths, schema=schema, format="parquet", filesystem=filesystem)

    def datasets_by_value(
        self, table: TableId, column: str, values: Sequence[str]
    ) -> dict[str, pads.Dataset]:
        import pyarrow.dataset as pads
        from pyiceberg.expressions import In

        loaded = self._load(table)
        schema = normalize_schema(loaded.schema().as_arrow())
        wanted = sorted(set(values))
        by_value: dict[str, list[str]] = {v: [] for v in wanted}
        if wanted:
            position = [f.name for f in loaded.spec().fields].index(column)
            for task in loaded.scan(row_filter=In(column, wanted)).plan_files():  # type: ignore[arg-type,call-arg]
                if task.delete_files:
                    raise NotImplementedError(f"{table}: merge-on-read delete files are not supported yet")
                value = _partition_text(task.file.partition[position], schema.field(column).type)
                if value in by_value:
                    by_value[value].append(task.file.file_path)
        out = {}
        for value, paths in by_value.items():
            if not paths:
                out[value] = pads.dataset(schema.empty_table())
                continue
            filesystem, paths = arrow_paths(paths, self.settings)
            out[value] = pads.dataset(paths, schema=schema, format="parquet", filesystem=filesystem)
        return out

    def dataset_of(self, table: TableId, partitions: Sequence[Mapping[str, str]]) -> pads.Dataset:
        import pyarrow.dataset as pads
        from pyiceberg.expressions import AlwaysFalse, Or

        condition: Any = AlwaysFalse()
        for partition in partitions:
            condition = Or(condition, _iceberg_filter(partition))
        # One scan plan for all of them: the manifests are read once, pruned by partition bounds.
        loaded, paths = self._file_paths(table, None, condition)
        schema = normalize_schema(loaded.schema().as_arrow())
        if not partitions or not paths:
            return pads.dataset(schema.empty_table())
        filesystem, paths = arrow_paths(paths, self.settings)
        return pads.dataset(paths, schema=schema, format="parquet", filesystem=filesystem)

    def partition_columns(self, table: TableId) -> list[str]:
        loaded = self._load(table)
        schema = loaded.schema()
        return [schema.find_field(f.source_id).name for f in loaded.spec().fields]

    def version(self, table: TableId) -> str | None:
        snapshot = self._load(table).current_snapshot()
        return str(snapshot.snapshot_id) if snapshot else None

    def pinned(self, table: TableId, snapshot: str | None = None) -> Pinned:
        import pyarrow.dataset as pads

        if snapshot is None:
            remembered = self._pinned.get(table)
            if remembered is not None and remembered[0] == self._metadata_location(table):
                return remembered[1]  # the same metadata file: the same snapshot, its plan already made
        loaded = self._load(table)  # one metadata file: its current snapshot and that snapshot's files
        chosen = loaded.current_snapshot() if snapshot is None else self._snapshot(table, loaded, snapshot)
        schema = normalize_schema(loaded.schema().as_arrow())
        if chosen is None:
            return Pinned(None, pads.dataset(schema.empty_table()), 0)
        if snapshot is not None and chosen.schema_id is not None:  # the schema it was written with
            schema = normalize_schema(loaded.schemas()[chosen.schema_id].as_arrow())
        tasks = list(loaded.scan(snapshot_id=chosen.snapshot_id).plan_files())
        if any(t.delete_files for t in tasks):
            raise NotImplementedError(f"{table}: merge-on-read delete files are not supported yet")
        filesystem, paths = arrow_paths([t.file.file_path for t in tasks], self.settings)
        dataset = pads.dataset(paths, schema=schema, format="parquet", filesystem=filesystem)
        pinned = Pinned(str(chosen.snapshot_id), dataset, sum(t.file.file_size_in_bytes for t in tasks))
        if snapshot is None:
            self._pinned[table] = (loaded.metadata_location, pinned)
        return pinned

    @staticmethod
    def _snapshot(table: TableId, loaded: Any, snapshot: str) -> Any:
        from lakehouse.engines.base import QueryError

        found = loaded.snapshot_by_id(int(snapshot)) if snapshot.strip().isdigit() else None
        if found is None:
            raise QueryError(
                f"{table} has no snapshot {snapshot!r} (expired, or never one of its snapshots; "
                "see lakehouse.snapshots)"
            )
        return found

    def snapshots(self, table: TableId) -> list[SnapshotInfo]:
        import datetime as dt

        loaded = self._load(table)
        current = loaded.current_snapshot()
        out = []
        for snap in sorted(loaded.snapshots(), key=lambda s: (s.timestamp_ms, s.sequence_number or 0)):
            summary = snap.summary
            props = dict(summary.additional_properties) if summary is not None else {}
            total = props.get("total-records")
            operation = summary.operation.value if summary is not None else "unknown"
            out.append(
                SnapshotInfo(
                    snapshot_id=str(snap.snapshot_id),
                    committed_at=dt.datetime.fromtimestamp(snap.timestamp_ms / 1000, dt.UTC),
                    operation=str(operation),
                    rows=int(total) if total is not None else None,
                    current=current is not None and snap.snapshot_id == current.snapshot_id,
                )
            )
        return out

    def _metadata_location(self, table: TableId) -> str | None:
        """The table's current metadata file, one indexed row of the SQL catalog (the Iceberg JDBC
        catalog's `iceberg_tables`), without reading and parsing the metadata itself."""
        import sqlalchemy as sa

        query = sa.text(
            "select metadata_location from iceberg_tables "
            "where catalog_name = :c and table_namespace = :ns and table_name = :t"
        )
        try:
            with self._catalog.engine.connect() as conn:
                found = conn.execute(query, {"c": self._catalog.name, "ns": table.namespace, "t": table.name})
                return found.scalar()
        except sa.exc.SQLAlchemyError:
            return None  # never equal to a remembered location: the table is loaded the usual way

    def list_catalog_tables(self) -> list[TableId]:
        found = []
        for ns in self._catalog.list_namespaces():
            for ident in self._catalog.list_tables(ns):
                found.append(TableId(ident[0], ident[1]))
        return found


def _iceberg_filter(partition: Mapping[str, str] | None) -> Any:
    """dt = ... AND hh = ... as a pyiceberg expression (always true without a partition)."""
    from pyiceberg.expressions import AlwaysTrue, And, EqualTo

    condition: Any = AlwaysTrue()
    for column, value in (partition or {}).items():
        condition = And(condition, EqualTo(column, value))  # type: ignore[call-arg,arg-type]
    return condition


def _partition_text(value: Any, arrow_type: pa.DataType) -> str:
    """A partition value as text, as partition filters spell it (dates are days since the epoch)."""
    import datetime

    import pyarrow as pa

    if pa.types.is_date(arrow_type) and isinstance(value, int):
        return (datetime.date(1970, 1, 1) + datetime.timedelta(days=value)).isoformat()
    return str(value)
