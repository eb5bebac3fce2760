"""The DataScan sensor: every LAKEHOUSE_SCAN_INTERVAL_SECONDS, find what landed and load it through.

It adds new hourly partitions, then asks for one run per changed (namespace, partition): that run
loads the changed ODS tables and rebuilds every model downstream of them for the same partition.
Run keys are derived from the pending files' fingerprints, so a tick never launches the same work
twice, and all state lives in the catalog database, so a daemon restart neither misses nor repeats.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg

from lakehouse.core.ids import TableId
from lakehouse.core.partitioning import Partitioning
from lakehouse.landing.scan import scan
from lakehouse_assets.jobs import job_name
from resources.lakehouse import LakehouseResource
from sensors.runs import DATASCAN_TAG, NAMESPACE_TAG, PARTITION_TAG, WRITER_TAG, partitions_in_progress


def build_datascan_sensor(
    *,
    interval_seconds: int,
    known_tables: Mapping[TableId, dg.AssetKey],
    declared: frozenset[TableId] = frozenset(),
    downstream: Mapping[TableId, Sequence[dg.AssetKey]],
    partitions_defs: Mapping[str, dg.DynamicPartitionsDefinition],
    jobs: Sequence[Any],
    ingest_job: dg.JobDefinition,
) -> dg.SensorDefinition:
    @dg.sensor(
        name="datascan",
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        jobs=[*jobs, ingest_job],
        description="Discovers new tables, hourly partitions, late and replaced files in the landing zone "
        "and loads them through ODS, DWD and ADS.",
    )
    def datascan(context: dg.SensorEvaluationContext, lakehouse: LakehouseResource) -> dg.SensorResult:
        result = scan(lakehouse.open(), declared)
        for _table, reason in result.new_conflicts:
            context.log.warning(f"DataScan conflict: {reason}")
        for misplaced in result.misplaced:
            context.log.warning(f"DataScan rejected {misplaced.path}: {misplaced.reason}")

        partition_requests = []
        for namespace, keys in sorted(result.partitions.items()):
            if namespace not in partitions_defs:
                continue  # a namespace found after load: its tables go through the ingest job
            name = partitions_defs[namespace].name
            assert name is not None
            missing = sorted(set(keys) - set(context.instance.get_dynamic_partitions(name)))
            if missing:
                partition_requests.append(dg.AddDynamicPartitionsRequest(name, missing))

        busy = partitions_in_progress(context.instance)
        runs = []
        waiting = 0
        for (namespace, key), changes in result.changes_by_partition().items():
            if (namespace, key) in busy:
                # One writer per partition: its files stay pending until the running load is done,
                # so two loads of one partition never race (the next tick picks them up).
                waiting += 1
                continue
            tags = {DATASCAN_TAG: "true", WRITER_TAG: "true", NAMESPACE_TAG: namespace, PARTITION_TAG: key}
            run_key = result.run_key(namespace, key)
            selected: list[dg.AssetKey] = []
            for change in changes:
                if change.table in known_tables:
                    selected.append(known_tables[change.table])
                    selected.extend(downstream.get(change.table, ()))
                else:
                    runs.append(
                        dg.RunRequest(
                            run_key=f"{run_key}:{change.table.name}",
                            job_name=ingest_job.name,
                            tags=tags,
                            run_config={
                                "ops": {
                                    "ingest_new_table_partition": {
                                        "config": {
                                            "namespace": namespace,
                                            "table": change.table.name,
                                            "partition_key": key,
                                        }
                                    }
                                }
                            },
                        )
                    )
            if selected:
                runs.append(
                    dg.RunRequest(
                        run_key=run_key,
                        job_name=job_name(namespace, Partitioning.HOURLY),
                        partition_key=key,
                        asset_selection=list(dict.fromkeys(selected)),
                        tags=tags,
                    )
                )
        context.log.info(
            f"DataScan: {result.files_listed} objects listed, {result.junk_ignored} junk ignored, "
            f"{len(result.changes)} changed table partition(s), {len(runs)} run(s), "
            f"{waiting} partition(s) waiting for a running load, in {result.seconds:.3f}s"
        )
        if not runs and not partition_requests:
            reason = f"{waiting} changed partition(s) wait for running loads" if waiting else "nothing new"
            return dg.SensorResult(skip_reason=f"{reason} ({result.files_listed} objects listed)")
        return dg.SensorResult(run_requests=runs, dynamic_partitions_requests=partition_requests)

    return datascan
