"""The four steps of table maintenance, each on one table, each recording what it did.

1. compact: partitions with too many (small) data files are rewritten into as few as the target
   size allows, committed only if the partition did not change meanwhile (a concurrent build wins);
2. expire: snapshots beyond the retention go, but never the current one, the last N that changed
   data, nor a pinned one (lakehouse_snapshot_pins: a trained model read it);
3. vacuum (Delta): `DeltaTable.vacuum` deletes the files only expired versions needed;
4. orphans: files in the table's folder that nothing kept references, older than the safety age.

A dry run computes every step from the table as it is and changes nothing. The steps keep what they
decide consistent with the dry run: maintenance's own snapshots ride along with the data snapshots
(they never push one out of the last N), and a step never deletes what an earlier step still needs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from lakehouse.core.ids import TableId
from lakehouse.maintenance.plan import partitions_to_compact, versions_to_keep
from lakehouse.maintenance.report import MaintenanceRun, PartitionCompaction, TableReport
from lakehouse.storage.tables.upkeep import TableUpkeep, Version

if TYPE_CHECKING:
    from lakehouse.facade import Lakehouse


def _keep(
    lh: Lakehouse, up: TableUpkeep, table: TableId, run: MaintenanceRun
) -> tuple[list[Version], set[str]]:
    versions = up.versions(table)
    pinned = lh.catalog.pinned_snapshots(table.namespace, table.name)
    return versions, versions_to_keep(versions, pinned, run.options, run.started)


def compact(lh: Lakehouse, up: TableUpkeep, table: TableId, run: MaintenanceRun, report: TableReport) -> None:
    files = up.live_files(table)
    report.files_before = len(files)
    plans = partitions_to_compact(files, run.options, up.rows_per_file)
    after = len(files)
    for plan in plans:
        if run.dry_run:
            report.compactions.append(PartitionCompaction(plan.key, plan.files, plan.files_after, plan.rows))
            report.partitions_compacted += 1
            after += plan.files_after - plan.files
            continue
        started = time.perf_counter()
        done = up.compact(table, dict(plan.partition), run.options.target_file_bytes)
        seconds = time.perf_counter() - started
        report.compaction_seconds += seconds
        report.compactions.append(
            PartitionCompaction(
                plan.key, done.files_before, done.files_after, done.rows, seconds, done.skipped
            )
        )
        if done.skipped is None:
            report.partitions_compacted += 1
    report.files_after = after if run.dry_run else len(up.live_files(table))


def expire(lh: Lakehouse, up: TableUpkeep, table: TableId, run: MaintenanceRun, report: TableReport) -> None:
    versions, keep = _keep(lh, up, table, run)
    ids = {v.snapshot_id for v in versions}
    pinned = lh.catalog.pinned_snapshots(table.namespace, table.name) & ids
    candidates = [v.snapshot_id for v in versions if v.snapshot_id not in keep]
    expired, skipped = up.expire(table, candidates, keep, run.dry_run, run.options.vacuum_hours)
    report.snapshots_before = len(versions)
    report.snapshots_kept = len(keep & ids)
    report.pinned_kept = len(pinned)
    report.snapshots_expired = len(expired)
    if skipped:
        report.notes.append(skipped)


def vacuum(lh: Lakehouse, up: TableUpkeep, table: TableId, run: MaintenanceRun, report: TableReport) -> None:
    _, keep = _keep(lh, up, table, run)
    removed = up.vacuum(table, keep, run.options.vacuum_hours, run.dry_run)
    if removed is None:
        return  # not a Delta table
    report.vacuum_files = len(removed)
    report.vacuum_bytes = sum(f.size for f in removed)


def orphans(lh: Lakehouse, up: TableUpkeep, table: TableId, run: MaintenanceRun, report: TableReport) -> None:
    versions, keep = _keep(lh, up, table, run)
    ids = {v.snapshot_id for v in versions}
    listed = up.vacuum(table, keep, run.options.vacuum_hours, dry_run=True)
    if listed is None:
        # Iceberg: what expiry left is what stays (in a dry run, what it would leave).
        needed = ids - ({i for i in ids if i not in keep} if run.dry_run else set())
        vacuumed: set[str] = set()
    else:
        needed = keep  # Delta: versions not kept are released; the files vacuum takes are vacuum's
        vacuumed = {f.path for f in listed}
    referenced = up.referenced(table, needed)
    cutoff = run.started - run.options.orphan_age
    found = [
        f
        for f in up.candidates(table)
        if f.path not in referenced and f.path not in vacuumed and f.modified <= cutoff
    ]
    report.orphan_files = len(found)
    report.orphan_bytes = sum(f.size for f in found)
    if found and not run.dry_run:
        report.orphan_bytes = up.delete(found)


STEPS = {"compact": compact, "expire": expire, "vacuum": vacuum, "orphans": orphans}
"""In the order a run takes them."""
