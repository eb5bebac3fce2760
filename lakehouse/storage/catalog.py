"""The lakehouse's own bookkeeping, kept in the catalog database beside the table catalog.

- lakehouse_tables: every table the lakehouse manages, its format, location and origin
  (datascan = discovered from landing folders, model = built from dbt_like_sql).
- lakehouse_files: DataScan's manifest, one row per landed file that was loaded or rejected, with the
  fingerprint that was read. A file whose current fingerprint differs is new, late or replaced.
- lakehouse_conflicts: discovered names that a user-created table already holds.
- lakehouse_builds: what each table partition was built from; what is stale derives from it
  (lakehouse/models/reconcile.py), with lakehouse_key_changes and lakehouse_build_failures.
- lakehouse_workers, lakehouse_leases: who reconciles a namespace now (lakehouse/storage/leases.py).
- lakehouse_snapshot_pins: snapshots that must stay readable (pins.py; table maintenance keeps them).
- lakehouse_connections, lakehouse_datascan_tasks, lakehouse_datascan_tables: named connections,
  DataScan tasks and which task holds each discovered table (discovery.py; no secret is stored).

Keeping this in the database (not in a sensor cursor) makes a daemon restart neither miss nor
reprocess files, and lets `lakehouse sql` query it as lakehouse.files / lakehouse.rejected_files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    import pyarrow as pa

from lakehouse.storage.builds import BuildBook, utc_now
from lakehouse.storage.catalog_schema import (  # noqa: F401 - the tables are part of the catalog's interface
    builds_t,
    conflicts_t,
    failures_t,
    files_t,
    key_changes_t,
    leases_t,
    metadata,
    partition_days_t,
    snapshot_pins_t,
    tables_t,
    workers_t,
)
from lakehouse.storage.discovery import DiscoveryBook, upgrade_discovery_tables
from lakehouse.storage.pins import PinBook


def arrow_schema(table: sa.Table) -> pa.Schema:
    """The Arrow schema of a bookkeeping table, from its SQLAlchemy columns (one declaration)."""
    import pyarrow as pa

    def arrow_type(column: sa.Column[Any]) -> pa.DataType:
        if isinstance(column.type, sa.Integer):  # BigInteger too
            return pa.int64()
        if isinstance(column.type, sa.DateTime):
            return pa.timestamp("us")
        if isinstance(column.type, sa.String):  # Text is a String too
            return pa.string()
        raise TypeError(f"{table.name}.{column.name}: no Arrow type for {column.type!r}")

    return pa.schema([(c.name, arrow_type(c)) for c in table.columns])


@dataclass(frozen=True)
class FileRecord:
    """What the manifest knows about one landed file."""

    path: str
    namespace: str | None
    table_name: str | None
    partition_key: str | None
    size: int
    fingerprint: str
    status: str
    """loaded | rejected"""
    rows: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class TableRecord:
    namespace: str
    name: str
    format: str
    location: str
    origin: str


SCHEMA_LOCK = 0x1A4E4_0001
"""PostgreSQL advisory lock held while a process creates or upgrades catalog tables."""


@contextmanager
def schema_change(engine: sa.Engine) -> Iterator[sa.Connection]:
    """A transaction in which to create or alter catalog tables. On PostgreSQL it first takes an
    advisory lock, so processes starting at once (two daemons, a scan) do not race to create the same
    table (CREATE TABLE IF NOT EXISTS is not safe under concurrency there); SQLite serializes DDL."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK})
        yield conn


