"""Table stores: open-format tables in one catalog. Iceberg (pyiceberg SQL catalog) or Delta Lake.

Both implementations offer the same small interface, so assets and the engine never touch pyiceberg
or deltalake. Every managed table is also listed in lakehouse_tables with its origin, which is how
DataScan tells its own tables from user-created ones in both formats.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from resources.catalog import CatalogDB, TableRecord

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pads

    from resources.settings import LakehouseSettings

COMMIT_RETRIES = 8

ICEBERG_S3_OPTIONS = {
    "endpoint_url": "s3.endpoint",
    "access_key_id": "s3.access-key-id",
    "secret_access_key": "s3.secret-access-key",
    "region": "s3.region",
}
DELTA_S3_OPTIONS = {
    "endpoint_url": "AWS_ENDPOINT_URL",
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "region": "AWS_REGION",
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

Chunks = Callable[[], Iterable["pa.Table"]]
"""A re-creatable stream of row chunks: called again for a retry, so it must yield the same rows."""


class SchemaConflictError(ValueError):
    """New data does not fit the table's schema and cannot be widened into it."""


@dataclass(frozen=True)
class TableId:
    namespace: str
    name: str

    @classmethod
    def parse(cls, text: str, default_namespace: str | None = None) -> TableId:
        parts = text.split(".")
        if len(parts) == 2 and all(parts):
            return cls(parts[0], parts[1])
        if len(parts) == 1 and parts[0] and default_namespace:
            return cls(default_namespace, parts[0])
        raise ValueError(f"table name {text!r} must be namespace.table")

    def __str__(self) -> str:
        return f"{self.namespace}.{self.name}"


# Widenings every reader of both formats accepts (Iceberg's allowed type promotions).
_WIDENINGS = {
    ("int8", "int16"),
    ("int8", "int32"),
    ("int16", "int32"),
    ("int32", "int64"),
    ("int8", "int64"),
    ("int16", "int64"),
    ("float", "double"),
    ("halffloat", "double"),
    ("halffloat", "float"),
    ("string", "large_string"),
    ("large_string", "string"),
    ("binary", "large_binary"),
    ("large_binary", "binary"),
}


def _type_name(t: pa.DataType) -> str:
    return str(t).split("[")[0]


