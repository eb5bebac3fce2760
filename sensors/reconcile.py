"""The reconcile run: one run per namespace builds everything stale, ODS through ADS.

The DataScan sensor (sensors/datascan.py) asks for it; `lakehouse scan` executes it in process. The
run registers as a worker and takes the namespace's lease (lakehouse/storage/leases.py), then runs
`Reconciler.reconcile` (lakehouse/models/reconcile.py) and reports, for every partition it built, an
asset materialization and its checks, so the Dagster UI shows each partition like any other.
"""

from collections.abc import Mapping
from typing import Any

import dagster as dg

from lakehouse.core.ids import TableId
from lakehouse.core.partitioning import Partitioning, is_hour_key
from lakehouse.models.graph import ModelGraph
from lakehouse.models.reconcile import Built, Reconciler
from lakehouse.storage.leases import Worker
from lakehouse_assets.metadata import check_metadata, ingest_metadata, run_metadata
from resources.lakehouse import LakehouseResource
from sensors.dynamic_partitions import add_dynamic_partitions

RECONCILE_JOB = "reconcile"
NAMESPACE_TAG = "lakehouse/namespace"
RECONCILE_TAG = "lakehouse/reconcile"
NO_REJECTED_FILES = "no_rejected_files"


class ReconcileConfig(dg.Config):
    namespace: str
    """The catalog namespace to bring up to date (a landing folder's first level)."""


def build_reconcile_job(
    graph: ModelGraph,
    declared: frozenset[TableId],
    known_checks: Mapping[TableId, set[str]],
    hourly_partitions: Mapping[str, str],
) -> dg.JobDefinition:
    """`known_checks`: table -> the check names its asset declares (only those are reported);
    `hourly_partitions`: namespace -> the name of its dynamic hourly partitions definition."""

    @dg.op(
        name="reconcile_namespace",
        description="Build every stale partition of a namespace: ODS from the landed files, then the "
        "models in dependency order (hourly, unpartitioned, daily), until nothing is stale.",
    )
    def reconcile_namespace(
        context: dg.OpExecutionContext, config: ReconcileConfig, lakehouse: LakehouseResource
    ) -> dg.Output[Any]:
        lh = lakehouse.open()
        namespace = config.namespace
        models = {m.table: m for m in graph.ordered}

        def report(built: Built) -> None:
            key = dg.AssetKey([built.table.namespace, built.table.name])
            hourly = built.table not in models or models[built.table].partitioning is Partitioning.HOURLY
            partitions_def = hourly_partitions.get(built.table.namespace)
            if hourly and partitions_def and built.keys:
                add_dynamic_partitions(
                    context.instance, partitions_def, [k for k in built.keys if is_hour_key(k)]
                )
            checks = known_checks.get(built.table, set())
            for report_ in built.reports:
                context.log_event(
                    dg.AssetMaterialization(
                        key, partition=report_.partition_key, metadata=ingest_metadata(report_)
                    )
                )
            if built.reports and NO_REJECTED_FILES in checks:
                rejected = {r.partition_key: len(r.rejected) for r in built.reports if r.rejected}
                log_check(
                    context,
                    dg.AssetCheckEvaluation(
                        key,
                        NO_REJECTED_FILES,
                        passed=not rejected,
                        severity=dg.AssetCheckSeverity.WARN,
                        partition=built.keys[0] if len(built.keys) == 1 else None,
                        metadata={
                            "rejected": sum(rejected.values()),
                            "partitions_checked": len(built.reports),
                            "failing_partitions": dg.MetadataValue.json(rejected),
                        },
                    ),
                )
            model = models.get(built.table)
            outcomes: dict[str, list[tuple[str, Any]]] = {}
            for run in built.runs:
                assert model is not None
                context.log_event(
                    dg.AssetMaterialization(
                        key, partition=run.partition_key or None, metadata=run_metadata(model, run)
                    )
                )
                for outcome in run.checks:
                    outcomes.setdefault(outcome.check.name, []).append((run.partition_key, outcome))
            # One evaluation per check and table for the partitions this pass built (an event per
            # partition and check cost more than the builds of small partitions).
            for name, results in outcomes.items():
                if name not in checks:
                    continue
                failing = {k: o.failing_rows for k, o in results if not o.passed}
                first = results[0][1]
                log_check(
                    context,
                    dg.AssetCheckEvaluation(
                        key,
                        name,
                        passed=not failing,
                        partition=(results[0][0] or None) if len(results) == 1 else None,
                        blocking=first.check.blocking,
                        metadata={
                            **(check_metadata(first) if len(results) == 1 else {}),
                            "partitions_checked": len(results),
                            "failing_partitions": dg.MetadataValue.json(failing),
                        },
                    ),
                )
            where = built.keys[0] if len(built.keys) == 1 else f"{len(built.keys)} partitions"
            context.log.info(f"{built.table}: built {where} in {built.seconds:.2f}s")

        with Worker(lh.catalog, namespace, run_id=context.run_id) as worker:
            worker.acquire(
                on_wait=lambda holder: context.log.info(f"waiting for {holder} to finish {namespace}")
            )
            result = Reconciler(lh, graph, declared).reconcile(
                namespace, on_built=report, log=context.log.warning
            )
        summary = {
            "passes": result.passes,
            "partitions_built": result.partitions_built,
            "by_table": {str(b.table): len(b.keys) for b in result.built},
            "bumped": {str(t): n for t, n in result.bumped.items()},
            "held": {str(t): k for t, k in result.held.items()},
            "given_up": {str(t): k for t, k in result.given_up.items()},
        }
        if result.failures:
            lines = [
                f"{f.table} [{', '.join(f.keys[:3])}{'...' if len(f.keys) > 3 else ''}]: {f.error}"
                for f in result.failures
            ]
            raise dg.Failure(
                description=f"{len(result.failures)} build(s) failed in {namespace} (everything else was built):\n"
                + "\n".join(lines),
                metadata={"summary": dg.MetadataValue.json(summary)},
            )
        return dg.Output(None, metadata={"summary": dg.MetadataValue.json(summary)})

    @dg.job(
        name=RECONCILE_JOB,
        description="Bring one namespace up to date: every stale partition of every layer, in one run.",
        tags={RECONCILE_TAG: "true"},
    )
    def reconcile() -> None:
        reconcile_namespace()

    return reconcile


def log_check(context: dg.OpExecutionContext, evaluation: dg.AssetCheckEvaluation) -> None:
    """A check evaluated by the run (log_event takes them; its annotation does not say so)."""
    log: Any = context.log_event
    log(evaluation)


def reconcile_request(namespace: str, reason: str) -> dg.RunRequest:
    return dg.RunRequest(
        job_name=RECONCILE_JOB,
        run_config={"ops": {"reconcile_namespace": {"config": {"namespace": namespace}}}},
        tags={NAMESPACE_TAG: namespace, RECONCILE_TAG: "true", "lakehouse/reason": reason[:200]},
    )
