"""Table stores, one module per open table format, behind the interface in base.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakehouse.storage.tables.base import COMMIT_RETRIES, Chunks, TableStore

if TYPE_CHECKING:
    from lakehouse.core.settings import LakehouseSettings
    from lakehouse.storage.catalog import CatalogDB

__all__ = ["COMMIT_RETRIES", "Chunks", "TableStore", "open_table_store"]


def open_table_store(settings: LakehouseSettings, catalog_db: CatalogDB) -> TableStore:
    """The store of the configured format (LAKEHOUSE_TABLE_FORMAT); each imports its library lazily."""
    if settings.table_format == "delta":
        from lakehouse.storage.tables.delta import DeltaTableStore

        return DeltaTableStore(settings, catalog_db)
    from lakehouse.storage.tables.iceberg import IcebergTableStore

    return IcebergTableStore(settings, catalog_db)
