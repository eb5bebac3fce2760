"""Runs the lakehouse's sensors launch: their tags, and which partitions have one in flight."""

from __future__ import annotations

import dagster as dg

from lakehouse.core.partitioning import expand_range

DATASCAN_TAG = "lakehouse/datascan"
WRITER_TAG = "lakehouse/writer"
"""On every run a lakehouse sensor launches: DataScan loads and propagate rebuilds."""
NAMESPACE_TAG = "lakehouse/namespace"
PARTITION_TAG = "lakehouse/partition"


def partitions_in_progress(instance: dg.DagsterInstance) -> set[tuple[str, str]]:
    """(namespace, partition key) of every sensor-launched load or rebuild that is queued or running."""
    status = dg.DagsterRunStatus
    pending = [status.NOT_STARTED, status.QUEUED, status.STARTING, status.STARTED, status.CANCELING]
    runs = instance.get_runs(filters=dg.RunsFilter(tags={WRITER_TAG: "true"}, statuses=pending))
    busy: set[tuple[str, str]] = set()
    for run in runs:
        namespace, key = run.tags.get(NAMESPACE_TAG, ""), run.tags.get(PARTITION_TAG, "")
        busy |= {(namespace, day) for day in expand_range(key)}  # a range of days, or one key
    return busy
