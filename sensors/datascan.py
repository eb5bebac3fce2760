"""The DataScan sensors: one per DataScan task (lakehouse/landing/tasks.py), each on its own cycle,
finding what landed and what is stale. `datascan` is the default task (LAKEHOUSE_LANDING_URI every
LAKEHOUSE_SCAN_INTERVAL_SECONDS); `datascan_<TASK>` the named ones.

One rule for all: a namespace with anything stale (an ODS partition whose files changed, a model
partition whose inputs moved on; see lakehouse/models/reconcile.py) and no live reconcile run gets
one reconcile run, which builds all of it. Nothing is remembered between ticks: what to build is
derived from the build records each time, so a daemon restart, a crashed run or a `lakehouse scan`
at the same time neither misses nor repeats work. A run whose process died (SIGKILL, OOM, a machine
restart) is noticed here, reported failed, and its namespace reconciled again.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Mapping

import dagster as dg

from lakehouse.core.ids import TableId
from lakehouse.facade import Lakehouse
from lakehouse.landing.scan import scan
from lakehouse.landing.tasks import ScanTask, TaskError, all_tasks, find_task
from lakehouse.models.graph import ModelGraph
from lakehouse.models.reconcile import Reconciler
from lakehouse.storage.leases import alive as alive_worker
from lakehouse.storage.leases import forget_dead_workers, live_workers, workers
from resources.lakehouse import LakehouseResource
from sensors.reconcile import NAMESPACE_TAG, RECONCILE_TAG, reconcile_request


class TaskFailed(RuntimeError):
    """A task's location could not be listed (its connection failed): the tick fails, naming it."""


TASK_RUNS = " task runs"
"""Cursor key (no namespace has a space): when the default sensor last ran each task it runs."""
STARTING_GRACE_SECONDS = 120.0
"""A run younger than this may still be starting (its worker not registered yet)."""
PENDING = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def reconcile_runs_in_flight(instance: dg.DagsterInstance, lh: Lakehouse) -> dict[str, list[str]]:
    """namespace -> reconcile runs queued or running whose process is alive. Runs whose process
    died are reported failed on the way (the Dagster instance needs no run monitoring for it)."""
    known = workers(lh.catalog)
    live = {w.run_id for w in known if w.run_id and alive_worker(w)}
    seen = {w.run_id for w in known if w.run_id}
    now = dt.datetime.now(dt.UTC).timestamp()
    alive: dict[str, list[str]] = {}
    for record in instance.get_run_records(
        filters=dg.RunsFilter(tags={RECONCILE_TAG: "true"}, statuses=PENDING)
    ):
        run = record.dagster_run
        namespace = run.tags.get(NAMESPACE_TAG, "")
        starting = (
            run.run_id not in seen and now - record.create_timestamp.timestamp() < STARTING_GRACE_SECONDS
        )
        if run.run_id in live or starting:
            alive.setdefault(namespace, []).append(run.run_id)
        else:
            instance.report_run_failed(
                run,
                message="the run's process died (its worker in lakehouse_workers is gone or stopped "
                f"heartbeating); namespace {namespace} is reconciled again by the next DataScan tick",
            )
    forget_dead_workers(lh.catalog, [w for w in known if not alive_worker(w)])
    return alive


