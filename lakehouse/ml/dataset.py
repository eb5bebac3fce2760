"""`LakehouseDataset`: a lakehouse table as a PyTorch `IterableDataset` of dict batches, governed
exactly like `lakehouse sql --user` and pinned to one snapshot.

    from torch.utils.data import DataLoader
    from lakehouse.ml import LakehouseDataset

    ds = LakehouseDataset("iov.ads_vehicle_hourly_stat", user="RAM$alice", batch_size=4096)
    for batch in DataLoader(ds, num_workers=4, batch_size=None):
        batch["avg_speed"]  # a float64 tensor of up to 4096 rows; batch["vin"]: a list of masked VINs

Governance. Creating the dataset resolves the principal (`user`, `role`; neither: the owner) and
checks its grants: an unknown user or a missing SELECT raises PermissionDenied at creation, audited
as a refused "dataset" attempt, like a refused query. Each iteration (each DataLoader worker's, per
epoch) is one audited attempt (kind "dataset"): the principal and its grants are checked again (a
revoke takes effect at the next epoch), its row is written before any data is read and completed
with the rows that iteration yielded (also when the consumer stops early). Masked columns are masked
in Arrow by `GovernedAccess.masked_batches` before they become tensors or lists, so raw values of a
masked column never leave the lakehouse code (a MASKED_HASH column comes out as strings). The owner
goes the same way, without masks.

Snapshot. The table's snapshot is pinned at creation (`snapshot=` an older snapshot id / Delta
version instead); `ds.snapshot_id` says which, and every iteration in every worker reads exactly
that snapshot's files, whatever is committed meanwhile. A table without data pins nothing and yields
no rows.

Streaming and workers. Creating the dataset plans the pinned snapshot once: its data files (with
their partition values) become `ds.plan`, plain picklable values. The work units are those files'
Parquet row groups, sorted by file and row-group index so every process sees the same order; unit k
is read by worker k % num_workers, so no row is read twice and none is missed. A worker reads its
units through one Arrow scan (a few row groups in flight, never the whole table) and cuts the
stream into batches of exactly `batch_size` rows (its last one smaller). The dataset pickles as
settings, table id, columns, user, role, snapshot id, batch size and the plan: a worker, forked or
spawned, opens its own `Lakehouse` (for governance and audit) and reads the planned files with
pyarrow's filesystems; it never opens the table format's library, whose runtime (deltalake's tokio)
does not survive a fork.

A worker sends each batch as one buffer of its tensor values plus its string columns as Arrow
(WireBatch), which the main process turns into the plain dict; so torch's default conversion does
not walk every string in the worker, and the strings cross the pipe as one buffer, not one pickled
object each. (Without workers the DataLoader's default conversion does walk each list; pass
`collate_fn=lambda batch: batch`, or iterate the dataset directly, to skip that.)

Types (decided by the Arrow type of the column as the principal sees it, so a column has the same
kind in every batch):
- integers -> int tensors of the same width; booleans -> bool tensors. A null in such a column raises
  ValueError naming the column (there is no integer NaN; casting to float only where a batch has a
  null would change the dtype from batch to batch). Select other columns, or fill it in a model.
- floats -> float tensors, nulls as NaN; decimals -> float64 tensors (nulls NaN).
- dates, timestamps, times, durations -> int64 tensors of the stored value: days since 1970-01-01
  (date32), milliseconds (date64), or the column's unit since the epoch / midnight (timestamps in
  UTC, as stored). Nulls raise like integers.
- strings -> list[str] (None for a null); binary -> list[bytes]; anything else (lists, structs,
  maps) -> a list of Python values.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId
from lakehouse.governance.store import PermissionDenied
from lakehouse.ml.tensors import convert, converters, require_torch

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as pads
    from torch.utils.data import IterableDataset

    from lakehouse.core.settings import LakehouseSettings
    from lakehouse.facade import Lakehouse
    from lakehouse.governance.store import Mask, Principal
    from lakehouse.storage.tables.base import Pinned
else:
    try:
        from torch.utils.data import IterableDataset
    except ImportError:  # the `ml` extra is not installed: the module imports, creating a dataset fails

        class IterableDataset:
            def __class_getitem__(cls, item: Any) -> Any:
                return cls


KIND = "dataset"
"""The audit kind of a dataset's creation (when refused) and of each of its iterations."""


