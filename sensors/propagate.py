"""The `propagate` sensor: rebuild the partitions that late or changed data left stale.

Writers mark stale partitions in the catalog database (see lakehouse/models/staleness.py): the days
an hour of events touched, the hours a changed dimension touches, a dimension whose source changed.
Every tick turns the marks into runs, one per (namespace, partition key), with a run key made of the
marks' versions: a mark is requested once per version, and a rebuild that started before a newer
change leaves the newer mark for the next tick. Partitions with a load or rebuild in progress wait.
"""

import datetime
import hashlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import dagster as dg

from lakehouse.core.ids import TableId
from lakehouse.core.partitioning import RANGE_SEPARATOR, Partitioning, next_day
from lakehouse_assets.jobs import job_name
from resources.lakehouse import LakehouseResource
from sensors.runs import NAMESPACE_TAG, PARTITION_TAG, WRITER_TAG, partitions_in_progress

PROPAGATE_TAG = "lakehouse/propagate"
MARKS_TAG = "lakehouse/marks"
MAX_ATTEMPTS = 3
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def build_propagate_sensor(
    *,
    interval_seconds: int,
    partitioning: Callable[[TableId], Partitioning],
    rebuilds: Callable[[TableId], Sequence[dg.AssetKey]],
    hourly_defs: Mapping[str, dg.DynamicPartitionsDefinition],
    daily_start: str,
    jobs: Sequence[Any],
) -> dg.SensorDefinition:
    """`partitioning(table)` is the table's Partitioning; `rebuilds(table)` the assets one stale partition needs."""

    @dg.sensor(
        name="propagate",
        minimum_interval_seconds=min(interval_seconds, 30),
        default_status=dg.DefaultSensorStatus.RUNNING,
        jobs=list(jobs),
        description="Rebuilds partitions that late or changed data left stale: the days an hour of events "
        "touched, the hours a changed dimension touches.",
    )
    def propagate(context: dg.SensorEvaluationContext, lakehouse: LakehouseResource) -> dg.SensorResult:
        lh = lakehouse.open()
        entries = lh.catalog.stale_entries()
        busy = partitions_in_progress(context.instance)
        last_day = (datetime.date.today() + datetime.timedelta(days=1)).isoformat()
        groups: dict[tuple[str, Partitioning, str], list[Any]] = {}
        waiting = out_of_range = 0
        for entry in entries:
            table = TableId(entry.namespace, entry.table_name)
            kind = partitioning(table)
            if kind is Partitioning.DAILY and not (daily_start <= entry.partition_key <= last_day):
                out_of_range += 1
                context.log.warning(
                    f"{table}: day {entry.partition_key} is outside the daily partitions "
                    f"({daily_start}..{last_day}); set LAKEHOUSE_DAILY_START_DATE to include it"
                )
                continue
            key = entry.partition_key or "__all__"
            if (entry.namespace, key) in busy:
                waiting += 1
                continue
            groups.setdefault((entry.namespace, kind, entry.partition_key), []).append(entry)
        # Consecutive stale days needing the same assets run as one range (one process, one run).
        batches: list[tuple[str, Partitioning, str, str, list[Any]]] = []
        for (namespace, kind, key), group in sorted(groups.items()):
            tables = sorted(e.table_name for e in group)
            last = batches[-1] if batches else None
            if (
                kind is Partitioning.DAILY
                and last is not None
                and last[:2] == (namespace, kind)
                and sorted({e.table_name for e in last[4]}) == tables
                and next_day(last[3]) == key
            ):
                batches[-1] = (namespace, kind, last[2], key, [*last[4], *group])
            else:
                batches.append((namespace, kind, key, key, list(group)))
        runs = []
        for namespace, kind, first, last_key, group in batches:
            selection: list[dg.AssetKey] = []
            for entry in group:
                selection.extend(rebuilds(TableId(entry.namespace, entry.table_name)))
            marks = ",".join(
                f"{e.table_name}[{e.partition_key}]@{e.version}"
                for e in sorted(group, key=lambda e: (e.table_name, e.partition_key))
            )
            marks_hash = hashlib.sha256(f"{namespace}|{marks}".encode()).hexdigest()[:32]
            failed = context.instance.get_runs_count(
                dg.RunsFilter(tags={MARKS_TAG: marks_hash}, statuses=[dg.DagsterRunStatus.FAILURE])
            )
            if failed >= MAX_ATTEMPTS:
                context.log.warning(
                    f"{namespace} {first}..{last_key}: {failed} rebuild runs failed; not retrying until "
                    "the inputs change again (see the failed runs in the UI)"
                )
                continue
            run_key = f"{marks_hash}:{failed}"  # a failed rebuild is retried (up to MAX_ATTEMPTS runs)
            tags = {
                WRITER_TAG: "true",
                PROPAGATE_TAG: "true",
                NAMESPACE_TAG: namespace,
                MARKS_TAG: marks_hash,
            }
            partition_key: str | None = first or None
            if first != last_key:  # a range of days: the assets' single-run backfill policy takes it whole
                partition_key = None
                tags |= {
                    RANGE_START_TAG: first,
                    RANGE_END_TAG: last_key,
                    PARTITION_TAG: f"{first}{RANGE_SEPARATOR}{last_key}",
                }
            else:
                tags[PARTITION_TAG] = first or "__all__"
            if kind is Partitioning.HOURLY:
                name = hourly_defs[namespace].name
                assert name is not None
                if not context.instance.has_dynamic_partition(name, first):
                    context.instance.add_dynamic_partitions(name, [first])
            runs.append(
                dg.RunRequest(
                    run_key=run_key,
                    job_name=job_name(namespace, kind),
                    partition_key=partition_key,
                    asset_selection=list(dict.fromkeys(selection)),
                    tags=tags,
                )
            )
        if not runs:
            return dg.SensorResult(
                skip_reason=f"{len(entries)} stale mark(s): {waiting} wait for running work, "
                f"{out_of_range} outside the daily partitions"
            )
        context.log.info(f"propagate: {len(runs)} rebuild run(s) for {len(entries)} stale mark(s)")
        return dg.SensorResult(run_requests=runs)

    return propagate