def build_datascan_sensor(
    *,
    task: ScanTask,
    graph: ModelGraph,
    declared: frozenset[TableId],
    partitions_defs: Mapping[str, dg.DynamicPartitionsDefinition],
    job: dg.JobDefinition,
    loaded: frozenset[str] = frozenset(),
) -> dg.SensorDefinition:
    """The sensor of one DataScan task: `datascan` for the default task (LAKEHOUSE_LANDING_URI,
    which also plans every namespace's models), `datascan_<TASK>` for a named one (its namespace).

    `loaded`: the named tasks that have a sensor of their own in this code location. A task added
    since (`lakehouse datascan add` while the daemon runs) is run by the default sensor, on its own
    interval, until the code location is reloaded and gives it its sensor: no task waits for a reload."""
    if task.is_default:
        description = (
            "Finds new tables, partitions, late, replaced and deleted files in the landing zone "
            "(LAKEHOUSE_LANDING_URI, namespaces as folders) and model partitions whose inputs moved on; "
            "launches one reconcile run per namespace with work."
        )
    else:
        description = (
            f"DataScan task {task.name}: finds the table folders directly under {task.location} "
            f"(as {task.table_prefix or ''}<folder>) in namespace {task.namespace}"
            + (f" through connection {task.connection}" if task.connection else "")
            + f", every {task.interval_seconds}s; launches a reconcile run of {task.namespace} when anything is stale."
        )

    @dg.sensor(
        name=task.sensor_name,
        minimum_interval_seconds=task.interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        jobs=[job],
        description=description,
    )
    def datascan(context: dg.SensorEvaluationContext, lakehouse: LakehouseResource) -> dg.SensorResult:
        lh = lakehouse.open()
        try:
            current = task if task.is_default else find_task(lh, task.name)
        except TaskError:
            return dg.SensorResult(
                skip_reason=f"DataScan task {task.name} was removed; reload the code location to drop this sensor"
            )
        converged = json.loads(context.cursor) if context.cursor else {}
        last_runs: dict[str, float] = converged.pop(TASK_RUNS, {})
        now = time.time()
        due = [
            t
            for t in (all_tasks(lh)[1:] if task.is_default else [])
            if t.name not in loaded and now - last_runs.get(t.name, 0.0) >= t.interval_seconds
        ]
        result = scan(lh, declared, [current, *due])
        if current.name in result.failed_tasks:
            raise TaskFailed(result.failed_tasks[current.name])
        if due:
            context.log.info(
                f"DataScan: task(s) {', '.join(t.name for t in due)} added since this code location "
                "loaded run in this sensor until it is reloaded"
            )
        for other in due:
            last_runs[other.name] = now
            if other.name in result.failed_tasks:
                context.log.error(result.failed_tasks[other.name])
        for _table, reason in result.new_conflicts:
            context.log.warning(f"DataScan conflict: {reason}")
        for misplaced in result.misplaced:
            context.log.warning(f"DataScan rejected {misplaced.path}: {misplaced.reason}")

        partition_requests = []
        for namespace, keys in sorted(result.partitions.items()):
            if namespace in partitions_defs:
                name = partitions_defs[namespace].name
                assert name is not None
                missing = sorted(set(keys) - set(context.instance.get_dynamic_partitions(name)))
                if missing:
                    partition_requests.append(dg.AddDynamicPartitionsRequest(name, missing))

        in_flight = reconcile_runs_in_flight(context.instance, lh)
        busy = {w.namespace for w in live_workers(lh.catalog)} | set(in_flight)
        namespaces = (
            (
                {t.namespace for t in result.tables}
                | {m.table.namespace for m in graph.ordered}
                | lh.catalog.build_namespaces()
            )
            if task.is_default
            else {t.namespace for t in result.tables} | {task.namespace or ""}
        )
        reconciler = Reconciler(lh, graph, declared)
        runs, waiting, summaries = [], [], []
        changed_ods = {c.table.namespace for c in result.changes}
        for namespace in sorted(namespaces):
            # Planning reads every build record of the namespace; when none changed since a plan
            # found nothing stale (and no files changed), nothing can be stale now. The cursor only
            # saves that work: without it (a new daemon), the plan runs.
            fingerprint = reconciler.fingerprint(namespace)
            if namespace not in changed_ods and converged.get(namespace) == fingerprint:
                continue
            plan = reconciler.plan(namespace, result)
            if plan.empty:
                converged[namespace] = fingerprint
                continue
            converged.pop(namespace, None)
            if namespace in busy:
                waiting.append(namespace)  # the live run takes it (it passes until nothing is stale)
                continue
            summaries.append(f"{namespace} ({plan.summary()})")
            runs.append(reconcile_request(namespace, plan.summary()))
        context.log.info(
            f"DataScan{'' if task.is_default else ' ' + task.name}: {result.files_listed} objects listed, {result.junk_ignored} junk ignored, "
            f"{len(result.changes)} changed ODS partition(s), {len(runs)} reconcile run(s)"
            + (f": {'; '.join(summaries)}" if summaries else "")
            + (f"; {', '.join(waiting)} busy with a live run" if waiting else "")
            + f", in {result.seconds:.3f}s"
        )
        cursor = json.dumps({**converged, **({TASK_RUNS: last_runs} if last_runs else {})}, sort_keys=True)
        if not runs and not partition_requests:
            reason = f"{', '.join(waiting)} busy with a live run" if waiting else "nothing stale"
            return dg.SensorResult(
                skip_reason=f"{reason} ({result.files_listed} objects listed)", cursor=cursor
            )
        return dg.SensorResult(
            run_requests=runs, dynamic_partitions_requests=partition_requests, cursor=cursor
        )

    return datascan
