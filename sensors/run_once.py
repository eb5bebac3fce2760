"""Run the DataScan sensor now, outside the daemon (for `lakehouse scan`, cron jobs and the demo).

It evaluates the real sensor against a real Dagster instance, records dynamic partitions, and
executes the reconcile runs it requests in this process, so the runs show in the Dagster UI like
any other. `catch_up` repeats that until nothing is stale: the state the daemon reaches on its own.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from lakehouse.core.settings import LakehouseSettings
from lakehouse.storage.leases import live_workers
from sensors.dynamic_partitions import add_dynamic_partitions


@dataclass
class OneShotResult:
    requested: int
    succeeded: int
    skip_reason: str | None
    built: dict[str, int] = field(default_factory=dict)
    """asset (namespace.table) -> partitions materialized by the runs executed here"""


def dagster_instance(settings: LakehouseSettings) -> dg.DagsterInstance:
    """$DAGSTER_HOME when set, else $LAKEHOUSE_HOME/dagster_home (created, no dagster.yaml needed)."""
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        home = str(Path(settings.home) / "dagster_home")
        os.environ["DAGSTER_HOME"] = home
    Path(home).mkdir(parents=True, exist_ok=True)
    return dg.DagsterInstance.get()


def _execute(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    job_name: str,
    *,
    partition_key: str | None = None,
    asset_selection: list[dg.AssetKey] | None = None,
    run_config: dict[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    log_level: str = "WARNING",
    built: dict[str, int] | None = None,
) -> bool:
    job = defs.resolve_job_def(job_name)
    outcome = job.execute_in_process(
        instance=instance,
        partition_key=partition_key,
        asset_selection=asset_selection,
        run_config={**(run_config or {}), "loggers": {"console": {"config": {"log_level": log_level}}}},
        tags=dict(tags or {}),
        raise_on_error=False,
    )
    if built is not None:
        for event in outcome.get_asset_materialization_events():
            key = event.asset_key
            assert key is not None
            name = ".".join(key.path)
            built[name] = built.get(name, 0) + 1
    return bool(outcome.success)


def run_sensor_once(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    name: str = "datascan",
    execute: bool = True,
    log_level: str = "WARNING",
) -> OneShotResult:
    """One tick of a lakehouse sensor; its runs are executed here, one after the other."""
    sensor = defs.resolve_sensor_def(name)
    with dg.build_sensor_context(
        instance=instance, definitions=defs, resources=dict(defs.resources or {})
    ) as context:
        result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    for partitions_request in result.dynamic_partitions_requests or []:
        if isinstance(partitions_request, dg.AddDynamicPartitionsRequest):
            add_dynamic_partitions(
                instance, partitions_request.partitions_def_name, partitions_request.partition_keys
            )
    runs = list(result.run_requests or [])
    succeeded = 0
    built: dict[str, int] = {}
    if execute:
        for request in runs:
            assert request.job_name, "the lakehouse's sensors name the job of every run they request"
            succeeded += _execute(
                defs,
                instance,
                request.job_name,
                partition_key=request.partition_key,
                asset_selection=list(request.asset_selection) if request.asset_selection else None,
                run_config=dict(request.run_config),
                tags=request.tags,
                log_level=log_level,
                built=built,
            )
    skip = result.skip_reason.skip_message if result.skip_reason else None
    return OneShotResult(requested=len(runs), succeeded=succeeded, skip_reason=skip, built=built)


def run_datascan_once(
    defs: dg.Definitions, instance: dg.DagsterInstance, execute: bool = True, log_level: str = "WARNING"
) -> OneShotResult:
    return run_sensor_once(defs, instance, "datascan", execute, log_level)


@dataclass
class CatchUpResult:
    rounds: int
    requested: int
    succeeded: int
    first_skip_reason: str | None = None
    built: dict[str, int] = field(default_factory=dict)
    """asset (namespace.table) -> partitions materialized, over every round"""
    waited_seconds: float = 0.0
    """Time spent waiting for reconcile runs of other processes (the daemon, another scan)."""
    errors: list[str] = field(default_factory=list)
    """DataScan tasks whose location could not be listed (their connection failed), one line each."""

    @property
    def failed(self) -> int:
        return self.requested - self.succeeded


def datascan_sensors(defs: dg.Definitions) -> list[str]:
    """The DataScan sensors of a code location: `datascan` (the default task) and `datascan_<TASK>`."""
    names = [s.name for s in defs.sensors or []]
    return [n for n in names if n == "datascan"] + sorted(n for n in names if n.startswith("datascan_"))


def catch_up(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    log_level: str = "WARNING",
    max_rounds: int = 20,
    wait_seconds: float = 3600.0,
    sensors: list[str] | None = None,
) -> CatchUpResult:
    """DataScan (every task's sensor, or those named) and the reconcile runs it asks for, until
    nothing is stale.

    A namespace another process is reconciling (the daemon, another `lakehouse scan`) is waited for,
    then planned again, so what is stale when this returns was landed after it started."""
    from lakehouse.facade import Lakehouse
    from sensors.datascan import TaskFailed, reconcile_runs_in_flight

    resource = (defs.resources or {}).get("lakehouse")
    lh = resource.open() if resource is not None else Lakehouse(LakehouseSettings.from_env())
    total = CatchUpResult(0, 0, 0)
    deadline = time.monotonic() + wait_seconds
    names = sensors or datascan_sensors(defs)
    while total.rounds < max_rounds:
        total.rounds += 1
        requested = 0
        for sensor in names:
            try:
                result = run_sensor_once(defs, instance, sensor, log_level=log_level)
            except TaskFailed as exc:  # one task's connection failing does not stop the others
                if str(exc) not in total.errors:
                    total.errors.append(str(exc))
                continue
            if total.rounds == 1 and total.first_skip_reason is None:
                total.first_skip_reason = result.skip_reason
            requested += result.requested
            total.requested += result.requested
            total.succeeded += result.succeeded
            for name, n in result.built.items():
                total.built[name] = total.built.get(name, 0) + n
        if requested:
            continue
        if not reconcile_runs_in_flight(instance, lh) and not live_workers(lh.catalog):
            break
        if time.monotonic() > deadline:
            break
        started = time.monotonic()
        time.sleep(1.0)  # another process is reconciling: wait, then plan again
        total.waited_seconds += time.monotonic() - started
        total.rounds -= 1  # waiting is no round
    return total
