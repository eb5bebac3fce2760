"""The lakehouse as one object (object store + catalog + table store + engine), and its Dagster resource."""

from __future__ import annotations

from functools import cached_property
from typing import Any

import dagster as dg

from resources.catalog import CatalogDB
from resources.engine import DuckDBEngine
from resources.object_store import ObjectStore, open_object_store
from resources.settings import LakehouseSettings
from resources.table_store import TableId, TableStore, open_table_store


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

    def system_tables(self) -> dict[TableId, Any]:
        """The bookkeeping tables as Arrow, exposed to SQL under the `lakehouse` namespace."""
        import pyarrow.compute as pc

        from resources.catalog import conflicts_t, files_t, tables_t

        files = self.catalog.as_arrow(files_t)
        rejected = files.filter(pc.equal(files["status"], "rejected"))
        return {
            TableId("lakehouse", "files"): files,
            TableId("lakehouse", "rejected_files"): rejected.drop_columns(["fingerprint", "status", "rows"]),
            TableId("lakehouse", "tables"): self.catalog.as_arrow(tables_t),
            TableId("lakehouse", "conflicts"): self.catalog.as_arrow(conflicts_t),
        }

    def sql(self, query: str) -> Any:
        """Read-only SQL (DuckDB dialect) over every catalog table as namespace.table."""
        from resources.engine import QueryError, ensure_read_only, referenced_tables

        ensure_read_only(query)
        referenced = referenced_tables(query)
        system = self.system_tables() if any(ns == "lakehouse" for ns, _ in referenced) else {}
        sources: dict[TableId | str, Any] = {}
        for namespace, name in referenced:
            if namespace is None:
                raise QueryError(f"table {name!r} must be qualified as namespace.table")
            ident = TableId(namespace, name)
            if ident in system:
                sources[ident] = system[ident]
            elif self.tables.exists(ident):
                sources[ident] = self.tables.dataset(ident)
            else:
                raise QueryError(f"table {ident} does not exist (see `lakehouse tables`)")
        return self.engine.query(query, sources)


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
        )