def normalize_schema(schema: pa.Schema) -> pa.Schema:
    """Types both formats store the same way: strings, binaries not large; timestamps in microseconds."""
    import pyarrow as pa

    def norm(t: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return pa.string()
        if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
            return pa.binary()
        if pa.types.is_dictionary(t):
            return norm(t.value_type)
        if pa.types.is_timestamp(t) and t.unit in ("ns", "ms", "s"):
            return pa.timestamp("us", t.tz)
        if pa.types.is_null(t):
            return pa.string()
        if pa.types.is_float16(t):
            return pa.float32()
        return t

    return pa.schema([pa.field(f.name, norm(f.type), nullable=True) for f in schema])


def merge_schemas(current: pa.Schema, incoming: pa.Schema, what: str) -> pa.Schema:
    """The schema that holds both: new columns appended, allowed widenings applied.

    Raises SchemaConflictError naming `what` (a file, a model) for an incompatible change."""
    import pyarrow as pa

    fields = {f.name: f for f in current}
    order = [f.name for f in current]
    for f in normalize_schema(incoming):
        if f.name not in fields:
            fields[f.name] = f
            order.append(f.name)
            continue
        have = fields[f.name].type
        if have.equals(f.type) or pa.types.is_null(f.type):
            continue
        if (_type_name(f.type), _type_name(have)) in _WIDENINGS:
            continue  # incoming is narrower: it will be cast up
        if (_type_name(have), _type_name(f.type)) in _WIDENINGS:
            fields[f.name] = f  # table widens
            continue
        raise SchemaConflictError(
            f"{what}: column {f.name!r} is {f.type} but the table has {have}; "
            "only widening changes (e.g. float -> double, int -> bigint) are accepted"
        )
    return pa.schema([fields[n] for n in order])


def conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """Data in exactly the table's column order and types; columns it lacks become NULL."""
    import pyarrow as pa

    columns = []
    for f in schema:
        if f.name in data.column_names:
            col = data.column(f.name)
            columns.append(col if col.type.equals(f.type) else col.cast(f.type))
        else:
            columns.append(pa.nulls(data.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)


class TableStore(ABC):
    """Create, evolve, overwrite partitions of, and scan tables of one format."""

    format: str

    def __init__(self, settings: LakehouseSettings, catalog_db: CatalogDB) -> None:
        self.settings = settings
        self.db = catalog_db

    def location(self, table: TableId) -> str:
        return f"{self.settings.warehouse_uri}/{table.namespace}/{table.name}"

    # -- the interface ----------------------------------------------------------------------
    @abstractmethod
    def exists(self, table: TableId) -> bool: ...

    @abstractmethod
    def schema(self, table: TableId) -> pa.Schema: ...

    @abstractmethod
    def _create(self, table: TableId, schema: pa.Schema, partition_by: list[str]) -> None: ...

    @abstractmethod
    def _evolve(self, table: TableId, schema: pa.Schema) -> None: ...

    @abstractmethod
    def _replace(
        self,
        table: TableId,
        chunks: Iterator[pa.Table],
        schema: pa.Schema,
        partitions: Sequence[Mapping[str, str]],
    ) -> None:
        """Atomically replace the partitions' rows by the chunks' rows, in one commit."""

    @abstractmethod
    def dataset(self, table: TableId, partition: Mapping[str, str] | None = None) -> pads.Dataset:
        """A lazy Arrow dataset over the table's current snapshot, optionally one partition only."""

    @abstractmethod
    def dataset_of(self, table: TableId, partitions: Sequence[Mapping[str, str]]) -> pads.Dataset:
        """A lazy Arrow dataset over exactly these partitions of the current snapshot (none: empty)."""

    def datasets_by_value(
        self, table: TableId, column: str, values: Sequence[str]
    ) -> dict[str, pads.Dataset]:
        """For each value of a partition column, a lazy dataset of the rows holding it (one scan plan)."""
        return {value: self.dataset_of(table, [{column: value}]) for value in values}

    @abstractmethod
    def version(self, table: TableId) -> str | None:
        """The current snapshot id / version, or None for a table without data."""

    @abstractmethod
    def list_catalog_tables(self) -> list[TableId]:
        """Every table the format's catalog knows, managed or not."""

    def origin(self, table: TableId) -> str | None:
        record = self.db.get_table(table.namespace, table.name)
        return record.origin if record else None

    def ensure_table(
        self, table: TableId, schema: pa.Schema, partition_by: list[str], origin: str
    ) -> pa.Schema:
        """Create the table, or evolve it to hold `schema`. Returns the table schema after that."""
        wanted = normalize_schema(schema)
        if not self.exists(table):
            self._create(table, wanted, partition_by)
            self.db.register_table(
                TableRecord(table.namespace, table.name, self.format, self.location(table), origin)
            )
            return self.schema(table)
        current = self.schema(table)
        merged = merge_schemas(current, wanted, str(table))
        if not merged.equals(current):
            self._evolve(table, merged)
            return self.schema(table)
        return current

    def overwrite_partition(
        self, table: TableId, data: pa.Table | Chunks, partition: Mapping[str, str]
    ) -> int:
        """Atomically make the partition hold exactly `data` (a re-run replaces, never duplicates).

        `data` is a table, or a callable returning an iterable of chunks, so a large partition is
        written with bounded memory. Returns the number of rows written."""
        return self.overwrite_partitions(table, data, [partition])

    def overwrite_partitions(
        self, table: TableId, data: pa.Table | Chunks, partitions: Sequence[Mapping[str, str]]
    ) -> int:
        """Like overwrite_partition for several partitions in one commit (`data` holds rows of all)."""
        partition = list(partitions)
        schema = self.schema(table)
        make_chunks: Chunks = (lambda: [data]) if not callable(data) else data
        for attempt in range(COMMIT_RETRIES):
            written = 0

            def conformed() -> Iterator[pa.Table]:
                nonlocal written
                for chunk in make_chunks():
                    written += chunk.num_rows
                    yield conform(chunk, schema)

            try:
                self._replace(table, conformed(), schema, partition)
                return written
            except Exception as exc:
                if not _is_commit_conflict(exc) or attempt == COMMIT_RETRIES - 1:
                    raise
                time.sleep(0.05 * 2**attempt)  # another writer committed first: retry on the new snapshot
        raise AssertionError("unreachable")

    def read(self, table: TableId, partition: Mapping[str, str] | None = None) -> pa.Table:
        return self.dataset(table, partition).to_table()


def _is_commit_conflict(exc: Exception) -> bool:
    name = type(exc).__name__
    return name in {"CommitFailedException", "CommitFailedError", "CommitConflictError"} or (
        "conflict" in str(exc).lower() and "commit" in str(exc).lower()
    )


class IcebergTableStore(TableStore):
    """Apache Iceberg tables in a pyiceberg SQL catalog (SQLite or Postgres)."""

    format = "iceberg"
    _catalogs: ClassVar[dict[tuple[tuple[str, str], ...], Any]] = {}

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
            IcebergTableStore._catalogs[key] = SqlCatalog("lakehouse", **props)
        self._catalog = IcebergTableStore._catalogs[key]

    def _load(self, table: TableId) -> Any:
        return self._catalog.load_table((table.namespace, table.name))

    def _ensure_namespace(self, namespace: str) -> None:
        from pyiceberg.exceptions import NamespaceAlreadyExistsError
        from sqlalchemy.exc import IntegrityError

        # A concurrent writer may create it between pyiceberg's look and its insert.
        with contextlib.suppress(NamespaceAlreadyExistsError, IntegrityError):
            self._catalog.create_namespace_if_not_exists(namespace)

    def exists(self, table: TableId) -> bool:
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

    def _expire_snapshots(self, table: TableId) -> None:
        """Keep the table's metadata bounded: past 2 x ICEBERG_SNAPSHOTS_KEPT snapshots, expire the oldest.

        Every commit copies and rewrites the metadata, so without this each write of a long-lived
        table would cost more than the one before. Data files of expired snapshots stay on disk."""
        loaded = self._load(table)
        snapshots = sorted(loaded.metadata.snapshots, key=lambda s: s.timestamp_ms)
        if len(snapshots) <= 2 * ICEBERG_SNAPSHOTS_KEPT:
            return
        current = loaded.current_snapshot()
        old = [
            s.snapshot_id
            for s in snapshots[:-ICEBERG_SNAPSHOTS_KEPT]
            if current is None or s.snapshot_id != current.snapshot_id
        ]
        try:
            loaded.maintenance.expire_snapshots().by_ids(old).commit()
        except Exception as exc:  # best effort: a concurrent commit wins, the next write expires
            if not _is_commit_conflict(exc):
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
        filesystem, paths = _arrow_paths(paths, self.settings)
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
            filesystem, paths = _arrow_paths(paths, self.settings)
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
        filesystem, paths = _arrow_paths(paths, self.settings)
        return pads.dataset(paths, schema=schema, format="parquet", filesystem=filesystem)

    def version(self, table: TableId) -> str | None:
        snapshot = self._load(table).current_snapshot()
        return str(snapshot.snapshot_id) if snapshot else None

    def list_catalog_tables(self) -> list[TableId]:
        found = []
        for ns in self._catalog.list_namespaces():
            for ident in self._catalog.list_tables(ns):
                found.append(TableId(ident[0], ident[1]))
        return found


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

    def version(self, table: TableId) -> str | None:
        return str(self._table(table).version())

    def list_catalog_tables(self) -> list[TableId]:
        return [TableId(r.namespace, r.name) for r in self.db.list_tables() if r.format == "delta"]


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


def _sql_literal(value: str) -> str:
    if not all(ch.isalnum() or ch in "-_: " for ch in value):
        raise ValueError(f"partition value {value!r} has characters a partition value may not have")
    return value


def _arrow_paths(paths: list[str], settings: LakehouseSettings) -> tuple[Any, list[str]]:
    import pyarrow.fs as pafs

    from resources.object_store import arrow_s3_filesystem

    if paths and paths[0].startswith("s3://"):
        return arrow_s3_filesystem(settings.s3), [p.removeprefix("s3://") for p in paths]
    return pafs.LocalFileSystem(), [p.removeprefix("file://") for p in paths]


def open_table_store(settings: LakehouseSettings, catalog_db: CatalogDB) -> TableStore:
    if settings.table_format == "delta":
        return DeltaTableStore(settings, catalog_db)
    return IcebergTableStore(settings, catalog_db)
