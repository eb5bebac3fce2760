"""The lakehouse's own bookkeeping, kept in the catalog database beside the table catalog.

- lakehouse_tables: every table the lakehouse manages, its format, location and origin
  (datascan = discovered from landing folders, model = built from dbt_like_sql).
- lakehouse_files: DataScan's manifest, one row per landed file that was loaded or rejected, with the
  fingerprint that was read. A file whose current fingerprint differs is new, late or replaced.
- lakehouse_conflicts: discovered names that a user-created table already holds.
- lakehouse_builds: what each table partition was built from; what is stale derives from it
  (lakehouse/models/reconcile.py), with lakehouse_key_changes and lakehouse_build_failures.
- lakehouse_workers, lakehouse_leases: who reconciles a namespace now (lakehouse/storage/leases.py).

Keeping this in the database (not in a sensor cursor) makes a daemon restart neither miss nor
reprocess files, and lets `lakehouse sql` query it as lakehouse.files / lakehouse.rejected_files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    import pyarrow as pa

from lakehouse.storage.catalog_schema import (  # noqa: F401 - the tables are part of the catalog's interface
    builds_t,
    conflicts_t,
    failures_t,
    files_t,
    key_changes_t,
    leases_t,
    metadata,
    partition_days_t,
    tables_t,
    workers_t,
)


@dataclass(frozen=True)
class BuildRecord:
    """A built partition: the version of its content (token) and the inputs it was built from."""

    table_name: str
    partition_key: str
    token: str
    inputs: str
    status: str = "ok"
    rows: int | None = None


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


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


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


class CatalogDB:
    """Typed access to the bookkeeping tables. Cheap to create; the engine is shared per URL."""

    _engines: dict[str, sa.Engine] = {}

    def __init__(self, url: str) -> None:
        self.url = url
        if url not in CatalogDB._engines:
            if url.startswith("sqlite:///"):
                from pathlib import Path

                Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, pool_pre_ping=True)
            if url.startswith("sqlite"):
                # Several processes (daemon, runs, CLI) share the file: wait for locks, don't fail.
                @sa.event.listens_for(engine, "connect")
                def _pragmas(conn: Any, _record: Any) -> None:
                    cur = conn.cursor()
                    cur.execute("PRAGMA busy_timeout = 30000")
                    cur.execute("PRAGMA journal_mode = WAL")
                    cur.close()

            metadata.create_all(engine)
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

    def replace_partition_files(
        self, namespace: str, table: str, partition_key: str, records: Iterable[FileRecord]
    ) -> None:
        """The partition's manifest becomes exactly `records` (files gone from landing drop out)."""
        now = utc_now()
        with self.engine.begin() as conn:
            conn.execute(
                sa.delete(files_t).where(
                    files_t.c.namespace == namespace,
                    files_t.c.table_name == table,
                    files_t.c.partition_key == partition_key,
                )
            )
            values = [{**r.__dict__, "updated_at": now} for r in records]
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

    # --- builds: what each partition was built from (see lakehouse/models/reconcile.py) -------
    def builds(self, namespace: str, table: str | None = None) -> dict[tuple[str, str], BuildRecord]:
        """(table, partition key) -> its build record, for a namespace (or one table of it)."""
        query = sa.select(builds_t).where(builds_t.c.namespace == namespace)
        if table is not None:
            query = query.where(builds_t.c.table_name == table)
        with self.engine.connect() as conn:
            return {
                (r.table_name, r.partition_key): BuildRecord(
                    r.table_name, r.partition_key, r.token, r.inputs, r.status, r.rows
                )
                for r in conn.execute(query)
            }

    def landed_inputs(self) -> dict[tuple[str, str, str], str]:
        """(namespace, table, partition key) -> the files digest each ODS partition was built from."""
        query = sa.select(
            builds_t.c.namespace, builds_t.c.table_name, builds_t.c.partition_key, builds_t.c.inputs
        ).where(builds_t.c.inputs.like("files:%"))
        with self.engine.connect() as conn:
            return {(r[0], r[1], r[2]): r[3] for r in conn.execute(query)}

    def builds_summary(self, namespace: str) -> list[Any]:
        """[records, latest write, failures, latest failure] of a namespace: one aggregate query each."""
        with self.engine.connect() as conn:
            builds = conn.execute(
                sa.select(sa.func.count(), sa.func.max(builds_t.c.built_at)).where(
                    builds_t.c.namespace == namespace
                )
            ).one()
            failures = conn.execute(
                sa.select(sa.func.count(), sa.func.max(failures_t.c.failed_at)).where(
                    failures_t.c.namespace == namespace
                )
            ).one()
        return [builds[0], str(builds[1]), failures[0], str(failures[1])]

    def build_namespaces(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(builds_t.c.namespace).distinct()).scalars())

    def record_builds(
        self, namespace: str, records: Iterable[BuildRecord], conn: sa.Connection | None = None
    ) -> None:
        """Upsert build records, in one transaction (the caller's, when given)."""
        rows = [{"namespace": namespace, **r.__dict__, "built_at": utc_now()} for r in records]
        if not rows:
            return
        if conn is None:
            with self.engine.begin() as own:
                self._upsert_builds(own, rows)
        else:
            self._upsert_builds(conn, rows)

    def _upsert_builds(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        statement = self._insert(builds_t)
        statement = statement.on_conflict_do_update(
            index_elements=[builds_t.c.namespace, builds_t.c.table_name, builds_t.c.partition_key],
            set_={c: statement.excluded[c] for c in ("token", "inputs", "status", "rows", "built_at")},
        )
        conn.execute(statement, rows)

    def bump_inputs(self, namespace: str, table: str, updates: dict[str, tuple[str, str]]) -> int:
        """partition key -> (inputs before, inputs now): record newer inputs that leave the content
        as it is (compare-and-set on the inputs); returns how many were updated."""
        done = 0
        with self.engine.begin() as conn:
            for key, (before, now) in sorted(updates.items()):
                done += conn.execute(
                    sa.update(builds_t)
                    .where(
                        builds_t.c.namespace == namespace,
                        builds_t.c.table_name == table,
                        builds_t.c.partition_key == key,
                        builds_t.c.inputs == before,
                    )
                    .values(inputs=now, built_at=utc_now())
                ).rowcount
        return done

    def _insert(self, table: sa.Table) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        return insert(table)

    # --- key changes of unpartitioned tables -----------------------------------------------
    def begin_key_change(self, namespace: str, table: str, from_token: str) -> bool:
        """Before rewriting `table` built as `from_token`: note the rewrite. Returns True when an
        earlier rewrite from the same build never finished (a crash): its changes are unknown."""
        where = (
            (key_changes_t.c.namespace == namespace)
            & (key_changes_t.c.table_name == table)
            & (key_changes_t.c.from_token == from_token)
            & key_changes_t.c.to_token.is_(None)
        )
        with self.engine.begin() as conn:
            unfinished = conn.execute(sa.select(key_changes_t.c.id).where(where)).first() is not None
            if not unfinished:
                conn.execute(
                    sa.insert(key_changes_t).values(
                        namespace=namespace,
                        table_name=table,
                        from_token=from_token,
                        to_token=None,
                        keys=None,
                        recorded_at=utc_now(),
                    )
                )
        return unfinished

    def finish_key_change(
        self,
        namespace: str,
        table: str,
        from_token: str,
        to_token: str,
        keys: dict[str, list[Any]] | None,
        conn: sa.Connection,
    ) -> None:
        """The rewrite is committed: record from -> to with the changed keys (None = all)."""
        import json

        conn.execute(
            sa.delete(key_changes_t).where(
                key_changes_t.c.namespace == namespace,
                key_changes_t.c.table_name == table,
                key_changes_t.c.from_token == from_token,
                key_changes_t.c.to_token.is_(None),
            )
        )
        if from_token != to_token:
            conn.execute(
                sa.insert(key_changes_t).values(
                    namespace=namespace,
                    table_name=table,
                    from_token=from_token,
                    to_token=to_token,
                    keys=None if keys is None else json.dumps(keys, default=str, sort_keys=True),
                    recorded_at=utc_now(),
                )
            )

    def key_transitions(
        self, namespace: str, table: str
    ) -> list[tuple[str, str, dict[str, list[Any]] | None]]:
        """Every finished rewrite of `table`: (from token, to token, changed keys or None = all)."""
        import json

        query = (
            sa.select(key_changes_t)
            .where(
                key_changes_t.c.namespace == namespace,
                key_changes_t.c.table_name == table,
                key_changes_t.c.to_token.is_not(None),
            )
            .order_by(key_changes_t.c.id)
        )
        with self.engine.connect() as conn:
            return [
                (r.from_token, r.to_token, None if r.keys is None else json.loads(r.keys))
                for r in conn.execute(query)
            ]

    # --- failed builds ------------------------------------------------------------------------
    def build_failures(self, namespace: str) -> dict[tuple[str, str], tuple[str, int, str]]:
        """(table, partition key) -> (wanted inputs digest, attempts, error)."""
        with self.engine.connect() as conn:
            return {
                (r.table_name, r.partition_key): (r.wanted, r.attempts, r.error)
                for r in conn.execute(sa.select(failures_t).where(failures_t.c.namespace == namespace))
            }

    def record_failure(self, namespace: str, table: str, key: str, wanted: str, error: str) -> int:
        """Count a failed build of these inputs; returns the attempts so far."""
        where = (
            (failures_t.c.namespace == namespace)
            & (failures_t.c.table_name == table)
            & (failures_t.c.partition_key == key)
        )
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(failures_t).where(where)).first()
            attempts = row.attempts + 1 if row is not None and row.wanted == wanted else 1
            conn.execute(sa.delete(failures_t).where(where))
            conn.execute(
                sa.insert(failures_t).values(
                    namespace=namespace,
                    table_name=table,
                    partition_key=key,
                    wanted=wanted,
                    attempts=attempts,
                    error=error[:4000],
                    failed_at=utc_now(),
                )
            )
        return attempts

    def clear_failures(self, namespace: str, table: str, keys: Iterable[str], conn: sa.Connection) -> None:
        keys = list(keys)
        if keys:
            conn.execute(
                sa.delete(failures_t).where(
                    failures_t.c.namespace == namespace,
                    failures_t.c.table_name == table,
                    failures_t.c.partition_key.in_(keys),
                )
            )

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
