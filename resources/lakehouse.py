"""The lakehouse as one object (object store + catalog + table store + engine), and its Dagster resource."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

import dagster as dg

from resources.catalog import CatalogDB
from resources.engine import DuckDBEngine
from resources.object_store import ObjectStore, open_object_store
from resources.settings import LakehouseSettings
from resources.table_store import TableId, TableStore, open_table_store

if TYPE_CHECKING:
    import pyarrow as pa

    from resources.governance import GovernanceDB, Mask, Principal


class Lakehouse:
    """Everything a pipeline step needs, built lazily from settings."""

    def __init__(self, settings: LakehouseSettings) -> None:
        self.settings = settings

    @cached_property
    def landing(self) -> ObjectStore:
        return open_object_store(self.settings.landing_uri, self.settings.s3)

    @cached_property
    def catalog(self) -> CatalogDB:
        return CatalogDB(self.settings.catalog_uri)

    @cached_property
    def tables(self) -> TableStore:
        return open_table_store(self.settings, self.catalog)

    @cached_property
    def engine(self) -> DuckDBEngine:
        return DuckDBEngine()

    def sources(self, idents: list[TableId], partition: dict[str, str] | None = None) -> dict[TableId, Any]:
        """Lazy datasets for the given tables (optionally one partition of each)."""
        return {ident: self.tables.dataset(ident, partition) for ident in idents}

    @cached_property
    def governance(self) -> GovernanceDB:
        from resources.governance import GovernanceDB

        return GovernanceDB(self.settings.catalog_uri)

    def system_tables(self) -> dict[TableId, Any]:
        """The bookkeeping tables as Arrow, exposed to SQL under the `lakehouse` namespace (owner only)."""
        import pyarrow.compute as pc

        from resources import governance as g
        from resources.catalog import conflicts_t, files_t, tables_t

        files = self.catalog.as_arrow(files_t)
        rejected = files.filter(pc.equal(files["status"], "rejected"))
        gov = self.governance
        return {
            TableId("lakehouse", "files"): files,
            TableId("lakehouse", "rejected_files"): rejected.drop_columns(["fingerprint", "status", "rows"]),
            TableId("lakehouse", "tables"): self.catalog.as_arrow(tables_t),
            TableId("lakehouse", "conflicts"): self.catalog.as_arrow(conflicts_t),
            TableId("lakehouse", "audit"): gov.as_arrow(g.access_t),
            TableId("lakehouse", "policy_changes"): gov.as_arrow(g.changes_t),
            TableId("lakehouse", "roles"): gov.as_arrow(g.roles_t),
            TableId("lakehouse", "users"): gov.as_arrow(g.users_t),
            TableId("lakehouse", "role_members"): gov.as_arrow(g.members_t),
            TableId("lakehouse", "grants"): gov.as_arrow(g.grants_t),
            TableId("lakehouse", "masking_policies"): gov.as_arrow(g.policies_t),
            TableId("lakehouse", "masking_bindings"): gov.as_arrow(g.bindings_t),
        }

    def _canonical(self, namespace: str, name: str) -> TableId:
        """The catalog's spelling of a table named in any case (SQL identifiers are case-insensitive)."""
        wanted = (namespace.lower(), name.lower())
        for record in self.catalog.list_tables():
            if (record.namespace.lower(), record.name.lower()) == wanted:
                return TableId(record.namespace, record.name)
        return TableId(namespace, name)

    def sql(
        self, query: str, user: str | None = None, role: str | None = None, project: str | None = None
    ) -> pa.Table:
        """Read-only SQL (DuckDB dialect) over the catalog's tables as namespace.table.

        Without user and role the caller is the owner: every table, real values. With a user (and
        optionally one of its roles) the query is governed: see `_governed_sql`. `project` is the
        namespace unqualified table names resolve in."""
        from resources.governance import Principal

        principal = self._principal(user, role, "query", query)
        if principal != Principal():
            return self._governed_sql(query, principal, project)
        return self._owner_sql(query, project)

    def _owner_sql(self, query: str, project: str | None) -> pa.Table:
        from resources.engine import QueryError, ensure_read_only, referenced_tables

        ensure_read_only(query)
        referenced = referenced_tables(query)
        system = self.system_tables() if any(ns == "lakehouse" for ns, _ in referenced) else {}
        sources: dict[TableId | str, Any] = {}
        for namespace, name in referenced:
            if namespace is None and project is None:
                raise QueryError(f"table {name!r} must be qualified as namespace.table")
            ident = TableId(namespace or project or "", name)
            if ident in system:
                sources[ident] = system[ident]
            elif self.tables.exists(ident):
                sources[ident] = self.tables.dataset(ident)
            else:
                raise QueryError(f"table {ident} does not exist (see `lakehouse tables`)")
        return self.engine.query(query, sources, default_namespace=project)

    def _principal(self, user: str | None, role: str | None, kind: str, statement: str) -> Principal:
        from resources.governance import PermissionDenied, Principal

        try:
            return self.governance.resolve(user, role)
        except PermissionDenied as exc:
            asked = Principal(user, frozenset({role}) if role else frozenset())
            self.governance.record_access(asked, kind, [], None, None, "denied", str(exc), statement)
            raise

    def _governed_sql(self, query: str, principal: Principal, project: str | None) -> pa.Table:
        """A governed query: only tables the principal may SELECT, masked columns masked before the
        engine sees them. The engine's connection holds nothing but the (masked) tables the query
        names, so no function, file, catalog view or time travel can reach a raw value."""
        from resources.engine import QueryError, ensure_governed_query, query_identifiers, referenced_tables
        from resources.governance import PermissionDenied

        idents: list[TableId] = []
        masks: dict[TableId, dict[str, Mask]] = {}
        try:
            ensure_governed_query(query)
            for namespace, name in referenced_tables(query):
                if namespace is None and project is None:
                    raise QueryError(
                        f"table {name!r} must be qualified as namespace.table (or pass a project)"
                    )
                idents.append(self._canonical(namespace or project or "", name))
            masks = self.governance.authorize(principal, idents)
            needed = query_identifiers(query)
            sources: dict[TableId | str, Any] = {
                ident: self._governed_source(ident, masks[ident], needed) for ident in idents
            }
            result = self.engine.query(query, sources, default_namespace=project)
        except Exception as exc:
            status = "denied" if isinstance(exc, PermissionDenied) else "error"
            self.governance.record_access(principal, "query", idents, masks, None, status, str(exc), query)
            raise
        self.governance.record_access(principal, "query", idents, masks, result.num_rows, "ok", None, query)
        return result

    def _salt(self, masks: Mapping[str, Mask]) -> bytes | None:
        from resources.masking import masking_salt

        if any(m.function == "MASKED_HASH" for m in masks.values()):
            return masking_salt(self.settings.home)
        return None

    def masked_batches(
        self,
        ident: TableId,
        masks: Mapping[str, Mask],
        columns: list[str] | None = None,
        partition: dict[str, str] | None = None,
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """The table's current snapshot as record batches with the masked columns masked.

        A partition filter on a masked column is refused: it would select rows by the raw values
        (an oracle for them) before any masking."""
        import pyarrow as pa

        from resources.governance import PermissionDenied
        from resources.masking import lookup, mask_table, result_type

        for key in partition or {}:
            if lookup(masks, key) is not None:
                raise PermissionDenied(f"{ident}: cannot filter by masked column {key!r}")
        dataset = self.tables.dataset(ident, partition)
        names = columns if columns is not None else dataset.schema.names
        spec = {c: (m.function, m.args) for c, m in masks.items()}
        salt = self._salt(masks)

        def field(n: str) -> pa.Field:
            found = lookup(spec, n)
            plain = dataset.schema.field(n)
            return plain if found is None else plain.with_type(result_type(found[0], plain.type))

        schema = pa.schema([field(n) for n in names])

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in dataset.to_batches(columns=names):
                masked = mask_table(pa.Table.from_batches([batch]), spec, salt)
                yield from masked.cast(schema).to_batches()

        return schema, batches()

    def _governed_source(self, ident: TableId, masks: Mapping[str, Mask], needed: set[str] | None) -> Any:
        import pyarrow as pa

        dataset = self.tables.dataset(ident)
        if not masks:
            return dataset  # nothing hidden from this principal: a lazy scan with pushdown is fine
        names = [n for n in dataset.schema.names if needed is None or n.lower() in needed]
        schema, batches = self.masked_batches(ident, masks, names or dataset.schema.names[:1])
        return pa.Table.from_batches(list(batches), schema=schema)  # only masked values, materialized

    def read_table(
        self,
        table: TableId | str,
        user: str | None = None,
        role: str | None = None,
        columns: list[str] | None = None,
        partition: dict[str, str] | None = None,
    ) -> pa.Table:
        """A table as Arrow under the same rules as `sql` (for serving and training code)."""
        import pyarrow as pa

        from resources.governance import PermissionDenied, Principal

        ident = TableId.parse(table) if isinstance(table, str) else table
        principal = self._principal(user, role, "read_table", str(ident))
        if principal == Principal():
            return self.tables.dataset(ident, partition).to_table(columns=columns)
        ident = self._canonical(ident.namespace, ident.name)
        masks: dict[TableId, dict[str, Mask]] = {}
        try:
            masks = self.governance.authorize(principal, [ident])
            schema, batches = self.masked_batches(ident, masks[ident], columns, partition)
            result = pa.Table.from_batches(list(batches), schema=schema)
        except Exception as exc:
            status = "denied" if isinstance(exc, PermissionDenied) else "error"
            self.governance.record_access(principal, "read_table", [ident], masks, None, status, str(exc))
            raise
        self.governance.record_access(principal, "read_table", [ident], masks, result.num_rows, "ok")
        return result


class LakehouseResource(dg.ConfigurableResource):
    """The lakehouse for Dagster. Unset fields come from the LAKEHOUSE_* environment at run time.

    S3 credentials are always read from the standard AWS_* variables when a run starts, so they
    never enter run config, metadata or logs."""

    home: str | None = None
    """Overrides LAKEHOUSE_HOME."""
    landing_uri: str | None = None
    """Overrides LAKEHOUSE_LANDING_URI."""
    warehouse_uri: str | None = None
    """Overrides LAKEHOUSE_WAREHOUSE_URI."""
    catalog_uri: str | None = None
    """Overrides LAKEHOUSE_CATALOG_URI."""
    table_format: str | None = None
    """Overrides LAKEHOUSE_TABLE_FORMAT (iceberg | delta)."""
    distance_method: str | None = None
    """Overrides LAKEHOUSE_DISTANCE_METHOD (haversine | planar)."""
    timezone: str | None = None
    """Overrides LAKEHOUSE_TIMEZONE (IANA zone of event times)."""
    daily_start_date: str | None = None
    """Overrides LAKEHOUSE_DAILY_START_DATE."""

    def settings(self) -> LakehouseSettings:
        import os

        env = dict(os.environ)
        overrides = {
            "LAKEHOUSE_HOME": self.home,
            "LAKEHOUSE_LANDING_URI": self.landing_uri,
            "LAKEHOUSE_WAREHOUSE_URI": self.warehouse_uri,
            "LAKEHOUSE_CATALOG_URI": self.catalog_uri,
            "LAKEHOUSE_TABLE_FORMAT": self.table_format,
            "LAKEHOUSE_DISTANCE_METHOD": self.distance_method,
            "LAKEHOUSE_TIMEZONE": self.timezone,
            "LAKEHOUSE_DAILY_START_DATE": self.daily_start_date,
        }
        env.update({name: value for name, value in overrides.items() if value})
        return LakehouseSettings.from_env(env)  # the same validation as the environment gets

    def open(self) -> Lakehouse:
        return Lakehouse(self.settings())

    @classmethod
    def from_settings(cls, settings: LakehouseSettings) -> LakehouseResource:
        return cls(
            home=settings.home,
            landing_uri=settings.landing_uri,
            warehouse_uri=settings.warehouse_uri,
            catalog_uri=settings.catalog_uri,
            table_format=settings.table_format,
            distance_method=settings.distance_method,
            timezone=settings.timezone,
            daily_start_date=settings.daily_start_date,
        )
