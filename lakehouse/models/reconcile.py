"""Reconcile: build exactly what is stale, derived from durable state, in dependency order.

Every built partition has a build record (lakehouse_builds): the versions of the inputs it read and
the version (token) of its content. What a partition would read *now* is computed from the records
of its inputs:

- an ODS hour reads its landed files: their digest (DataScan computes it from a listing);
- an hourly model reads the same hour of its hourly inputs, and unpartitioned inputs whole;
- a daily model reads days d+offset of its inputs: of a daily input those partitions, of an hourly
  one the hours its day index says hold that day (lakehouse_partition_days);
- an unpartitioned model reads every partition of its inputs.

A partition is stale when that differs from what its record says it read, or when it has none. The
record is written after the table commit, so a crash at any instant leaves partitions stale, never
falsely done, and the next pass builds them again (every write is an idempotent overwrite).

An hourly reader of an unpartitioned table with `changes_by` (a dimension) is the one refinement:
the dimension's rewrites record which key values changed (lakehouse_key_changes), and only the hours
holding those keys are rebuilt; the others record the new dimension version as read, unchanged.

`reconcile(lh, graph, namespace)` runs passes over the namespace's tables (ODS first, then models in
dependency order) until nothing is stale; the caller holds the namespace's lease
(lakehouse/storage/leases.py). `plan` says what a pass would build, without building.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse.core.failpoints import failpoint
from lakehouse.core.ids import TableId
from lakehouse.core.partitioning import Partitioning, shift_day
from lakehouse.engines.sql import quote_ident
from lakehouse.landing.ods import IngestReport, ingest_partitions
from lakehouse.landing.scan import ScanResult, files_digest, scan
from lakehouse.models.graph import ModelGraph
from lakehouse.models.run import ModelRun, run_model, run_models
from lakehouse.models.spec import SqlModel
from lakehouse.storage.catalog import BuildRecord

if TYPE_CHECKING:
    from lakehouse.facade import Lakehouse

MAX_ATTEMPTS = 3
"""A partition whose build failed this often with the same inputs waits until they change."""
BATCH_ROWS = 500_000
"""Hours of a model computed in memory and written in one commit, up to this many input rows."""
BATCH_BYTES = 64 * 1024 * 1024
"""ODS partitions loaded in one commit, up to this many bytes of landed files."""
ABSENT = ""
"""The token of an input partition that was never built (an empty input)."""


def _digest(value: Any) -> str:
    return hashlib.sha256(_canonical(value).encode()).hexdigest()[:32]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


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


@dataclass
class Plan:
    """What one pass over a namespace would build now (before any of it runs)."""

    namespace: str
    ods: dict[TableId, list[str]] = field(default_factory=dict)
    models: dict[TableId, list[str]] = field(default_factory=dict)
    dimension_moved: dict[TableId, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.ods or self.models or self.dimension_moved)

    def summary(self) -> str:
        parts = [f"{t.name}: {len(k)}" for t, k in [*self.ods.items(), *self.models.items()]]
        parts += [f"{t.name}: {n} hour(s) to check" for t, n in self.dimension_moved.items()]
        return ", ".join(parts) or "nothing stale"


class State:
    """The build records (and day indexes) as of now, read lazily per namespace and table."""

    def __init__(self, lh: Lakehouse) -> None:
        self.lh = lh
        self._builds: dict[str, dict[tuple[str, str], BuildRecord]] = {}
        self._days: dict[TableId, dict[str, list[str]]] = {}

    def refresh(self) -> None:
        self._builds.clear()
        self._days.clear()

    def builds(self, namespace: str) -> dict[tuple[str, str], BuildRecord]:
        if namespace not in self._builds:
            self._builds[namespace] = self.lh.catalog.builds(namespace)
        return self._builds[namespace]

    def record(self, table: TableId, key: str) -> BuildRecord | None:
        return self.builds(table.namespace).get((table.name, key))

    def token(self, table: TableId, key: str) -> str:
        record = self.record(table, key)
        return record.token if record is not None else ABSENT

    def keys(self, table: TableId) -> list[str]:
        return sorted(k for (name, k) in self.builds(table.namespace) if name == table.name)

    def hours_by_day(self, table: TableId) -> dict[str, list[str]]:
        if table not in self._days:
            self._days[table] = self.lh.catalog.hours_by_day(table.namespace, table.name)
        return self._days[table]


@dataclass
class Wanted:
    """What a model partition would read now."""

    inputs: dict[str, Any]
    """{"code": ..., "deps": {table: part}, "dims": {table: token}} (dims: changes_by inputs)"""
    reads: list[tuple[TableId, str]]
    """The input partitions it reads (to know whether one is blocked)."""

    @property
    def text(self) -> str:
        return _canonical(self.inputs)

    @property
    def token(self) -> str:
        return _digest(self.inputs)


class Reconciler:
    """Staleness and builds for the models of one code location (`graph`)."""

    def __init__(self, lh: Lakehouse, graph: ModelGraph, declared: Iterable[TableId] = ()) -> None:
        self.lh = lh
        self.graph = graph
        self.declared = frozenset(declared)
        self.state = State(lh)
        self.settings_code = _digest(
            {"distance_method": lh.settings.distance_method, "timezone": lh.settings.timezone}
        )

    # --- what a partition reads -----------------------------------------------------------
    def _dims(self, model: SqlModel) -> dict[TableId, str]:
        """changes_by inputs: unpartitioned tables an hourly model joins by a key column."""
        return {
            dep: spec.changes_by
            for dep in model.deps
            if (spec := model.input(dep)).changes_by and self.graph.partitioning(dep) is Partitioning.NONE
        }

    def wanted(self, model: SqlModel, key: str) -> Wanted:
        deps: dict[str, Any] = {}
        dims: dict[str, str] = {}
        reads: list[tuple[TableId, str]] = []
        changes_by = self._dims(model)
        for dep in model.deps:
            kind = self.graph.partitioning(dep)
            if dep in changes_by:
                dims[str(dep)] = self.state.token(dep, "")
                reads.append((dep, ""))
            elif model.partitioning is Partitioning.NONE:
                keys = self.state.keys(dep)
                deps[str(dep)] = _digest([(k, self.state.token(dep, k)) for k in keys]) if keys else ABSENT
                reads += [(dep, k) for k in keys]
            elif kind is Partitioning.NONE:
                deps[str(dep)] = self.state.token(dep, "")
                reads.append((dep, ""))
            elif model.partitioning is Partitioning.HOURLY:
                deps[str(dep)] = self.state.token(dep, key)
                reads.append((dep, key))
            else:  # a daily model: days d+offset of a daily input, or the hours holding them
                days = [shift_day(key, o) for o in model.input(dep).days]
                if kind is Partitioning.DAILY:
                    deps[str(dep)] = [self.state.token(dep, d) for d in days]
                    reads += [(dep, d) for d in days]
                else:
                    by_day = self.state.hours_by_day(dep)
                    parts = []
                    for day in days:
                        hours = by_day.get(day, [])
                        parts.append(
                            _digest([(h, self.state.token(dep, h)) for h in hours]) if hours else ABSENT
                        )
                        reads += [(dep, h) for h in hours]
                    deps[str(dep)] = parts
        inputs = {"code": [model.code_version, self.settings_code], "deps": deps}
        if dims:
            inputs["dims"] = dims
        return Wanted(inputs, reads)

    def expected_keys(self, model: SqlModel) -> tuple[list[str], list[str]]:
        """(partitions the model should have now, days outside the daily partitions). None before
        every landing table it reads has landed (models it reads may be unbuilt: they read empty)."""
        if any(dep not in self.graph.models and not self.state.keys(dep) for dep in model.deps):
            return [], []
        if model.partitioning is Partitioning.NONE:
            return [""], []
        keys = set(self.state.keys(model.table))
        for dep in model.deps:
            kind = self.graph.partitioning(dep)
            if model.partitioning is Partitioning.HOURLY:
                if kind is Partitioning.HOURLY:
                    keys |= set(self.state.keys(dep))
                continue
            if kind is Partitioning.NONE:
                continue
            days = self.state.hours_by_day(dep) if kind is Partitioning.HOURLY else self.state.keys(dep)
            keys |= {shift_day(d, -o) for d in days for o in model.input(dep).days}
        if model.partitioning is not Partitioning.DAILY:
            return sorted(keys), []

        first = self.lh.settings.daily_start_date
        last = (datetime.date.today() + datetime.timedelta(days=1)).isoformat()
        inside = sorted(k for k in keys if first <= k <= last)
        return inside, sorted(k for k in keys if not first <= k <= last)

    # --- staleness ------------------------------------------------------------------------
    def stale_ods(self, result: ScanResult, namespace: str) -> dict[TableId, list[str]]:
        stale: dict[TableId, list[str]] = {}
        for change in result.changes:
            if change.table.namespace == namespace:
                stale.setdefault(change.table, []).append(change.partition_key)
        return stale

    def _given_up(self, model: SqlModel) -> dict[str, str]:
        failures = self.lh.catalog.build_failures(model.table.namespace)
        return {
            key: wanted
            for (name, key), (wanted, attempts, _) in failures.items()
            if name == model.table.name and attempts >= MAX_ATTEMPTS
        }

    def stale_model(
        self, model: SqlModel
    ) -> tuple[dict[str, Wanted], dict[str, tuple[BuildRecord, Wanted]], list[str], list[str], list[str]]:
        """(stale partitions, partitions whose only moved input is a dimension, held by a blocked
        input, out of the daily range, given up after failures)."""
        keys, outside = self.expected_keys(model)
        given_up = self._given_up(model)
        stale: dict[str, Wanted] = {}
        moved: dict[str, tuple[BuildRecord, Wanted]] = {}
        held: list[str] = []
        abandoned: list[str] = []
        for key in keys:
            wanted = self.wanted(model, key)
            record = self.state.record(model.table, key)
            if record is not None and record.inputs == wanted.text:
                continue
            if any(
                (r := self.state.record(t, k)) is not None and r.status == "blocked" for t, k in wanted.reads
            ):
                held.append(key)
                continue
            if given_up.get(key) == wanted.token:
                abandoned.append(key)
                continue
            previous = json.loads(record.inputs) if record is not None else None
            if (
                previous is not None
                and "dims" in wanted.inputs
                and {k: v for k, v in previous.items() if k != "dims"}
                == {k: v for k, v in wanted.inputs.items() if k != "dims"}
            ):
                assert record is not None
                moved[key] = (record, wanted)
            else:
                stale[key] = wanted
        return stale, moved, held, outside, abandoned

    def fingerprint(self, namespace: str) -> str:
        """Changes whenever anything that decides staleness in the namespace may have changed: a
        build recorded (or bumped), a failure, the models' code and settings, the date (the daily
        range ends tomorrow). Equal fingerprints and no changed files: the same plan."""
        code = [m.code_version for m in self.graph.ordered if m.table.namespace == namespace]
        today = datetime.date.today().isoformat()
        return _digest([self.lh.catalog.builds_summary(namespace), code, self.settings_code, today])

    def plan(self, namespace: str, result: ScanResult | None = None) -> Plan:
        result = result or scan(self.lh, self.declared)
        self.state.refresh()
        plan = Plan(namespace, ods=self.stale_ods(result, namespace))
        for model in self.graph.ordered:
            if model.table.namespace != namespace:
                continue
            stale, moved, *_ = self.stale_model(model)
            if stale:
                plan.models[model.table] = sorted(stale)
            if moved:
                plan.dimension_moved[model.table] = len(moved)
        return plan

    def _dimension_stale(
        self, model: SqlModel, moved: dict[str, tuple[BuildRecord, Wanted]]
    ) -> tuple[dict[str, Wanted], dict[str, tuple[str, str]]]:
        """Of the hours whose dimension moved: those holding a changed key (rebuild), the rest (bump)."""
        stale: dict[str, Wanted] = {}
        affected: set[str] = set()
        for dep, column in self._dims(model).items():
            groups: dict[str, list[str]] = {}
            for key, (record, wanted) in moved.items():
                was = json.loads(record.inputs).get("dims", {}).get(str(dep), ABSENT)
                if was != wanted.inputs["dims"][str(dep)]:
                    groups.setdefault(was, []).append(key)
            current = self.state.token(dep, "")
            transitions = self.lh.catalog.key_transitions(dep.namespace, dep.name)
            for was, keys in groups.items():
                changed = _changed_keys(transitions, was, current, column)
                if changed is None:
                    affected |= set(keys)
                elif changed:
                    holding = set(_hours_holding(self.lh, model.table, column, changed))
                    affected |= holding & set(keys)
        bumps: dict[str, tuple[str, str]] = {}
        for key, (record, wanted) in moved.items():
            if key in affected:
                stale[key] = wanted
            else:
                bumps[key] = (record.inputs, wanted.text)
        return stale, bumps

    # --- building ---------------------------------------------------------------------------
    def build_ods(self, table: TableId, keys: list[str], result_files: dict[str, int] | None = None) -> Built:
        """Load ODS partitions from their current files and record what each was built from."""
        built = Built(table, [])
        started = time.perf_counter()
        for batch in _ods_batches(result_files or {}, keys):
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
        batches: list[list[str]] = []
        rows = 0
        for key in keys:
            size = sum(
                (r.rows or 0)
                for dep in model.deps
                if self.graph.partitioning(dep) is Partitioning.HOURLY
                and (r := self.state.record(dep, key)) is not None
            )
            if not batches or rows + size > BATCH_ROWS:
                batches.append([])
                rows = 0
            batches[-1].append(key)
            rows += size
        return batches

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
        found = scan(self.lh, self.declared)
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


def _ods_batches(sizes: dict[str, int], keys: list[str]) -> list[list[str]]:
    """Partitions loaded in one commit, up to BATCH_BYTES of files (key -> bytes landed)."""
    batches: list[list[str]] = []
    total = 0
    for key in keys:
        size = sizes.get(key, 0)
        if not batches or total + size > BATCH_BYTES:
            batches.append([])
            total = 0
        batches[-1].append(key)
        total += size
    return batches


def _blocked(run: ModelRun) -> bool:
    return any(not o.passed and o.check.blocking for o in run.checks)


def _changed_keys(
    transitions: list[tuple[str, str, dict[str, list[Any]] | None]], start: str, end: str, column: str
) -> list[Any] | None:
    """The keys (of `column`) changed between two builds of a table, along any recorded path of
    rewrites from one to the other; None when unknown (no path, or a rewrite of unknown changes)."""
    edges: dict[str, list[tuple[str, dict[str, list[Any]] | None]]] = {}
    for frm, to, changes in transitions:
        edges.setdefault(frm, []).append((to, changes))
    frontier: list[tuple[str, set[Any]]] = [(start, set())]
    seen = {start}
    while frontier:
        node, found = frontier.pop(0)
        if node == end:
            return sorted(found, key=str)
        for to, changed in edges.get(node, []):
            if to in seen or changed is None or column not in changed:
                continue
            seen.add(to)
            frontier.append((to, found | set(map(_hashable, changed[column]))))
    return None


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _hours_holding(lh: Lakehouse, table: TableId, column: str, values: list[Any]) -> list[str]:
    """Hourly partition keys of `table` holding one of `values` in `column`."""
    import pyarrow as pa

    if not lh.tables.exists(table):
        return []
    result = lh.engine.query(
        f"select distinct dt || '-' || hh as key from t where {quote_ident(column)} in (select v from k)",
        {"t": lh.tables.dataset(table), "k": pa.table({"v": values})},
        statement_name=f"{table}: hours holding changed {column} values",
    )
    return [k for k in result["key"].to_pylist() if k]