class LakehouseDataset(IterableDataset[dict[str, Any]]):
    """A table as dict batches (numeric columns as tensors, strings as lists), streamed from one
    pinned snapshot, governed and audited like `lakehouse sql --user` (see the module docstring)."""

    def __init__(
        self,
        table: str | TableId,
        columns: Sequence[str] | None = None,
        user: str | None = None,
        role: str | None = None,
        batch_size: int = 1024,
        snapshot: str | int | None = None,
        *,
        lakehouse: Lakehouse | None = None,
    ) -> None:
        from lakehouse.facade import Lakehouse

        require_torch()
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number >= 1, got {batch_size!r}")
        if isinstance(columns, str):
            raise TypeError("columns must be a list of column names, not one string")
        lh = lakehouse if lakehouse is not None else Lakehouse.from_env()
        ident = TableId.parse(table) if isinstance(table, str) else table
        ident = lh.canonical(ident.namespace, ident.name)

        self.settings: LakehouseSettings = lh.settings
        self.table: TableId = ident
        self.user = user
        self.role = role
        self.batch_size = batch_size
        self.columns: list[str] | None = list(columns) if columns is not None else None
        self.snapshot_id: str | None = None if snapshot is None else str(snapshot)

        statement = self.statement()
        principal = lh.access.principal(user, role, KIND, statement)  # refused: audited, raised
        masks = self._authorize(lh, principal, statement)
        pinned = _pin(lh, ident, self.snapshot_id)
        self.snapshot_id = pinned.version
        self.columns = _resolve_columns(ident, pinned.dataset.schema, self.columns)
        self.schema: pa.Schema = lh.access.masked_batches(ident, masks, self.columns, dataset=pinned.dataset)[
            0
        ]
        """The Arrow schema of the batches as this principal sees them (masked types)."""
        self.plan = Plan.of(pinned, lh.tables.location(ident))
        """The pinned snapshot's data files (picklable; workers read these, never the table's log)."""

        self._pid = os.getpid()
        self._lakehouse: Lakehouse | None = lh
        """This process's facade (not pickled: a worker opens its own from `settings`)."""

    # --- state ---------------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_lakehouse"] = None
        return state

    def statement(self, worker: int | None = None, workers: int | None = None) -> str:
        """What the audit records of an attempt: the table, columns, snapshot (and the worker)."""
        columns = ",".join(self.columns) if self.columns is not None else "*"
        text = f"{self.table} columns={columns} snapshot={self.snapshot_id or 'current'} batch_size={self.batch_size}"
        return text if worker is None else f"{text} worker={worker}/{workers}"

    def __repr__(self) -> str:
        who = self.user or "owner"
        if self.role:
            who += f" (role {self.role})"
        return f"LakehouseDataset({self.table}, snapshot={self.snapshot_id}, as {who}, batch_size={self.batch_size})"

    def _authorize(self, lh: Lakehouse, principal: Principal, statement: str) -> dict[str, Mask]:
        """The principal's masks on the table; a refusal is audited (one complete row), then raised.
        The owner reads every table unmasked (a table that does not exist is a QueryError)."""
        from lakehouse.engines.base import QueryError

        if principal.is_owner:
            if not lh.tables.exists(self.table):
                raise QueryError(f"table {self.table} does not exist (see `lakehouse tables`)")
            return {}
        try:
            return lh.governance.authorize(principal, [self.table])[self.table]
        except PermissionDenied:
            with lh.access.attempt(principal, KIND, statement, lazy=True) as record:
                record.tables.append(self.table)
                raise

    # --- reading -------------------------------------------------------------------------------
    def _facade(self) -> Lakehouse:
        """This process's facade: the one given at creation, or (in a worker, forked or spawned)
        one of its own, with its own database connections."""
        from lakehouse.facade import Lakehouse

        if self._lakehouse is None or os.getpid() != self._pid:
            self._lakehouse = Lakehouse(self.settings)
            self._pid = os.getpid()
        return self._lakehouse

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        lh = self._facade()
        statement = self.statement(worker, workers)
        principal = lh.access.principal(self.user, self.role, KIND, statement)
        with lh.access.attempt(principal, KIND, statement, lazy=True) as record:
            record.tables.append(self.table)
            # checked again: a revoked grant or a changed mask applies from the next iteration on
            masks = {} if principal.is_owner else lh.governance.authorize(principal, [self.table])[self.table]
            record.masks = {self.table: masks}
            record.start()  # the row exists before any data is read
            record.rows = rows = 0
            mine = self.plan.dataset(self.settings, worker, workers)
            if mine is None:
                return  # no row group for this worker (or a table without data)
            schema, batches = lh.access.masked_batches(self.table, masks, self.columns, dataset=mine)
            plan = converters(schema)  # this iteration's masks (a policy may have changed since)
            for batch in rebatch(batches, self.batch_size):
                out = convert(batch, plan, wire=info is not None)
                rows += batch.num_rows
                record.rows = rows
                try:
                    yield out
                except GeneratorExit:
                    return  # the consumer stopped early: the attempt completes with the rows it got


