"""The `maintenance` job: table maintenance (lakehouse/maintenance/) as four ops, one per step, on a
daily schedule that is on by default. The work is all in the domain; each op only runs one step over
every managed table and reports its figures as output metadata (per table and in total), and the
last op records an AssetObservation on each table asset the run changed.

How much history a run keeps is bounded by the code location, not by run config: anyone who reaches
the webserver can launch the job, so a run config may keep more (a longer retention, more snapshots,
an older orphan age) but never less than the deployment's floor (`HistoryFloor`, the daily
schedule's defaults unless the code location passes another). Below it the run fails in its first
op, naming the field, before any table is touched. `lakehouse maintain` (on a machine holding the
deployment's credentials) is not bounded.
"""

# No `from __future__ import annotations`: Dagster reads the config and op annotations at definition.
import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg

from lakehouse import maintenance as m
from lakehouse.maintenance.options import MB, format_duration
from resources.lakehouse import LakehouseResource

JOB_NAME = "maintenance"
SCHEDULE_NAME = "maintenance_daily"
CRON = "0 3 * * *"
"""03:00 every day (UTC), after the night's late files."""

_DEFAULT = m.MaintenanceOptions()

STEP_FIGURES = {
    "compact": [
        "files_before",
        "files_after",
        "partitions_compacted",
        "compaction_skipped",
        "compaction_seconds",
    ],
    "expire": ["snapshots_before", "snapshots_expired", "snapshots_kept", "pinned_kept"],
    "vacuum": ["vacuum_files", "vacuum_bytes"],
    "orphans": ["orphan_files", "orphan_bytes", "bytes_freed"],
}
"""What each step reports, per table and summed over the tables."""


@dataclass(frozen=True)
class HistoryFloor:
    """The least history a `maintenance` run keeps whatever its run config says."""

    retention: dt.timedelta = _DEFAULT.retention
    keep_last: int = _DEFAULT.keep_last
    orphan_age: dt.timedelta = _DEFAULT.orphan_age


DEFAULT_FLOOR = HistoryFloor()


class BelowFloor(ValueError):
    """A run config asks maintenance to keep less history than the deployment allows."""


class MaintenanceConfig(dg.Config):
    """The thresholds of `lakehouse maintain`, with the same defaults."""

    dry_run: bool = False
    tables: list[str] = []
    """namespace.table names; empty: every managed table."""
    max_files: int = _DEFAULT.max_files
    max_small_files: int = _DEFAULT.max_small_files
    small_file_mb: float = _DEFAULT.small_file_bytes / MB
    target_file_mb: float = _DEFAULT.target_file_bytes / MB
    retention: str = "7d"
    keep_last: int = _DEFAULT.keep_last
    orphan_age: str = "1h"

    def options(self, floor: HistoryFloor | None = None) -> m.MaintenanceOptions:
        """The thresholds; ValueError when one is malformed, BelowFloor when the history it keeps
        is less than `floor` allows (each offending field named)."""
        options = m.MaintenanceOptions(
            max_files=self.max_files,
            max_small_files=self.max_small_files,
            small_file_bytes=int(self.small_file_mb * MB),
            target_file_bytes=max(1, int(self.target_file_mb * MB)),
            retention=m.parse_duration(self.retention),
            keep_last=self.keep_last,
            orphan_age=m.parse_duration(self.orphan_age),
        )
        if floor is not None:
            below = []
            if options.retention < floor.retention:
                below.append(f"retention {self.retention!r} < {format_duration(floor.retention)}")
            if options.keep_last < floor.keep_last:
                below.append(f"keep_last {self.keep_last} < {floor.keep_last}")
            if options.orphan_age < floor.orphan_age:
                below.append(f"orphan_age {self.orphan_age!r} < {format_duration(floor.orphan_age)}")
            if below:
                raise BelowFloor(
                    "refused: this run config keeps less history than the deployment allows ("
                    + "; ".join(below)
                    + "). A run may keep more, never less; `lakehouse maintain` on the deployment's "
                    "machine is not bounded."
                )
        return options


