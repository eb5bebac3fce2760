"""The `Lakehouse` facade: object store + catalog + table store + engine + governance, from settings.

Every entry point uses it: the Dagster resource, the CLI, the share, and (later) serving and
training. Its parts are built lazily, so opening a lakehouse costs nothing until a part is used.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId
from lakehouse.core.settings import LakehouseSettings, as_uri
from lakehouse.storage.catalog import CatalogDB, TableRecord
from lakehouse.storage.object_store import ObjectStore, open_object_store
from lakehouse.storage.tables import TableStore, open_table_store
from lakehouse.storage.tables.base import Pinned

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pads

    from lakehouse.engines.base import Engine
    from lakehouse.governance.access import GovernedAccess
    from lakehouse.governance.audit import AuditLog
    from lakehouse.governance.policy_apply import ApplyReport
    from lakehouse.governance.store import GovernanceDB, Mask


class Lakehouse:
    """Everything a pipeline step, a command or a reader needs, built lazily from settings."""

    def __init__(self, settings: LakehouseSettings) -> None:
        from lakehouse.core.files import private_umask

        private_umask()  # what it writes under its (local) home is its owner's only: core/files.py
        self.settings = settings
        self._spellings: dict[tuple[str, str], TableId] = {}

    @classmethod
    def from_env(cls) -> Lakehouse:
        """The lakehouse the LAKEHOUSE_* environment describes (ConfigError naming a bad variable)."""
        return cls(LakehouseSettings.from_env())

    # --- parts ---------------------------------------------------------------------------------
    @cached_property
    def landing(self) -> ObjectStore:
        return open_object_store(self.settings.landing_uri, self.settings.s3)

    def object_store(self, location: str) -> ObjectStore:
        """Another folder or bucket prefix, reached with the lakehouse's S3 credentials."""
        return open_object_store(as_uri(location), self.settings.s3)

    @cached_property
    def catalog(self) -> CatalogDB:
        return CatalogDB(self.settings.catalog_uri)

    @cached_property
    def tables(self) -> TableStore:
        return open_table_store(self.settings, self.catalog)

    @cached_property
    def engine(self) -> Engine:
        """The engine SQL models run on (LAKEHOUSE_ENGINE). Queries through `sql()` and every
        governed read run on DuckDB over the same snapshots whatever it is."""
        from lakehouse.engines import open_engine

        return open_engine(
            self.settings.engine, spark_remote=self.settings.spark_remote, locate=self.tables.location
        )

    @cached_property
    def local_engine(self) -> Engine:
        """DuckDB, embedded: ad-hoc and governed queries, checks and bookkeeping on any engine."""
        from lakehouse.engines import open_engine

        return open_engine("duckdb")

    @cached_property
    def governance(self) -> GovernanceDB:
        from lakehouse.governance.store import GovernanceDB

        return GovernanceDB(self.settings.catalog_uri)

    @cached_property
    def audit(self) -> AuditLog:
        """The tamper-evident access audit (see governance/audit.py)."""
        from lakehouse.governance.audit import AuditLog

        return AuditLog(self.governance.engine, self.settings.home)

    @cached_property
    def access(self) -> GovernedAccess:
        """Grants, masks and audit for every read made on behalf of a user (see governance/access.py)."""
        from lakehouse.governance.access import GovernedAccess

        return GovernedAccess(self)

    def for_serving(self, result_cache: bool = True) -> Lakehouse:
        """This lakehouse set up for a long-lived reader (the SQL endpoint, the dashboard): small
        tables (and, with `result_cache`, results) are kept in memory per snapshot and principal
        instead of computed by every query, principals and grants are remembered until the policy
        changes, and engine connections are reused. A new snapshot is read on the next query."""
        self.access.keep_small_tables = True
        self.access.remember_results = result_cache
        return self

    # --- reading ---------------------------------------------------------------------------------
    def sources(self, idents: list[TableId], partition: dict[str, str] | None = None) -> dict[TableId, Any]:
        """Lazy datasets for the given tables (optionally one partition of each)."""
        return {ident: self.tables.dataset(ident, partition) for ident in idents}

    def canonical(self, namespace: str, name: str) -> TableId:
        """The catalog's spelling of a table named in any case (SQL identifiers are case-insensitive);
        a name the catalog does not know, lower-cased, so that a table that does not exist and one
        that is not granted get the same answer in any spelling."""
        remembered = self._spellings.get((namespace.lower(), name.lower()))
        if remembered is not None:
            return remembered
        found = self.catalog.find_table(namespace, name)
        if found is None:
            return TableId(namespace.lower(), name.lower())
        ident = TableId(found.namespace, found.name)
        if self.access.keep_small_tables:  # serving: a table keeps its spelling while it exists
            self._spellings[(namespace.lower(), name.lower())] = ident
        return ident

    def check_partition(self, table: TableId, partition: Mapping[str, str] | None) -> None:
        """Refuse a partition filter on a column the table is not partitioned by (it would be ignored)."""
        if not partition:
            return
        from lakehouse.engines.base import QueryError

        columns = self.tables.partition_columns(table)
        wrong = sorted(set(partition) - set(columns))
        if wrong:
            raise QueryError(
                f"{table}: {', '.join(wrong)} is not a partition column "
                f"(partition columns: {', '.join(columns) or 'none'})"
            )

    def sql(
        self,
        query: str,
        user: str | None = None,
        role: str | None = None,
        project: str | None = None,
        as_of: str | None = None,
    ) -> pa.Table:
        """Read-only SQL (DuckDB dialect) over the catalog's tables as namespace.table.

        Without user and role the caller is the owner: every table, real values. With a user (and
        optionally one of its roles) the query is governed: see GovernedAccess.sql. `project` is the
        namespace unqualified table names resolve in. `as_of` reads the tables as they were: a
        snapshot id (of the one table the query reads) or a timestamp (every table it reads)."""
        with self.access.one_policy_version():
            principal = self.access.principal(user, role, "query", query)
            if not principal.is_owner:
                return self.access.sql(query, principal, project, as_of)
        return self._owner_sql(query, project, as_of)

    def pin_all(self, tables: list[TableId], as_of: str | None = None) -> dict[TableId, Pinned]:
        """One pinned snapshot per table: the current ones, or those `as_of` names (a snapshot id,
        which names one table's snapshot, or a time: each table's snapshot current then)."""
        if as_of is None:
            return {t: self.tables.pinned(t) for t in tables}
        from lakehouse.engines.base import QueryError

        text = str(as_of).strip()
        if text.isdigit():
            if len(tables) != 1:
                raise QueryError(
                    f"as of snapshot {text}: a snapshot id names one table's snapshot, and the query "
                    f"reads {len(tables)} tables (give a timestamp instead)"
                )
            return {tables[0]: self.tables.pinned(tables[0], text)}
        when = parse_as_of(text)
        return {t: self.tables.pinned(t, self.tables.snapshot_as_of(t, when)) for t in tables}

    def _owner_sql(self, query: str, project: str | None, as_of: str | None = None) -> pa.Table:
        from lakehouse.engines.base import QueryError
        from lakehouse.engines.sql import ensure_read_only, referenced_tables
        from lakehouse.governance.store import Principal

        ensure_read_only(query)
        referenced = referenced_tables(query)
        system_names = {name.lower() for ns, name in referenced if (ns or "").lower() == "lakehouse"}
        system = self.system_tables(system_names) if system_names else {}
        sources: dict[TableId | str, Any] = {}
        stored_as: dict[TableId, TableId] = {}
        for namespace, name in referenced:
            if namespace is None and project is None:
                raise QueryError(f"table {name!r} must be qualified as namespace.table")
            ident = TableId(namespace or project or "", name)
            if ident in system:
                sources[ident] = system[ident]
                continue
            stored = self.canonical(ident.namespace, ident.name)  # SQL names are case-insensitive
            if not self.tables.exists(stored):
                raise QueryError(f"table {ident} does not exist (see `lakehouse tables`)")
            stored_as[ident] = stored
        pinned = self.pin_all(list(stored_as.values()), as_of)
        pins = {ident: pinned[stored] for ident, stored in stored_as.items()}
        owner = Principal()
        # Serving: the owner's queries too get the limits, pooled connections and the result cache.
        serving = self.access.keep_small_tables
        engine = self.access.engine(self.settings.query_timeout_seconds) if serving else self.local_engine

        def run() -> pa.Table:
            for ident, pinned in pins.items():
                sources[ident] = self.access.source(owner, ident, {}, None, None, pinned)
            return engine.query(query, sources, default_namespace=project)

        if system:
            return run()
        return self.access.cached_result(owner, query, project, pins, {}, run)

    def read_table(
        self,
        table: TableId | str,
        user: str | None = None,
        role: str | None = None,
        columns: list[str] | None = None,
        partition: dict[str, str] | None = None,
        snapshot: str | None = None,
    ) -> pa.Table:
        """A table as Arrow under the same rules as `sql` (for serving and training code), of its
        current snapshot or of the one `snapshot` names."""
        principal = self.access.principal(user, role, "read_table", str(table))
        if principal.is_owner:
            ident = TableId.parse(table) if isinstance(table, str) else table
            self.check_partition(ident, partition)
            if snapshot is None:
                return self.tables.dataset(ident, partition).to_table(columns=columns)
            dataset = partition_filtered(self.tables.pinned(ident, str(snapshot)).dataset, partition)
            return dataset.to_table(columns=columns)
        return self.access.read_table(table, principal, columns, partition, snapshot)

    def masked_batches(
        self,
        ident: TableId,
        masks: Mapping[str, Mask],
        columns: list[str] | None = None,
        partition: dict[str, str] | None = None,
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """The table's current snapshot as record batches with the masked columns masked."""
        return self.access.masked_batches(ident, masks, columns, partition)

    def partitions(self, table: TableId | str) -> pa.Table:
        """Row counts per partition of a table, by the partition columns the table really has."""
        from lakehouse.engines.sql import quote_ident

        ident = TableId.parse(table) if isinstance(table, str) else table
        if not self.tables.exists(ident):
            from lakehouse.engines.base import QueryError

            raise QueryError(f"table {ident} does not exist (see `lakehouse tables`)")
        columns = ", ".join(quote_ident(c) for c in self.tables.partition_columns(ident))
        name = f"{quote_ident(ident.namespace)}.{quote_ident(ident.name)}"
        if not columns:
            return self.sql(f"select count(*) as rows from {name}")
        return self.sql(f"select {columns}, count(*) as rows from {name} group by all order by all")

    # --- governance -------------------------------------------------------------------------------
    def apply_policy(self, text: str, project: str, source: str = "<policy>") -> ApplyReport:
        """Apply policy statements atomically (see governance/policy_apply.py)."""
        from lakehouse.governance.policy_apply import apply_policy

        return apply_policy(self, text, project, source)

    def export_share(
        self, table: str, target: str, user: str, role: str | None = None, overwrite: bool = False
    ) -> dict[str, Any]:
        """Export the table as `user` sees it; returns the share's manifest (see governance/share.py)."""
        from lakehouse.governance.share import export_share

        return export_share(self, table, target, user=user, role=role, overwrite=overwrite)

    # --- bookkeeping ------------------------------------------------------------------------------
    def table_records(self, namespace: str | None = None) -> list[TableRecord]:
        """The tables the lakehouse manages (format, origin, location)."""
        return self.catalog.list_tables(namespace)

    def rejected_files(self) -> list[dict[str, Any]]:
        """Landed files DataScan rejected, with the reason."""
        return self.catalog.file_rows(status="rejected")

    def snapshots(self) -> pa.Table:
        """Every readable snapshot of every managed table (the system table lakehouse.snapshots)."""
        import pyarrow as pa

        rows = []
        for record in self.catalog.list_tables():
            ident = TableId(record.namespace, record.name)
            if record.format != self.tables.format or not self.tables.exists(ident):
                continue
            for snap in self.tables.snapshots(ident):
                rows.append(
                    {
                        "table": str(ident),
                        "format": record.format,
                        "snapshot_id": snap.snapshot_id,
                        "committed_at": snap.committed_at,
                        "operation": snap.operation,
                        "rows": snap.rows,
                        "is_current": snap.current,
                    }
                )
        schema = pa.schema(
            [
                ("table", pa.string()),
                ("format", pa.string()),
                ("snapshot_id", pa.string()),
                ("committed_at", pa.timestamp("us", tz="UTC")),
                ("operation", pa.string()),
                ("rows", pa.int64()),
                ("is_current", pa.bool_()),
            ]
        )
        return pa.Table.from_pylist(rows, schema=schema)

    def system_tables(self, names: set[str] | None = None) -> dict[TableId, Any]:
        """The bookkeeping tables as Arrow, exposed to SQL under the `lakehouse` namespace (owner
        only); `names` limits them to those a query reads (lakehouse.snapshots costs a look at every
        table's metadata)."""
        if names is not None and "snapshots" in names:
            found = self.system_tables(names - {"snapshots"}) if names - {"snapshots"} else {}
            return {**found, TableId("lakehouse", "snapshots"): self.snapshots()}
        import pyarrow.compute as pc

        from lakehouse.governance import store as g
        from lakehouse.storage.catalog import conflicts_t, files_t, snapshot_pins_t, tables_t
        from lakehouse.storage.catalog_schema import connections_t, datascan_tables_t, datascan_tasks_t

        files = self.catalog.as_arrow(files_t)
        rejected = files.filter(pc.equal(files["status"], "rejected"))
        gov = self.governance
        return {
            TableId("lakehouse", "files"): files,
            TableId("lakehouse", "rejected_files"): rejected.drop_columns(["fingerprint", "status", "rows"]),
            TableId("lakehouse", "tables"): self.catalog.as_arrow(tables_t),
            TableId("lakehouse", "conflicts"): self.catalog.as_arrow(conflicts_t),
            TableId("lakehouse", "snapshot_pins"): self.catalog.as_arrow(snapshot_pins_t),
            TableId("lakehouse", "connections"): self.catalog.as_arrow(connections_t),  # no secret in it
            TableId("lakehouse", "datascan_tasks"): self.catalog.as_arrow(datascan_tasks_t),
            TableId("lakehouse", "datascan_tables"): self.catalog.as_arrow(datascan_tables_t),
            TableId("lakehouse", "audit"): gov.as_arrow(g.access_t),
            TableId("lakehouse", "policy_changes"): gov.as_arrow(g.changes_t),
            TableId("lakehouse", "roles"): gov.as_arrow(g.roles_t),
            TableId("lakehouse", "users"): gov.as_arrow(g.users_t),
            TableId("lakehouse", "role_members"): gov.as_arrow(g.members_t),
            TableId("lakehouse", "grants"): gov.as_arrow(g.grants_t),
            TableId("lakehouse", "masking_policies"): gov.as_arrow(g.policies_t),
            TableId("lakehouse", "masking_bindings"): gov.as_arrow(g.bindings_t),
        }


def parse_as_of(text: str) -> dt.datetime:
    """An `as of` time: ISO 8601 (`2025-09-17T23:00:00Z`, `2025-09-17 23:00:00+08:00`); without an
    offset it is UTC."""
    from lakehouse.engines.base import QueryError

    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise QueryError(
            f"as of {text!r}: give a snapshot id (see lakehouse.snapshots) or a time such as "
            "2025-09-17T23:00:00Z"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def partition_filtered(dataset: pads.Dataset, partition: Mapping[str, str] | None) -> pads.Dataset:
    """The rows of one partition (column = value for each key) of a dataset."""
    if not partition:
        return dataset
    import pyarrow.compute as pc

    condition = None
    for column, value in partition.items():
        term = pc.field(column) == value
        condition = term if condition is None else condition & term
    return dataset.filter(condition)
