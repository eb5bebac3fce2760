"""Maintenance of Delta Lake tables (deltalake): optimize.compact per partition, and vacuum.

A Delta version cannot be expired by itself: it stops being readable when vacuum deletes files it
needs. So "expiring" versions here means letting `DeltaTable.vacuum` delete the files only they
need: vacuum is given the versions to keep (`keep_versions`: the current one, the last N, the young
ones and the pinned ones) and a retention that no in-flight write is younger than.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId
from lakehouse.storage.tables import upkeep
from lakehouse.storage.tables.upkeep import (
    Compacted,
    DataFile,
    StoredFile,
    TableUpkeep,
    Version,
    plain_path,
)

if TYPE_CHECKING:
    from lakehouse.storage.tables.delta import DeltaTableStore

MAINTENANCE_OPERATIONS = frozenset({"OPTIMIZE", "VACUUM START", "VACUUM END"})
"""Commits that keep the rows as they were (maintenance's own)."""


class DeltaUpkeep(TableUpkeep):
    """Maintenance operations on Delta tables."""

    store: DeltaTableStore

    def location(self, table: TableId) -> str:
        return self.store.location(table)

    def _table(self, table: TableId, version: int | None = None) -> Any:
        from deltalake import DeltaTable

        if version is None:
            return self.store._table(table)
        return DeltaTable(self.location(table), version=version, storage_options=self.store._options())

    def _plain(self, table: TableId, path: str) -> str:
        """A path from the log or vacuum (relative to the table, absolute, or a URI) as plain_path."""
        if "://" in path or path.startswith("/"):
            return plain_path(path)
        return f"{plain_path(self.location(table)).rstrip('/')}/{path}"

    def live_files(self, table: TableId) -> list[DataFile]:
        return self._files(table, self._table(table))

    def _files(self, table: TableId, delta: Any) -> list[DataFile]:
        import pyarrow as pa

        columns = list(delta.metadata().partition_columns)
        found = []
        for action in pa.table(delta.get_add_actions(flatten=True)).to_pylist():
            partition = tuple((c, action.get(f"partition.{c}")) for c in columns)
            partition = tuple((c, None if v is None else str(v)) for c, v in partition)
            found.append(
                DataFile(
                    self._plain(table, action["path"]),
                    action["size_bytes"],
                    action.get("num_records"),
                    partition,
                )
            )
        return found

    def versions(self, table: TableId) -> list[Version]:
        import datetime as dt

        delta = self._table(table)
        current = delta.version()
        return [
            Version(
                snapshot_id=str(entry["version"]),
                committed_at=dt.datetime.fromtimestamp(entry["timestamp"] / 1000, dt.UTC),
                maintenance=str(entry.get("operation", "")) in MAINTENANCE_OPERATIONS,
                current=entry["version"] == current,
            )
            for entry in sorted(delta.history(), key=lambda h: h["version"])
        ]

    def compact(self, table: TableId, partition: Mapping[str, str], target_bytes: int) -> Compacted:
        from deltalake.exceptions import CommitFailedError

        delta = self._table(table)  # the version the compaction is based on (not reloaded below)
        before = sum(1 for f in self._files(table, delta) if dict(f.partition) == dict(partition))
        upkeep.before_compaction_commit(table, partition)
        filters = [(c, "=", v) for c, v in partition.items()] or None
        try:
            # deltalake's conflict check fails the commit when any write landed since `delta`'s version.
            metrics = delta.optimize.compact(partition_filters=filters, target_size=target_bytes)
        except CommitFailedError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            return Compacted(
                before, before, skipped=f"a concurrent write changed the table, which won ({reason})"
            )
        added, removed = int(metrics.get("numFilesAdded", 0)), int(metrics.get("numFilesRemoved", 0))
        return Compacted(before, before - removed + added)

    def _version_files(self, table: TableId, versions: set[str]) -> dict[str, set[str]]:
        """The data files of each given version that the log can still describe."""
        wanted = sorted(int(v) for v in versions if v.isdigit())
        found: dict[str, set[str]] = {}
        walker: Any = None
        for version in wanted:  # ascending: one log replay, moved forward version by version
            try:
                if walker is None:
                    walker = self._table(table, version)
                else:
                    walker.load_as_version(version)
                found[str(version)] = {self._plain(table, p) for p in walker.file_uris()}
            except Exception:  # a version whose log was cleaned up: nothing of it is readable anyway
                walker = None
        return found

    def expire(
        self, table: TableId, expire: list[str], keep: set[str], dry_run: bool, vacuum_hours: int
    ) -> tuple[list[str], str | None]:
        """Nothing is committed: the versions expire when vacuum deletes files they need. Returns the
        versions that are readable now and that this run's vacuum makes unreadable."""
        doomed = {f.path for f in self.vacuum(table, keep, vacuum_hours, dry_run=True) or []}
        if not doomed:
            return [], None
        existing = {f.path for f in self.list_files(self.location(table))}
        files = self._version_files(table, set(expire) - keep)
        gone = [v for v, paths in files.items() if paths <= existing and paths & doomed]
        return sorted(gone, key=int), None

    def vacuum(
        self, table: TableId, keep: set[str], retention_hours: int, dry_run: bool
    ) -> list[StoredFile] | None:
        delta = self._table(table)
        options: dict[str, Any] = {
            "retention_hours": retention_hours,
            "enforce_retention_duration": False,  # maintenance's retention is its own (below a week)
            "keep_versions": sorted(int(v) for v in keep if v.isdigit()),
        }
        listed = {self._plain(table, p) for p in delta.vacuum(dry_run=True, **options)}
        # vacuum lists tombstones whose files are gone already: only files that exist count.
        present = [f for f in self.list_files(self.location(table)) if f.path in listed]
        if present and not dry_run:
            delta.vacuum(dry_run=False, **options)
        return present

    def referenced(self, table: TableId, versions: set[str]) -> set[str]:
        found: set[str] = set()
        for paths in self._version_files(table, versions).values():
            found |= paths
        return found

    def candidates(self, table: TableId) -> list[StoredFile]:
        root = plain_path(self.location(table)).rstrip("/")
        # Data files only: never the log, nor anything hidden (names starting with _ or .).
        return [
            f
            for f in self.list_files(self.location(table))
            if f.path.endswith(".parquet")
            and not any(part.startswith(("_", ".")) for part in f.path[len(root) + 1 :].split("/"))
        ]