def step_metadata(run: m.MaintenanceRun, step: str) -> dict[str, Any]:
    """The step's figures: totals as numbers (the Plots tab), a table per table, the details."""
    figures = STEP_FIGURES[step]
    rows = run.rows()
    totals: dict[str, Any] = {}
    for name in figures:
        values = [r[name] for r in rows if r.get(name) is not None]
        total = sum(values) if values else 0
        totals[name] = float(total) if isinstance(total, float) else int(total)
    header = "| table | " + " | ".join(figures) + " |"
    lines = [header, "|" + " --- |" * (len(figures) + 1)]
    lines += ["| " + " | ".join([r["table"], *(_cell(r.get(f)) for f in figures)]) + " |" for r in rows]
    metadata: dict[str, Any] = {
        **totals,
        "dry_run": run.dry_run,
        "tables": len(run.tables),
        "per_table": dg.MetadataValue.md("\n".join(lines)),
        "figures": dg.MetadataValue.json({r["table"]: {f: r.get(f) for f in figures} for r in rows}),
    }
    if step == "compact":
        details = {
            name: [c.__dict__ for c in report.compactions]
            for name, report in run.reports.items()
            if report.compactions
        }
        metadata["partitions"] = dg.MetadataValue.json(details)
        metadata["options"] = dg.MetadataValue.json(run.options.describe())
    errors = run.errors
    if errors:
        metadata["errors"] = dg.MetadataValue.json(errors)
    return metadata


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def build_maintenance_job(
    asset_keys: Iterable[dg.AssetKey] = (), floor: HistoryFloor = DEFAULT_FLOOR
) -> dg.JobDefinition:
    """The job; `asset_keys` are the table assets of the code location (observed when changed),
    `floor` the least history any run of it keeps (run config cannot lower it)."""
    known = set(asset_keys)

    def run_one(
        step: str, context: dg.OpExecutionContext, lakehouse: LakehouseResource, run: m.MaintenanceRun
    ) -> dg.Output:
        m.run_step(lakehouse.open(), run, step, log=context.log.info)
        return dg.Output(run, metadata=step_metadata(run, step))

    @dg.op(out=dg.Out(dg.Any, description="The run so far (its reports filled step by step)"))
    def compact_partitions(
        context: dg.OpExecutionContext, config: MaintenanceConfig, lakehouse: LakehouseResource
    ) -> dg.Output:
        """Compact partitions whose data-file count outgrew the thresholds (a concurrent build wins)."""
        try:
            options = config.options(floor)  # before the lakehouse is even opened
            run = m.start_run(lakehouse.open(), config.tables or None, options, config.dry_run)
        except ValueError as exc:
            raise dg.Failure(str(exc)) from None
        return run_one("compact", context, lakehouse, run)

    @dg.op(out=dg.Out(dg.Any))
    def expire_snapshots(context: dg.OpExecutionContext, lakehouse: LakehouseResource, run: Any) -> dg.Output:
        """Expire snapshots past the retention; never the current, the last N or a pinned one."""
        return run_one("expire", context, lakehouse, run)

    @dg.op(out=dg.Out(dg.Any))
    def vacuum_delta(context: dg.OpExecutionContext, lakehouse: LakehouseResource, run: Any) -> dg.Output:
        """DeltaTable.vacuum, keeping every version expiry keeps (Iceberg tables: nothing to do)."""
        return run_one("vacuum", context, lakehouse, run)

    @dg.op(out=dg.Out(dg.Any))
    def remove_orphan_files(
        context: dg.OpExecutionContext, lakehouse: LakehouseResource, run: Any
    ) -> Iterator[Any]:
        """Delete files no kept snapshot references, older than the safety age; observe the tables."""
        output = run_one("orphans", context, lakehouse, run)
        for name, report in run.reports.items():
            key = dg.AssetKey(name.split("."))
            if report.changed and key in known:
                yield dg.AssetObservation(asset_key=key, metadata=_observation(report, run.dry_run))
        yield output
        if run.errors:
            raise dg.Failure(
                description=f"{len(run.errors)} table step(s) failed; the first: {run.errors[0]}",
                metadata={"errors": dg.MetadataValue.json(run.errors)},
            )

    @dg.job(
        name=JOB_NAME,
        description="Table maintenance: compaction, snapshot expiry (pinned snapshots kept), Delta "
        "vacuum, orphan files; the same as `lakehouse maintain`. Rows never change.",
        tags={"lakehouse/kind": "maintenance"},
    )
    def maintenance() -> None:
        remove_orphan_files(vacuum_delta(expire_snapshots(compact_partitions())))

    return maintenance


def _observation(report: m.TableReport, dry_run: bool) -> dict[str, Any]:
    row = report.row()
    figures = [f for names in STEP_FIGURES.values() for f in names]
    return {"maintenance_dry_run": dry_run, **{f: row[f] for f in figures if row.get(f) is not None}}


def build_maintenance_schedule(job: dg.JobDefinition) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=SCHEDULE_NAME,
        job=job,
        cron_schedule=CRON,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Runs the `maintenance` job every day (on by default).",
    )
