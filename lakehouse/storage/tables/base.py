"""The table-store interface: open-format tables in one catalog, whatever the format.

Each format is its own module (iceberg.py, delta.py) behind this small interface, so assets, models
and the engine never touch pyiceberg or deltalake. Every managed table is also listed in
lakehouse_tables with its origin, which is how DataScan tells its own tables from user-created ones
in both formats.
"""

from __future__ import annotations

import datetime as dt
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId
from lakehouse.storage.catalog import CatalogDB, TableRecord
from lakehouse.storage.schemas import conform, merge_schemas, normalize_schema

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pads

    from lakehouse.core.settings import LakehouseSettings

COMMIT_RETRIES = 8

Chunks = Callable[[], Iterable["pa.Table"]]
"""A re-creatable stream of row chunks: called again for a retry, so it must yield the same rows."""


@dataclass(frozen=True)
class SnapshotInfo:
    """One committed version of a table (an Iceberg snapshot, a Delta version)."""

    snapshot_id: str
    committed_at: dt.datetime
    """When it was committed (UTC)."""
    operation: str
    rows: int | None
    """Rows the table held at this snapshot (None: the format could not say)."""
    current: bool


@dataclass(frozen=True)
class Pinned:
    """One snapshot of a table: its version (None: no data yet) and a lazy dataset over its files."""

    version: str | None
    dataset: pads.Dataset
    bytes: int | None = None
    """Total size of its data files, when the format says it cheaply (None: unknown)."""


@dataclass(frozen=True)
class CommittedFile:
    """A data file another engine wrote, as a commit adds it."""

    path: str
    bytes: int
    rows: int
    partition_values: Mapping[str, str | None]
    """Every partition column of the table -> its value in this file, as text (None: NULL)."""


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
    def partition_columns(self, table: TableId) -> list[str]:
        """The table's partition columns, in partition-spec order (none for an unpartitioned table)."""

    @abstractmethod
    def version(self, table: TableId) -> str | None:
        """The current snapshot id / version, or None for a table without data."""

    def pinned(self, table: TableId, snapshot: str | None = None) -> Pinned:
        """A snapshot's version and a lazy dataset over exactly that snapshot: the current one, from
        one look at the table (a commit in between cannot pair one version with another's files),
        or the one named by `snapshot` (time travel; QueryError when the table has no such one)."""
        if snapshot is not None:
            raise NotImplementedError(f"{self.format} tables do not support time travel")
        while True:
            version = self.version(table)
            dataset = self.dataset(table)
            if self.version(table) == version:
                return Pinned(version, dataset)

    def snapshots(self, table: TableId) -> list[SnapshotInfo]:
        """The table's snapshots that can still be read, oldest first."""
        raise NotImplementedError(f"{self.format} tables do not list snapshots")

    def snapshot_as_of(self, table: TableId, when: dt.datetime) -> str:
        """The id of the snapshot that was current at `when` (the last committed at or before it)."""
        from lakehouse.engines.base import QueryError

        found = [s for s in self.snapshots(table) if s.committed_at <= when]
        if not found:
            raise QueryError(
                f"{table} has no snapshot at or before {when.isoformat()} (see lakehouse.snapshots)"
            )
        return found[-1].snapshot_id

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
                if not is_commit_conflict(exc) or attempt == COMMIT_RETRIES - 1:
                    raise
                time.sleep(0.05 * 2**attempt)  # another writer committed first: retry on the new snapshot
        raise AssertionError("unreachable")

    def read(self, table: TableId, partition: Mapping[str, str] | None = None) -> pa.Table:
        return self.dataset(table, partition).to_table()

    # -- files another engine wrote (Spark) -----------------------------------------------------
    files_hold_partition_columns = True
    """Whether data files carry the partition columns (Iceberg) or only their paths do (Delta)."""

    def staging_location(self, table: TableId) -> str:
        """A new, unique folder under the table's location for another engine's Parquet output:
        files left there by a writer that died before committing are orphans (lakehouse maintain)."""
        import uuid

        return f"{self.location(table)}/data/_engine_{uuid.uuid4().hex}"

    def commit_files(
        self,
        table: TableId,
        files: Sequence[tuple[str, Mapping[str, str | None]]],
        partitions: Sequence[Mapping[str, str]],
    ) -> list[CommittedFile]:
        """Atomically make each of the partitions hold exactly the rows of these Parquet files
        (another engine wrote them under staging_location), retried on a concurrent commit.

        Each file comes with its value of every partition column of the table (a day index too);
        files with no rows are left out. Iceberg replaces all the partitions in one commit; Delta in
        one commit per group of partitions its partition filters can name exactly (each partition
        is always replaced atomically). Returns the files committed."""
        import pyarrow.parquet as pq

        filesystem, paths = arrow_paths([f for f, _ in files], self.settings)
        sized = []
        for (original, values), path in zip(files, paths, strict=True):
            meta = pq.read_metadata(path, filesystem=filesystem)
            if meta.num_rows:
                size = filesystem.get_file_info(path).size
                sized.append(CommittedFile(original, size, meta.num_rows, dict(values)))
        for attempt in range(COMMIT_RETRIES):
            try:
                self._commit_files(table, sized, list(partitions))
                return sized
            except Exception as exc:
                if not is_commit_conflict(exc) or attempt == COMMIT_RETRIES - 1:
                    raise
                time.sleep(0.05 * 2**attempt)
        raise AssertionError("unreachable")

    @abstractmethod
    def _commit_files(
        self, table: TableId, files: Sequence[CommittedFile], partitions: Sequence[Mapping[str, str]]
    ) -> None:
        """Replace the partitions' files by `files`."""


def is_commit_conflict(exc: Exception) -> bool:
    name = type(exc).__name__
    return name in {"CommitFailedException", "CommitFailedError", "CommitConflictError"} or (
        "conflict" in str(exc).lower() and "commit" in str(exc).lower()
    )


def arrow_paths(paths: list[str], settings: LakehouseSettings) -> tuple[Any, list[str]]:
    import pyarrow.fs as pafs

    from lakehouse.storage.object_store import arrow_s3_filesystem

    if paths and paths[0].startswith("s3://"):
        return arrow_s3_filesystem(settings.s3), [p.removeprefix("s3://") for p in paths]
    return pafs.LocalFileSystem(), [p.removeprefix("file://") for p in paths]
