"""Reconcile: build exactly what is stale (see stale.py), in dependency order, and record it.

`Reconciler.reconcile(namespace)` runs passes over the namespace's tables (ODS first, then models
in dependency order) until nothing is stale; the caller holds the namespace's lease
(lakehouse/storage/leases.py). A build record is written only after its table commit, so a crash
at any instant leaves partitions stale, never falsely done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse.core.failpoints import failpoint
from lakehouse.core.ids import TableId
from lakehouse.core.partitioning import Partitioning
from lakehouse.landing.ods import IngestReport, ingest_partitions
from lakehouse.landing.scan import files_digest, scan
from lakehouse.landing.tasks import all_tasks
from lakehouse.models.run import ModelRun, run_model, run_models
from lakehouse.models.spec import SqlModel
from lakehouse.models.stale import ABSENT, MAX_ATTEMPTS, Plan, Staleness, Wanted
from lakehouse.storage.builds import BuildRecord

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["Built", "Failure", "Plan", "ReconcileResult", "Reconciler"]

BATCH_ROWS = 500_000
"""Hours of a model computed in memory and written in one commit, up to this many input rows."""
BATCH_BYTES = 64 * 1024 * 1024
"""ODS partitions loaded in one commit, up to this many bytes of landed files."""


@dataclass
class Built:
    """One table's builds in a pass: what the run reports to Dagster."""

    table: TableId
    keys: list[str]
    reports: list[IngestReport] = field(default_factory=list)
    """ODS: one per partition."""
    runs: list[ModelRun] = field(default_factory=list)
    """Models: one per partition."""
    blocked: list[str] = field(default_factory=list)
    """Partitions whose blocking checks failed: their readers wait."""
    seconds: float = 0.0


@dataclass
class Failure:
    table: TableId
    keys: list[str]
    error: str
    attempts: int


@dataclass
class ReconcileResult:
    namespace: str
    passes: int = 0
    built: list[Built] = field(default_factory=list)
    bumped: dict[TableId, int] = field(default_factory=dict)
    """Hours whose dimension changed only in keys they do not hold: recorded as read, not rebuilt."""
    held: dict[TableId, list[str]] = field(default_factory=dict)
    """Partitions not built because an input's blocking check failed, or out of the daily range."""
    failures: list[Failure] = field(default_factory=list)
    given_up: dict[TableId, list[str]] = field(default_factory=dict)
    """Partitions whose build failed MAX_ATTEMPTS times with these inputs: left until they change."""

    @property
    def partitions_built(self) -> int:
        return sum(len(b.keys) for b in self.built)


