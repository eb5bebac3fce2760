"""Run the lakehouse's sensors now, outside the daemon (for `lakehouse scan`, cron jobs and the demo).

It evaluates the real sensors (DataScan, propagate) and the real automation conditions against a
real Dagster instance, records dynamic partitions, and executes the runs they request in this
process, so the runs show in the Dagster UI like any other. `catch_up` repeats that until nothing is
left to do: the state the daemon reaches on its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from lakehouse.core.partitioning import Partitioning
from lakehouse.core.settings import LakehouseSettings
from lakehouse_assets.automation import AUTOMATION_SENSOR
from lakehouse_assets.jobs import job_name

AUTOMATION_CURSOR_KEY = "lakehouse/automation_cursor"


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
            instance.add_dynamic_partitions(
                partitions_request.partitions_def_name, list(partitions_request.partition_keys)
            )
    runs = list(result.run_requests or [])
    succeeded = 0
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
            )
    skip = result.skip_reason.skip_message if result.skip_reason else None
    return OneShotResult(requested=len(runs), succeeded=succeeded, skip_reason=skip)


def run_datascan_once(
    defs: dg.Definitions, instance: dg.DagsterInstance, execute: bool = True, log_level: str = "WARNING"
) -> OneShotResult:
    return run_sensor_once(defs, instance, "datascan", execute, log_level)


def run_automation_once(
    defs: dg.Definitions, instance: dg.DagsterInstance, log_level: str = "WARNING"
) -> OneShotResult:
    """Evaluate the automation conditions (with the cursor kept in the instance) and run what they ask:
    per namespace one run over the span of the requested days (the assets' backfill policy is
    single-run). The daemon's automation sensor groups its runs its own way; the result is the same."""
    stored = instance.run_storage.get_cursor_values({AUTOMATION_CURSOR_KEY}).get(AUTOMATION_CURSOR_KEY)
    cursor = dg.deserialize_value(stored) if stored else None
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)  # type: ignore[arg-type]
    instance.run_storage.set_cursor_values({AUTOMATION_CURSOR_KEY: dg.serialize_value(result.cursor)})
    requested = succeeded = 0
    by_namespace: dict[str, dict[dg.AssetKey, list[str]]] = {}
    for key in sorted({r.key for r in result.results if r.true_subset.size}, key=str):
        assert isinstance(key, dg.AssetKey)
        partitions = [p for p in result.get_requested_partitions(key) if p]
        if partitions:
            by_namespace.setdefault(key.path[0], {})[key] = partitions
    for namespace, requests in sorted(by_namespace.items()):
        # One run for the namespace: every requested asset over the span of the requested days
        # (days in between are rebuilt too; idempotent, and cheaper than a run per gap).
        days = sorted({p for partitions in requests.values() for p in partitions})
        requested += 1
        succeeded += _execute(
            defs,
            instance,
            job_name(namespace, Partitioning.DAILY),
            asset_selection=sorted(requests, key=str),
            tags={
                "dagster/asset_partition_range_start": days[0],
                "dagster/asset_partition_range_end": days[-1],
                "lakehouse/automation": "true",
            },
            log_level=log_level,
        )
    return OneShotResult(requested=requested, succeeded=succeeded, skip_reason=None)


@dataclass
class CatchUpResult:
    rounds: int
    requested: int
    succeeded: int
    by_source: dict[str, list[int]] = field(default_factory=dict)
    """datascan / propagate / automation -> [requested, succeeded]"""
    first_skip_reason: str | None = None

    @property
    def failed(self) -> int:
        return self.requested - self.succeeded


def catch_up(
    defs: dg.Definitions, instance: dg.DagsterInstance, log_level: str = "WARNING", max_rounds: int = 20
) -> CatchUpResult:
    """DataScan, propagate and automation, again and again until no run is requested."""
    names = {s.name for s in defs.sensors or []}
    total = CatchUpResult(0, 0, 0)
    for _ in range(max_rounds):
        total.rounds += 1
        results = {"datascan": run_sensor_once(defs, instance, "datascan", log_level=log_level)}
        if total.rounds == 1:
            total.first_skip_reason = results["datascan"].skip_reason
        if "propagate" in names:
            results["propagate"] = run_sensor_once(defs, instance, "propagate", log_level=log_level)
        if AUTOMATION_SENSOR in names:
            results["automation"] = run_automation_once(defs, instance, log_level=log_level)
        for source, result in results.items():
            counts = total.by_source.setdefault(source, [0, 0])
            counts[0] += result.requested
            counts[1] += result.succeeded
        requested = sum(r.requested for r in results.values())
        total.requested += requested
        total.succeeded += sum(r.succeeded for r in results.values())
        if not requested:
            break
    return total