class CatalogDB(BuildBook, PinBook, DiscoveryBook):
    """Typed access to the bookkeeping tables. Cheap to create; the engine is shared per URL."""

    _engines: dict[str, sa.Engine] = {}

    def __init__(self, url: str) -> None:
        self.url = url
        if url not in CatalogDB._engines:
            database = url.removeprefix("sqlite:///").split("?", 1)[0]
            if url.startswith("sqlite:///") and database not in ("", ":memory:"):
                from lakehouse.core.files import private_file

                # Created 0600 before SQLite opens it: its -wal and -shm files take the same mode.
                private_file(database)
            # A file needs no liveness ping before each checkout; a server connection does.
            # A file needs no liveness ping before each checkout; a server connection does. The pool
            # holds a connection for each of the SQL endpoint's worker threads.
            memory = url in ("sqlite://", "sqlite:///:memory:")  # one connection, no pool to size
            sizes: dict[str, Any] = {} if memory else {"pool_size": 16, "max_overflow": 16}
            engine = sa.create_engine(url, pool_pre_ping=not url.startswith("sqlite"), **sizes)
            if url.startswith("sqlite"):
                # Several processes (daemon, runs, CLI) share the file: wait for locks, don't fail.
                @sa.event.listens_for(engine, "connect")
                def _pragmas(conn: Any, _record: Any) -> None:
                    cur = conn.cursor()
                    cur.execute("PRAGMA busy_timeout = 30000")
                    cur.execute("PRAGMA journal_mode = WAL")
                    # WAL's own durability: a commit survives the process being killed (SIGKILL,
                    # OOM) at any instant; only a power loss or OS crash can drop the last commits
                    # (the file stays consistent). FULL would fsync every commit: 4-10 ms each here.
                    cur.execute("PRAGMA synchronous = NORMAL")
                    cur.close()

            with schema_change(engine) as conn:
                metadata.create_all(conn)
                upgrade_discovery_tables(conn)  # lakehouse_connections.allow_http on older catalogs
            CatalogDB._engines[url] = engine
        self.engine = CatalogDB._engines[url]

    @classmethod
    def dispose_all(cls) -> None:
        """Close every pooled connection (a process whose database files were replaced under it)."""
        for engine in cls._engines.values():
            engine.dispose()
        cls._engines.clear()
        from lakehouse.storage.tables.iceberg import IcebergTableStore

        IcebergTableStore.forget_catalogs()

    @classmethod
    def _after_fork(cls) -> None:
        """In a forked child (a DataLoader worker): drop the pooled connections inherited from the
        parent without closing them (they are the parent's); the child opens its own."""
        for engine in cls._engines.values():
            engine.dispose(close=False)

    # --- tables ---------------------------------------------------------------------------
    def register_table(self, record: TableRecord) -> None:
        with self.engine.begin() as conn:
            existing = conn.execute(
                sa.select(tables_t.c.name).where(
                    tables_t.c.namespace == record.namespace, tables_t.c.name == record.name
                )
            ).first()
            if existing is not None:
                return
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(tables_t).values(**record.__dict__, created_at=utc_now()))
        except sa.exc.IntegrityError:
            pass  # registered by another process between our look and our insert

    def get_table(self, namespace: str, name: str) -> TableRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(tables_t).where(tables_t.c.namespace == namespace, tables_t.c.name == name)
            ).first()
        if row is None:
            return None
        return TableRecord(row.namespace, row.name, row.format, row.location, row.origin)

    def find_table(self, namespace: str, name: str) -> TableRecord | None:
        """The table named so in any case (SQL names are case-insensitive), or None."""
        query = sa.select(tables_t).where(
            sa.func.lower(tables_t.c.namespace) == namespace.lower(),
            sa.func.lower(tables_t.c.name) == name.lower(),
        )
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(tables_t.c.namespace, tables_t.c.name)).first()
        if row is None:
            return None
        return TableRecord(row.namespace, row.name, row.format, row.location, row.origin)

    def list_tables(self, namespace: str | None = None) -> list[TableRecord]:
        query = sa.select(tables_t).order_by(tables_t.c.namespace, tables_t.c.name)
        if namespace:
            query = query.where(tables_t.c.namespace == namespace)
        with self.engine.connect() as conn:
            return [
                TableRecord(r.namespace, r.name, r.format, r.location, r.origin) for r in conn.execute(query)
            ]

    # --- conflicts ------------------------------------------------------------------------
    def record_conflict(self, namespace: str, name: str, reason: str) -> bool:
        """Record once; True when it is new."""
        with self.engine.begin() as conn:
            found = conn.execute(
                sa.select(conflicts_t.c.name).where(
                    conflicts_t.c.namespace == namespace, conflicts_t.c.name == name
                )
            ).first()
            if found:
                return False
            conn.execute(
                sa.insert(conflicts_t).values(
                    namespace=namespace, name=name, reason=reason, first_seen=utc_now()
                )
            )
            return True

    def as_arrow(self, table: sa.Table) -> pa.Table:
        """A bookkeeping table as Arrow, its schema derived from the table's own declaration."""
        import pyarrow as pa

        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(sa.select(table).order_by(*table.primary_key))]
        return pa.Table.from_pylist(rows, schema=arrow_schema(table))

    # --- files ----------------------------------------------------------------------------
    def file_fingerprints(self) -> dict[str, str]:
        """path -> fingerprint of everything loaded or rejected so far (one query, two columns)."""
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.select(files_t.c.path, files_t.c.fingerprint)).tuples().all())

    def replace_partitions_files(
        self, namespace: str, table: str, records: dict[str, list[FileRecord]]
    ) -> None:
        """Several partitions' manifests become exactly `records` (key -> files), in one transaction.
        A file that moved between them (a flat table's file replaced with another arrival hour) or
        that was recorded before outside any partition is moved, never duplicated."""
        now = utc_now()
        paths = [r.path for rows in records.values() for r in rows]
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(files_t).where(
                    files_t.c.namespace == namespace,
                    files_t.c.table_name == table,
                    files_t.c.partition_key.in_(list(records)),
                )
            )
            for start in range(0, len(paths), 500):
                conn.execute(sa.delete(files_t).where(files_t.c.path.in_(paths[start : start + 500])))
            values = [{**r.__dict__, "updated_at": now} for rows in records.values() for r in rows]
            if values:
                conn.execute(sa.insert(files_t), values)

    def record_files(self, records: Iterable[FileRecord]) -> None:
        """Upsert single files (used for files rejected before they belong to a partition)."""
        now = utc_now()
        with self.engine.begin() as conn:
            for r in records:
                conn.execute(sa.delete(files_t).where(files_t.c.path == r.path))
                conn.execute(sa.insert(files_t).values(**r.__dict__, updated_at=now))

    def file_rows(self, status: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(files_t).order_by(files_t.c.path)
        if status:
            query = query.where(files_t.c.status == status)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # --- day index ----------------------------------------------------------------------------
    def hours_by_day(self, namespace: str, table: str) -> dict[str, list[str]]:
        """day -> the hourly partitions of `table` holding rows of that day (its day index)."""
        query = sa.select(partition_days_t.c.day, partition_days_t.c.partition_key).where(
            partition_days_t.c.namespace == namespace, partition_days_t.c.table_name == table
        )
        found: dict[str, list[str]] = {}
        with self.engine.connect() as conn:
            for day, key in conn.execute(query.order_by(partition_days_t.c.partition_key)):
                found.setdefault(day, []).append(key)
        return found

    def replace_partition_days(
        self, namespace: str, table: str, partition_key: str, days: dict[str, int]
    ) -> dict[str, int]:
        """Record the days the partition now holds; returns the days it held before."""
        where = (
            (partition_days_t.c.namespace == namespace)
            & (partition_days_t.c.table_name == table)
            & (partition_days_t.c.partition_key == partition_key)
        )
        with self.engine.begin() as conn:
            before = dict(
                conn.execute(sa.select(partition_days_t.c.day, partition_days_t.c.rows).where(where))
                .tuples()
                .all()
            )
            conn.execute(sa.delete(partition_days_t).where(where))
            if days:
                conn.execute(
                    sa.insert(partition_days_t),
                    [
                        {"namespace": namespace, "table_name": table, "partition_key": partition_key}
                        | {"day": day, "rows": rows}
                        for day, rows in sorted(days.items())
                    ],
                )
        return before


os.register_at_fork(after_in_child=CatalogDB._after_fork)
