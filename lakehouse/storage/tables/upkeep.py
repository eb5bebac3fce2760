"""Table upkeep: what table maintenance (lakehouse/maintenance/) needs of a table format.

One interface, one module per format (iceberg_upkeep.py, delta_upkeep.py), which are the only
places that touch pyiceberg / deltalake for maintenance. This module only lists and deletes files
(pyarrow.fs, for a local warehouse or S3) and says what a data file, a version and a compaction are.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId
from lakehouse.storage.tables.base import arrow_paths

if TYPE_CHECKING:
    from lakehouse.storage.tables.base import TableStore

MAINTENANCE_PROPERTY = "lakehouse.maintenance"
"""Set on the snapshots maintenance commits (Iceberg summary property): they hold the same rows."""


@dataclass(frozen=True)
class DataFile:
    """One data file of a table's current snapshot."""

    path: str
    size: int
    rows: int | None
    partition: tuple[tuple[str, str | None], ...]
    """(column, value as text) in partition-spec order; () for an unpartitioned table."""


@dataclass(frozen=True)
class Version:
    """One snapshot (Iceberg) or version (Delta) of a table, oldest first in lists."""

    snapshot_id: str
    committed_at: dt.datetime
    maintenance: bool
    """Committed by maintenance (a compaction, a vacuum): the same rows as the version before it."""
    current: bool


@dataclass(frozen=True)
class StoredFile:
    """A file in a table's folder: its path as pyarrow.fs names it (no scheme), size and age."""

    path: str
    size: int
    modified: dt.datetime


@dataclass(frozen=True)
class Compacted:
    """What compacting one partition did (or why it did nothing)."""

    files_before: int
    files_after: int
    rows: int | None = None
    skipped: str | None = None
    """Why nothing was committed (a concurrent write changed the table: the write won)."""


def before_compaction_commit(table: TableId, partition: Mapping[str, str]) -> None:
    """Called between reading a partition for its compaction and committing the rewrite.

    Does nothing: it is the seam where tests inject a concurrent write of the same partition, which
    must win (the compaction is then skipped and reported, never committed over the write)."""


def plain_path(uri: str) -> str:
    """A file URI as pyarrow.fs names the file: s3://bucket/key -> bucket/key, file:///x -> /x."""
    return uri.removeprefix("s3://").removeprefix("file://")


class TableUpkeep(ABC):
    """Maintenance operations on one format's tables (the store's settings and catalog)."""

    rows_per_file: int | None = None
    """Most rows a rewrite puts in one file (None: only the target size bounds a file)."""

    def __init__(self, store: TableStore) -> None:
        self.store = store
        self.settings = store.settings

    @abstractmethod
    def location(self, table: TableId) -> str:
        """The table's folder (a URI or local path)."""

    @abstractmethod
    def live_files(self, table: TableId) -> list[DataFile]:
        """The data files of the table's current snapshot."""

    @abstractmethod
    def versions(self, table: TableId) -> list[Version]:
        """The table's snapshots / versions, oldest first."""

    @abstractmethod
    def compact(self, table: TableId, partition: Mapping[str, str], target_bytes: int) -> Compacted:
        """Rewrite the partition's data files into as few files of up to `target_bytes` as it takes,
        in one commit that only lands if the partition did not change since it was read."""

    @abstractmethod
    def expire(
        self, table: TableId, expire: list[str], keep: set[str], dry_run: bool, vacuum_hours: int
    ) -> tuple[list[str], str | None]:
        """Expire the `expire` versions (all but `keep`). Returns the versions expired (or, in a dry
        run, that would be) and why some were not (a concurrent commit), if so."""

    @abstractmethod
    def referenced(self, table: TableId, versions: set[str]) -> set[str]:
        """Every file (as plain_path) the given versions and the table's metadata need."""

    @abstractmethod
    def candidates(self, table: TableId) -> list[StoredFile]:
        """The files in the table's folder that maintenance may delete when nothing references them
        (data and metadata files; never a Delta log)."""

    def vacuum(
        self, table: TableId, keep: set[str], retention_hours: int, dry_run: bool
    ) -> list[StoredFile] | None:
        """The format's own vacuum (Delta): files no kept version needs, deleted unless `dry_run`.
        None: the format has none (Iceberg: expiry plus orphan removal are its vacuum)."""
        return None

    # --- files ---------------------------------------------------------------------------------
    def _fs(self, uri: str) -> tuple[Any, str]:
        filesystem, [path] = arrow_paths([uri], self.settings)
        return filesystem, path.rstrip("/")

    def list_files(self, folder: str) -> list[StoredFile]:
        """Every file under `folder`, recursively (none when it does not exist)."""
        import pyarrow.fs as pafs

        filesystem, base = self._fs(folder)
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        found = []
        for info in filesystem.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            modified = info.mtime or dt.datetime.now(dt.UTC)
            if modified.tzinfo is None:
                modified = modified.replace(tzinfo=dt.UTC)
            found.append(StoredFile(info.path, int(info.size or 0), modified))
        return sorted(found, key=lambda f: f.path)

    def delete(self, files: Iterable[StoredFile]) -> int:
        """Delete the files (one gone already is fine); returns the bytes freed."""
        filesystem = self._fs(self.settings.warehouse_uri)[0]  # every table folder is in the warehouse
        freed = 0
        for stored in files:
            try:
                filesystem.delete_file(stored.path)
            except FileNotFoundError:
                continue
            freed += stored.size
        return freed


def open_upkeep(store: TableStore) -> TableUpkeep:
    """The upkeep of the store's format (each imports its library lazily)."""
    if store.format == "delta":
        from lakehouse.storage.tables.delta_upkeep import DeltaUpkeep

        return DeltaUpkeep(store)
    from lakehouse.storage.tables.iceberg_upkeep import IcebergUpkeep

    return IcebergUpkeep(store)
