"""Table maintenance, done openly: compaction of partitions that grew many files, snapshot expiry
that keeps pinned snapshots, Delta vacuum, orphan file removal (see steps.py), with a dry run.

Run by `lakehouse maintain` (lakehouse/cli/maintain.py) and the daily Dagster job `maintenance`
(lakehouse_assets/maintenance.py). No Dagster here; the format-specific work is in
lakehouse/storage/tables/upkeep.py and its iceberg_upkeep.py / delta_upkeep.py.
"""

from __future__ import annotations

from lakehouse.maintenance.options import MaintenanceOptions, parse_duration
from lakehouse.maintenance.report import COLUMNS, MaintenanceRun, TableReport
from lakehouse.maintenance.run import maintain, managed_tables, run_step, start_run
from lakehouse.maintenance.steps import STEPS

__all__ = [
    "COLUMNS",
    "STEPS",
    "MaintenanceOptions",
    "MaintenanceRun",
    "TableReport",
    "maintain",
    "managed_tables",
    "parse_duration",
    "run_step",
    "start_run",
]
