"""Run one DataScan tick now, outside the daemon (for `lakehouse scan`, cron jobs and the demo).

It evaluates the real sensor against a real Dagster instance, records its dynamic partitions, and
executes the runs it requests in this process, so the runs show in the Dagster UI like any other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from resources.settings import LakehouseSettings


@dataclass
class OneShotResult:
    requested: int
    succeeded: int
    skip_reason: str | None


def dagster_instance(settings: LakehouseSettings) -> dg.DagsterInstance:
    """$DAGSTER_HOME when set, else $LAKEHOUSE_HOME/dagster_home (created, no dagster.yaml needed)."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        home = str(Path(settings.home) / "dagster_home")
        os.environ["DAGSTER_HOME"] = home
    Path(home).mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.get()


def run_datascan_once(
    defs: dg.Definitions, instance: dg.DagsterInstance, execute: bool = True, log_level: str = "WARNING"
) -> OneShotResult:
    sensor = defs.resolve_sensor_def("datascan")
    with dg.build_sensor_context(
        instance=instance, definitions=defs, resources=dict(defs.resources or {})
    ) as context:
        result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    for partitions_request in result.dynamic_partitions_requests or []:
        if isinstance(partitions_request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(
                partitions_request.partitions_def_name, list(partitions_request.partition_keys)
            )
    runs = list(result.run_requests or [])
    succeeded = 0
    if execute:
        for request in runs:
            assert request.job_name, "DataScan names the job of every run it requests"
            job = defs.resolve_job_def(request.job_name)
            outcome = job.execute_in_process(
                instance=instance,
                partition_key=request.partition_key,
                asset_selection=list(request.asset_selection) if request.asset_selection else None,
                run_config={
                    **request.run_config,
                    "loggers": {"console": {"config": {"log_level": log_level}}},
                },
                tags=request.tags,
                raise_on_error=False,
            )
            succeeded += int(outcome.success)
    skip = result.skip_reason.skip_message if result.skip_reason else None
    return OneShotResult(requested=len(runs), succeeded=succeeded, skip_reason=skip)
