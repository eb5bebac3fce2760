"""What a maintenance run did (or, in a dry run, would do), per table and in total."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from lakehouse.maintenance.options import MaintenanceOptions


@dataclass
class PartitionCompaction:
    partition: str
    files_before: int
    files_after: int
    rows: int | None = None
    seconds: float = 0.0
    skipped: str | None = None
    """Why it was not compacted (a concurrent write changed it and won)."""


@dataclass
class TableReport:
    """One table's figures. In a dry run every figure is what the run would do."""

    table: str
    format: str
    files_before: int = 0
    """Data files of the current snapshot, before compaction..."""
    files_after: int = 0
    """...and after it."""
    partitions_compacted: int = 0
    compactions: list[PartitionCompaction] = field(default_factory=list)
    compaction_seconds: float = 0.0
    snapshots_before: int = 0
    snapshots_expired: int = 0
    """Iceberg: snapshots removed from the metadata. Delta: versions vacuum made unreadable."""
    snapshots_kept: int = 0
    pinned_kept: int = 0
    vacuum_files: int | None = None
    """Files Delta's vacuum deleted (None: not a Delta table)."""
    vacuum_bytes: int | None = None
    orphan_files: int = 0
    orphan_bytes: int = 0
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def bytes_freed(self) -> int:
        return self.orphan_bytes + (self.vacuum_bytes or 0)

    @property
    def changed(self) -> bool:
        """Whether the run did (or would do) anything to this table."""
        return bool(
            self.partitions_compacted or self.snapshots_expired or self.vacuum_files or self.orphan_files
        )

    def row(self) -> dict[str, Any]:
        """The figures as one flat row (the CLI's table, the Dagster metadata)."""
        return {
            "table": self.table,
            "format": self.format,
            "files_before": self.files_before,
            "files_after": self.files_after,
            "partitions_compacted": self.partitions_compacted,
            "compaction_skipped": sum(1 for c in self.compactions if c.skipped),
            "compaction_seconds": round(self.compaction_seconds, 3),
            "snapshots_before": self.snapshots_before,
            "snapshots_expired": self.snapshots_expired,
            "snapshots_kept": self.snapshots_kept,
            "pinned_kept": self.pinned_kept,
            "vacuum_files": self.vacuum_files,
            "vacuum_bytes": self.vacuum_bytes,
            "orphan_files": self.orphan_files,
            "orphan_bytes": self.orphan_bytes,
            "bytes_freed": self.bytes_freed,
            "seconds": round(sum(self.seconds.values()), 3),
            "notes": "; ".join(self.notes + self.errors),
        }


COLUMNS = [
    "table",
    "files_before",
    "files_after",
    "partitions_compacted",
    "compaction_skipped",
    "snapshots_expired",
    "snapshots_kept",
    "pinned_kept",
    "vacuum_files",
    "orphan_files",
    "bytes_freed",
    "seconds",
]
"""The columns `lakehouse maintain` shows as a table (--format json has every field)."""

TOTALS = [c for c in COLUMNS if c not in ("table", "seconds")]
"""The columns summed over the tables."""


@dataclass
class MaintenanceRun:
    """One run over some tables: its settings and, per table, its report (filled step by step)."""

    tables: list[str]
    options: MaintenanceOptions
    dry_run: bool
    started: dt.datetime
    reports: dict[str, TableReport] = field(default_factory=dict)
    steps_done: list[str] = field(default_factory=list)

    def rows(self) -> list[dict[str, Any]]:
        return [self.reports[t].row() for t in self.tables if t in self.reports]

    def totals(self) -> dict[str, int]:
        rows = self.rows()
        return {name: sum(int(r.get(name) or 0) for r in rows) for name in TOTALS}

    @property
    def changed(self) -> bool:
        return any(r.changed for r in self.reports.values())

    @property
    def errors(self) -> list[str]:
        return [f"{t}: {e}" for t, r in self.reports.items() for e in r.errors]

    def details(self) -> list[str]:
        """One line per compacted (or skipped) partition, then the notes."""
        lines = []
        for table in self.tables:
            report = self.reports.get(table)
            if report is None:
                continue
            for c in report.compactions:
                what = (
                    f"skipped: {c.skipped}" if c.skipped else f"{c.files_before} -> {c.files_after} file(s)"
                )
                rows = f", {c.rows} rows" if c.rows is not None else ""
                timing = "" if self.dry_run else f" in {c.seconds:.3f} s"
                lines.append(f"{table} {c.partition}: {what}{rows}{timing}")
            lines += [f"{table}: {note}" for note in report.notes + report.errors]
        return lines
