"""Connections, DataScan tasks and which task holds each discovered table, in the catalog database.

`CatalogDB` (catalog.py) is a `DiscoveryBook` over its engine; lakehouse/landing/connections.py and
tasks.py give the rows their meaning. Plain SQLAlchemy: SQLite and PostgreSQL alike. No secret is
stored here, only the names of the environment variables that hold them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lakehouse.storage.builds import utc_now
from lakehouse.storage.catalog_schema import (
    connections_t,
    datascan_conflicts_t,
    datascan_tables_t,
    datascan_tasks_t,
)


@dataclass(frozen=True)
class ConnectionRecord:
    name: str
    endpoint: str
    region: str | None = None
    role_arn: str | None = None
    access_key_env: str | None = None
    secret_key_env: str | None = None
    sts_endpoint: str | None = None
    """Where STS is asked for the role (None: the endpoint itself, as MinIO and moto serve it)."""
    allow_http: bool = False
    """`connection add --allow-http`: plain http to a host that is not loopback is allowed (stored;
    a row without it, or NULL, is refused such an endpoint when used: landing/connections.py)."""


@dataclass(frozen=True)
class TaskRecord:
    name: str
    location: str
    namespace: str
    connection: str | None = None
    interval_seconds: int = 300
    table_prefix: str = ""


@dataclass(frozen=True)
class TableClaim:
    namespace: str
    name: str
    task: str
    layout: str
    folder: str


def upgrade_discovery_tables(conn: sa.Connection) -> None:
    """Columns added to lakehouse_connections after catalogs were created with it (nullable, so old
    rows stay valid: a NULL allow_http is no): a catalog from an earlier release upgrades in place.
    Called in CatalogDB's schema transaction."""
    have = {c["name"] for c in sa.inspect(conn).get_columns(connections_t.name)}
    for column in connections_t.columns:
        if column.name not in have:
            kind = column.type.compile(dialect=conn.dialect)
            conn.execute(sa.text(f'alter table {connections_t.name} add column "{column.name}" {kind}'))


class DuplicateError(ValueError):
    """A connection or task of that name exists already."""


class DiscoveryBook:
    """Typed access to lakehouse_connections, lakehouse_datascan_tasks, lakehouse_datascan_tables."""

    engine: sa.Engine

    def _add(self, table: sa.Table, kind: str, values: dict[str, Any]) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(table).values(**values, created_at=utc_now()))
        except sa.exc.IntegrityError:
            raise DuplicateError(f"{kind} {values['name']} exists already") from None

    def _remove(self, table: sa.Table, name: str) -> bool:
        with self.engine.begin() as conn:
            return bool(conn.execute(sa.delete(table).where(table.c.name == name)).rowcount)

    # --- connections ----------------------------------------------------------------------
    def add_connection(self, record: ConnectionRecord) -> None:
        self._add(connections_t, "connection", {**record.__dict__, "allow_http": int(record.allow_http)})

    def connections(self) -> list[ConnectionRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(connections_t).order_by(connections_t.c.name))
            return [
                ConnectionRecord(
                    r.name,
                    r.endpoint,
                    r.region,
                    r.role_arn,
                    r.access_key_env,
                    r.secret_key_env,
                    r.sts_endpoint,
                    r.allow_http == 1,  # NULL (a row written without it, an older catalog): no
                )
                for r in rows
            ]

    def connection(self, name: str) -> ConnectionRecord | None:
        return next((c for c in self.connections() if c.name == name), None)

    def remove_connection(self, name: str) -> bool:
        return self._remove(connections_t, name)

    # --- tasks ----------------------------------------------------------------------------
    def add_task(self, record: TaskRecord) -> None:
        self._add(datascan_tasks_t, "DataScan task", dict(record.__dict__))

    def tasks(self) -> list[TaskRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(datascan_tasks_t).order_by(datascan_tasks_t.c.name))
            return [
                TaskRecord(r.name, r.location, r.namespace, r.connection, r.interval_seconds, r.table_prefix)
                for r in rows
            ]

    def task(self, name: str) -> TaskRecord | None:
        return next((t for t in self.tasks() if t.name == name), None)

    def remove_task(self, name: str) -> bool:
        """The task goes; its tables stay as they are, still held by its name (another task finding
        them is a conflict; the task added again under the same name syncs them again)."""
        return self._remove(datascan_tasks_t, name)

    # --- which task holds which table -----------------------------------------------------------
    def table_claims(self) -> dict[tuple[str, str], TableClaim]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(datascan_tables_t))
            return {
                (r.namespace, r.name): TableClaim(r.namespace, r.name, r.task, r.layout, r.folder)
                for r in rows
            }

    def claim_table(self, claim: TableClaim) -> TableClaim:
        """Record that `claim.task` holds the table, unless a task holds it already: the holder."""
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(datascan_tables_t).values(**claim.__dict__, claimed_at=utc_now()))
            return claim
        except sa.exc.IntegrityError:
            held = self.table_claims().get((claim.namespace, claim.name))
            assert held is not None
            return held

    # --- tables a task found that another holds ---------------------------------------------
    def record_task_conflict(self, namespace: str, name: str, task: str, reason: str) -> bool:
        """Record once per (table, task); True when it is new."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(datascan_conflicts_t).values(
                        namespace=namespace, name=name, task=task, reason=reason, first_seen=utc_now()
                    )
                )
        except sa.exc.IntegrityError:
            return False
        return True

    def task_conflicts(self, task: str) -> list[dict[str, Any]]:
        query = sa.select(datascan_conflicts_t).where(datascan_conflicts_t.c.task == task)
        with self.engine.connect() as conn:
            return [
                {"table": f"{r.namespace}.{r.name}", "reason": r.reason}
                for r in conn.execute(
                    query.order_by(datascan_conflicts_t.c.namespace, datascan_conflicts_t.c.name)
                )
            ]
