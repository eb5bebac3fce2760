"""What maintenance would do to a table, decided from what the table is now (pure functions)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable
from dataclasses import dataclass

from lakehouse.maintenance.options import MaintenanceOptions
from lakehouse.storage.tables.upkeep import DataFile, Version


@dataclass(frozen=True)
class PartitionPlan:
    """A partition to compact: its files now and the files it should end up with."""

    partition: tuple[tuple[str, str], ...]
    files: int
    small_files: int
    bytes: int
    rows: int | None
    files_after: int
    """What the rewrite should leave: as few files as the target size allows."""

    @property
    def key(self) -> str:
        return partition_label(self.partition)


def partition_label(partition: Iterable[tuple[str, str | None]]) -> str:
    """dt=2025-09-17/hh=23 (the landing layout's spelling); `(table)` for an unpartitioned table."""
    return "/".join(f"{c}={v}" for c, v in partition) or "(table)"


def partitions_to_compact(
    files: list[DataFile], options: MaintenanceOptions, rows_per_file: int | None = None
) -> list[PartitionPlan]:
    """Partitions holding more than `max_files` files, or more than `max_small_files` small ones,
    that a rewrite would leave in fewer files; in partition order. Partitions with a NULL partition
    value are left alone (no equality filter names them)."""
    by_partition: dict[tuple[tuple[str, str | None], ...], list[DataFile]] = {}
    for f in files:
        by_partition.setdefault(f.partition, []).append(f)
    plans = []
    for partition, group in sorted(by_partition.items(), key=lambda item: partition_label(item[0])):
        if any(value is None for _, value in partition):
            continue
        small = sum(1 for f in group if f.size < options.small_file_bytes)
        if len(group) <= options.max_files and small <= options.max_small_files:
            continue
        size = sum(f.size for f in group)
        counts = [f.rows for f in group]
        rows = None if any(r is None for r in counts) else sum(r for r in counts if r is not None)
        after = max(1, math.ceil(size / options.target_file_bytes))
        if rows_per_file and rows:
            after = max(after, math.ceil(rows / rows_per_file))
        if after >= len(group):
            continue  # already as few files as the target size allows
        clean = tuple((c, str(v)) for c, v in partition)
        plans.append(PartitionPlan(clean, len(group), small, size, rows, after))
    return plans


def versions_to_keep(
    versions: list[Version], pinned: set[str], options: MaintenanceOptions, now: dt.datetime
) -> set[str]:
    """The snapshots that stay: the current one, the last `keep_last` that changed data, the
    maintenance snapshots newer than the oldest of those (a compaction must not push a data
    snapshot out), every one younger than `retention`, and every pinned one.

    Applied to what it keeps it keeps everything: a second run expires nothing."""
    keep = {v.snapshot_id for v in versions if v.current}
    data = [i for i, v in enumerate(versions) if not v.maintenance]
    last = data[-options.keep_last :]
    keep |= {versions[i].snapshot_id for i in last}
    since = last[0] if last else 0
    keep |= {v.snapshot_id for v in versions[since:] if v.maintenance}
    cutoff = now - options.retention
    keep |= {v.snapshot_id for v in versions if v.committed_at >= cutoff}
    keep |= {v.snapshot_id for v in versions if v.snapshot_id in pinned}
    return keep


def versions_to_expire(
    versions: list[Version], pinned: set[str], options: MaintenanceOptions, now: dt.datetime
) -> list[str]:
    keep = versions_to_keep(versions, pinned, options, now)
    return [v.snapshot_id for v in versions if v.snapshot_id not in keep]