# --- snapshots and work units -------------------------------------------------------------------
def _pin(lh: Lakehouse, ident: TableId, snapshot: str | None) -> Pinned:
    """The table at `snapshot` (None: the current one). An unknown snapshot is the table store's
    QueryError."""
    if snapshot is None:
        return lh.tables.pinned(ident)
    return lh.tables.pinned(ident, snapshot=snapshot)


def _resolve_columns(ident: TableId, schema: pa.Schema, columns: list[str] | None) -> list[str]:
    """The stored spelling of each asked column (names are case-insensitive, as in SQL)."""
    from lakehouse.engines.base import QueryError

    if columns is None:
        return list(schema.names)
    stored = {name.lower(): name for name in schema.names}
    missing = [c for c in columns if not isinstance(c, str) or c.lower() not in stored]
    if missing:
        raise QueryError(
            f"{ident} has no column {', '.join(map(repr, missing))} (columns: {', '.join(schema.names)})"
        )
    resolved = [stored[c.lower()] for c in columns]
    if len(set(resolved)) != len(resolved):
        raise ValueError(f"columns names a column twice: {columns}")
    if not resolved:
        raise ValueError("columns is empty: name at least one column (or None for all)")
    return resolved


@dataclass(frozen=True)
class Plan:
    """A pinned snapshot's data files as plain, picklable values: each file's location (a local
    path or s3://bucket/key) and its partition expression (Delta keeps partition values out of the
    files), the schema and the Parquet format. A worker reads them with pyarrow's own filesystems,
    rebuilt from the settings, so it never touches the table format's library (deltalake's runtime
    does not survive a fork) and never re-reads the table's metadata."""

    files: tuple[tuple[str, Any], ...]
    schema: pa.Schema
    format: Any

    @classmethod
    def of(cls, pinned: Pinned, location: str) -> Plan:
        import pyarrow.dataset as pads
        import pyarrow.fs as pafs

        dataset = pinned.dataset
        if pinned.version is None or not isinstance(dataset, pads.FileSystemDataset):
            return cls((), dataset.schema, None)  # no data yet (an empty in-memory dataset)
        fs = dataset.filesystem
        files = []
        for fragment in dataset.get_fragments():
            path = fragment.path
            if "://" in path or isinstance(fs, pafs.LocalFileSystem):
                uri = path
            elif isinstance(fs, pafs.S3FileSystem):
                uri = f"s3://{path}"
            else:  # a format's own filesystem (deltalake's): paths relative to the table's location
                uri = f"{location.rstrip('/')}/{path}"
            files.append((uri, fragment.partition_expression))
        files.sort(key=lambda f: f[0])
        return cls(tuple(files), dataset.schema, dataset.format)

    def units(self, settings: LakehouseSettings) -> list[Any]:
        """The row groups as one-row-group fragments, in the same order in every process (by file
        location, then row-group index). Reads each file's footer."""
        from lakehouse.storage.tables.base import arrow_paths

        if not self.files:
            return []
        filesystem, paths = arrow_paths([uri for uri, _ in self.files], settings)
        units = []
        for path, (_, partition) in zip(paths, self.files, strict=True):
            fragment = self.format.make_fragment(path, filesystem, partition_expression=partition)
            units.extend(fragment.split_by_row_group())
        return units

    def dataset(self, settings: LakehouseSettings, worker: int, workers: int) -> pads.Dataset | None:
        """One dataset over the row groups of one worker (unit k goes to worker k % workers)."""
        import pyarrow.dataset as pads

        mine = self.units(settings)[worker::workers]
        if not mine:
            return None
        return pads.FileSystemDataset(mine, self.schema, self.format, mine[0].filesystem)


def rebatch(batches: Iterator[pa.RecordBatch], size: int) -> Iterator[pa.Table]:
    """The stream cut into tables of exactly `size` rows (the last one smaller, none empty)."""
    import pyarrow as pa

    pending: list[pa.RecordBatch] = []
    rows = 0
    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        rows += batch.num_rows
        if rows < size:
            continue
        buffer = pa.Table.from_batches(pending)
        offset = 0
        while rows - offset >= size:
            yield buffer.slice(offset, size)
            offset += size
        rest = buffer.slice(offset)
        pending = rest.to_batches() if rest.num_rows else []
        rows -= offset
    if rows:
        yield pa.Table.from_batches(pending)
