"""Staleness: what a partition would read now, against what its build record says it read.

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

`Staleness.plan` says what a pass would build, without building; reconcile.py builds it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId
from lakehouse.core.partitioning import Partitioning, shift_day
from lakehouse.engines.sql import quote_ident
from lakehouse.landing.scan import ScanResult, scan
from lakehouse.models.graph import ModelGraph
from lakehouse.models.spec import SqlModel
from lakehouse.storage.builds import BuildRecord

if TYPE_CHECKING:
    from lakehouse.facade import Lakehouse

MAX_ATTEMPTS = 3
"""A partition whose build failed this often with the same inputs waits until they change."""
ABSENT = ""
"""The token of an input partition that was never built (an empty input)."""


def _digest(value: Any) -> str:
    return hashlib.sha256(_canonical(value).encode()).hexdigest()[:32]


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


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


class Staleness:
    """What is stale for the models of one code location (`graph`), from the build records."""

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
    result = lh.local_engine.query(
        f"select distinct dt || '-' || hh as key from t where {quote_ident(column)} in (select v from k)",
        {"t": lh.tables.dataset(table), "k": pa.table({"v": values})},
        statement_name=f"{table}: hours holding changed {column} values",
    )
    return [k for k in result["key"].to_pylist() if k]