class Reconciler(Staleness):
    """Builds what is stale, and records what each partition was built from."""

    # --- building ---------------------------------------------------------------------------
    def build_ods(self, table: TableId, keys: list[str], result_files: dict[str, int] | None = None) -> Built:
        """Load ODS partitions from their current files and record what each was built from."""
        built = Built(table, [])
        started = time.perf_counter()
        sizes = result_files or {}
        for batch in pack(keys, lambda key: sizes.get(key, 0), BATCH_BYTES):
            reports = ingest_partitions(self.lh, table, batch)
            failpoint("ods.committed", table.name)
            records = []
            for report in reports:
                digest = files_digest((r.path, r.fingerprint) for r in [*report.loaded, *report.rejected])
                records.append(
                    BuildRecord(
                        table.name, report.partition_key, digest, f"files:{digest}", "ok", report.rows
                    )
                )
            self._record(table, records)
            built.keys += [r.partition_key for r in reports]
            built.reports += reports
        built.seconds = time.perf_counter() - started
        return built

    def build_model(self, model: SqlModel, wanted: dict[str, Wanted]) -> Built:
        """Build these partitions of a model (a range of days in one commit) and record them."""
        table = model.table
        built = Built(table, [])
        started = time.perf_counter()
        keys = sorted(wanted)
        changes_by_readers = model.partitioning is Partitioning.NONE and any(
            table in self._dims(r) for r in self.graph.readers(table)
        )
        previous = self.state.token(table, "") if changes_by_readers else ABSENT
        unfinished = changes_by_readers and self.lh.catalog.begin_key_change(
            table.namespace, table.name, previous
        )
        if model.partitioning is not Partitioning.NONE:
            for batch in self._batches(model, keys):
                runs = run_models(self.lh, model, batch, self.graph)
                failpoint("model.committed", table.name)
                self._record_runs(model, runs, wanted)
                built.runs += runs
        else:
            for key in keys:
                run = run_model(self.lh, model, key or None, self.graph)
                failpoint("model.committed", table.name)
                if changes_by_readers:
                    changed = None if unfinished else run.changed_keys
                    with self.lh.catalog.engine.begin() as conn:
                        self._record_runs(model, [run], wanted, conn)
                        self.lh.catalog.finish_key_change(
                            table.namespace, table.name, previous, wanted[key].token, changed, conn
                        )
                else:
                    self._record_runs(model, [run], wanted)
                built.runs.append(run)
        built.keys = [r.partition_key for r in built.runs]
        built.blocked = [r.partition_key for r in built.runs if _blocked(r)]
        built.seconds = time.perf_counter() - started
        return built

    def _batches(self, model: SqlModel, keys: list[str]) -> list[list[str]]:
        """Days go in one commit; hours in commits of up to BATCH_ROWS input rows (an hour read
        from inputs bigger than that streams alone, in bounded memory)."""
        if model.partitioning is Partitioning.DAILY:
            return [keys]

        def input_rows(key: str) -> int:
            return sum(
                (r.rows or 0)
                for dep in model.deps
                if self.graph.partitioning(dep) is Partitioning.HOURLY
                and (r := self.state.record(dep, key)) is not None
            )

        return pack(keys, input_rows, BATCH_ROWS)

    def _record_runs(
        self, model: SqlModel, runs: list[ModelRun], wanted: dict[str, Wanted], conn: Any = None
    ) -> None:
        records = [
            BuildRecord(
                model.table.name,
                run.partition_key,
                wanted[run.partition_key].token,
                wanted[run.partition_key].text,
                "blocked" if _blocked(run) else "ok",
                run.rows,
            )
            for run in runs
        ]
        self._record(model.table, records, conn)

    def _record(self, table: TableId, records: list[BuildRecord], conn: Any = None) -> None:
        catalog = self.lh.catalog

        def write(c: Any) -> None:
            catalog.record_builds(table.namespace, records, c)
            catalog.clear_failures(table.namespace, table.name, [r.partition_key for r in records], c)
            failpoint("catalog.commit", table.name)

        if conn is not None:
            write(conn)
        else:
            with catalog.engine.begin() as own:
                write(own)

    # --- one namespace, until nothing is stale ------------------------------------------------
    def reconcile(
        self,
        namespace: str,
        *,
        on_built: Callable[[Built], None] | None = None,
        log: Callable[[str], None] | None = None,
        max_passes: int = 5,
    ) -> ReconcileResult:
        """Passes over the namespace until a pass builds nothing. The caller holds its lease."""
        result = ReconcileResult(namespace)
        say = log or (lambda _message: None)
        for _ in range(max_passes):
            result.passes += 1
            did = self._pass(namespace, result, on_built, say)
            if not did:
                break
        return result

    def _pass(
        self,
        namespace: str,
        result: ReconcileResult,
        on_built: Callable[[Built], None] | None,
        say: Callable[[str], None],
    ) -> bool:
        tasks = [t for t in all_tasks(self.lh) if t.is_default or t.namespace == namespace]
        found = scan(self.lh, self.declared, tasks)
        for error in sorted(found.failed_tasks.values()):
            say(f"{error}; its tables are left as they are")
        self.state.refresh()
        did = False

        def done(built: Built) -> None:
            nonlocal did
            did = True
            result.built.append(built)
            if on_built is not None:
                on_built(built)

        sizes = {(c.table, c.partition_key): c.size for c in found.changes}
        for table, keys in sorted(self.stale_ods(found, namespace).items(), key=lambda kv: str(kv[0])):
            try:
                done(self.build_ods(table, keys, {k: sizes.get((table, k), 0) for k in keys}))
            except Exception as exc:  # noqa: BLE001 - recorded, reported, and the run fails at the end
                self._failed(result, table, keys, "files", exc, say)
            failpoint("reconcile.pass", table.name)
        for model in self.graph.ordered:
            if model.table.namespace != namespace:
                continue
            self.state.refresh()
            stale, moved, held, outside, abandoned = self.stale_model(model)
            if moved:
                more, bumps = self._dimension_stale(model, moved)
                stale.update(more)
                if bumps:
                    n = self.lh.catalog.bump_inputs(namespace, model.table.name, bumps)
                    result.bumped[model.table] = result.bumped.get(model.table, 0) + n
            if held:
                result.held.setdefault(model.table, []).extend(held)
                say(f"{model.table}: {len(held)} partition(s) wait: an input's blocking check failed")
            if outside:
                say(
                    f"{model.table}: day(s) {outside[0]}..{outside[-1]} are outside the daily partitions "
                    f"({self.lh.settings.daily_start_date}..tomorrow); set LAKEHOUSE_DAILY_START_DATE to include them"
                )
            if abandoned:
                result.given_up.setdefault(model.table, []).extend(abandoned)
            if not stale:
                continue
            try:
                done(self.build_model(model, stale))
            except Exception as exc:  # noqa: BLE001
                self._failed(result, model.table, sorted(stale), stale, exc, say)
            failpoint("reconcile.pass", model.table.name)
        return did

    def _failed(
        self,
        result: ReconcileResult,
        table: TableId,
        keys: list[str],
        wanted: Any,
        exc: Exception,
        say: Callable[[str], None],
    ) -> None:
        error = f"{type(exc).__name__}: {exc}"
        attempts = 0
        for key in keys:
            token = wanted[key].token if isinstance(wanted, dict) else wanted
            attempts = max(
                attempts, self.lh.catalog.record_failure(table.namespace, table.name, key, token, error)
            )
        where = keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]} ({len(keys)} partitions)"
        say(f"{table} [{where}] failed (attempt {attempts} of {MAX_ATTEMPTS}): {error}")
        result.failures.append(Failure(table, keys, error, attempts))


def pack(keys: Sequence[str], size: Callable[[str], int], limit: int) -> list[list[str]]:
    """Consecutive keys in batches of up to `limit` in total size (a larger key goes alone)."""
    batches: list[list[str]] = []
    total = 0
    for key in keys:
        n = size(key)
        if not batches or total + n > limit:
            batches.append([])
            total = 0
        batches[-1].append(key)
        total += n
    return batches


def _blocked(run: ModelRun) -> bool:
    return any(not o.passed and o.check.blocking for o in run.checks)
