"""Running maintenance: which tables, one step over all of them, or every step (`maintain`)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from lakehouse.core.ids import TableId
from lakehouse.maintenance.options import MaintenanceOptions
from lakehouse.maintenance.report import MaintenanceRun, TableReport
from lakehouse.maintenance.steps import STEPS
from lakehouse.storage.tables.upkeep import open_upkeep

if TYPE_CHECKING:
    from lakehouse.facade import Lakehouse

Log = Callable[[str], None]


def managed_tables(lh: Lakehouse, names: Iterable[str] | None = None) -> list[TableId]:
    """The managed tables of the configured format (all, or those named namespace.table in any case);
    ValueError naming a table that is not one."""
    managed = [
        TableId(r.namespace, r.name)
        for r in lh.catalog.list_tables()
        if r.format == lh.tables.format and lh.tables.exists(TableId(r.namespace, r.name))
    ]
    wanted = list(names or [])
    if not wanted:
        return managed
    chosen = []
    for name in wanted:
        ident = TableId.parse(name)
        found = lh.canonical(ident.namespace, ident.name)
        if found not in managed:
            raise ValueError(f"{name} is not a managed {lh.tables.format} table (see `lakehouse tables`)")
        if found not in chosen:
            chosen.append(found)
    return chosen


def start_run(
    lh: Lakehouse,
    tables: Iterable[str] | None = None,
    options: MaintenanceOptions | None = None,
    dry_run: bool = False,
    now: dt.datetime | None = None,
) -> MaintenanceRun:
    """A run over the tables, nothing done yet. `now` (default: this instant) is the one time every
    step's age rules use."""
    chosen = managed_tables(lh, tables)
    run = MaintenanceRun(
        tables=[str(t) for t in chosen],
        options=options or MaintenanceOptions(),
        dry_run=dry_run,
        started=now or dt.datetime.now(dt.UTC),
    )
    run.reports = {str(t): TableReport(str(t), lh.tables.format) for t in chosen}
    return run


def run_step(lh: Lakehouse, run: MaintenanceRun, step: str, log: Log | None = None) -> MaintenanceRun:
    """One step over every table of the run. A table that fails records the error and the others go on."""
    action = STEPS[step]
    up = open_upkeep(lh.tables)
    for name in run.tables:
        report = run.reports[name]
        started = time.perf_counter()
        try:
            action(lh, up, TableId.parse(name), run, report)
        except Exception as exc:  # one table's failure is reported, the rest of the run goes on
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            report.errors.append(f"{step}: {type(exc).__name__}: {text}")
        report.seconds[step] = report.seconds.get(step, 0.0) + time.perf_counter() - started
        if log is not None:
            log(f"{step} {name}: {_summary(step, report)}")
    run.steps_done.append(step)
    return run


def maintain(
    lh: Lakehouse,
    tables: Iterable[str] | None = None,
    options: MaintenanceOptions | None = None,
    dry_run: bool = False,
    log: Log | None = None,
) -> MaintenanceRun:
    """Every step over the tables (default: every managed table); see steps.py."""
    run = start_run(lh, tables, options, dry_run)
    for step in STEPS:
        run_step(lh, run, step, log)
    return run


def _summary(step: str, report: TableReport) -> str:
    if step == "compact":
        return (
            f"{report.partitions_compacted} partition(s), files {report.files_before} -> {report.files_after}"
        )
    if step == "expire":
        return (
            f"{report.snapshots_expired} expired, {report.snapshots_kept} kept ({report.pinned_kept} pinned)"
        )
    if step == "vacuum":
        return "not a Delta table" if report.vacuum_files is None else f"{report.vacuum_files} file(s)"
    return f"{report.orphan_files} orphan file(s), {report.orphan_bytes} bytes"
