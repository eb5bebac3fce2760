"""Table maintenance: `lakehouse maintain` (compaction, snapshot expiry, Delta vacuum, orphan files)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import click

from lakehouse.cli.options import format_option, open_lakehouse, render

if TYPE_CHECKING:
    from lakehouse.facade import Lakehouse

_DEFAULTS = {
    "max_files": 8,
    "max_small_files": 4,
    "small_file_mb": 32.0,
    "target_file_mb": 128.0,
    "retention": "7d",
    "keep_last": 5,
    "orphan_age": "1h",
}
"""The defaults of MaintenanceOptions, spelled as the options take them (checked by the tests)."""


@click.command()
@click.option("--dry-run", is_flag=True, help="Report exactly what would be done; change nothing.")
@click.option(
    "--table",
    "tables",
    multiple=True,
    metavar="NS.TABLE",
    help="Maintain only this table (repeatable); default: every managed table.",
)
@click.option(
    "--max-files",
    type=click.IntRange(min=1),
    default=_DEFAULTS["max_files"],
    show_default=True,
    help="Compact a partition holding more data files than this.",
)
@click.option(
    "--max-small-files",
    type=click.IntRange(min=1),
    default=_DEFAULTS["max_small_files"],
    show_default=True,
    help="Compact a partition holding more files smaller than --small-file-mb than this.",
)
@click.option(
    "--small-file-mb", type=click.FloatRange(min=0), default=_DEFAULTS["small_file_mb"], show_default=True
)
@click.option(
    "--target-file-mb",
    type=click.FloatRange(min=0, min_open=True),
    default=_DEFAULTS["target_file_mb"],
    show_default=True,
    help="Compaction writes files of up to this size (as few as it takes).",
)
@click.option(
    "--retention",
    default=_DEFAULTS["retention"],
    show_default=True,
    help="Keep every snapshot younger than this (7d, 12h, 30m, 0).",
)
@click.option(
    "--keep-last",
    type=click.IntRange(min=1),
    default=_DEFAULTS["keep_last"],
    show_default=True,
    help="Always keep the last N snapshots that changed data (and the current one, and pinned ones).",
)
@click.option(
    "--orphan-age",
    default=_DEFAULTS["orphan_age"],
    show_default=True,
    help="Delete an unreferenced file only when older than this (an in-flight write is younger).",
)
@click.option(
    "--unpin",
    multiple=True,
    metavar="NS.TABLE@SNAPSHOT_ID",
    help="Remove the pins of that snapshot (see lakehouse.snapshot_pins) instead of maintaining.",
)
@format_option
def maintain(
    dry_run: bool,
    tables: tuple[str, ...],
    max_files: int,
    max_small_files: int,
    small_file_mb: float,
    target_file_mb: float,
    retention: str,
    keep_last: int,
    orphan_age: str,
    unpin: tuple[str, ...],
    fmt: str,
) -> None:
    """Compact partitions that grew many files, expire old snapshots (never the current one, the
    last --keep-last, or a pinned one: a trained model read it), vacuum Delta tables and delete
    orphan files. Rows never change; the daily Dagster job `maintenance` runs the same."""
    from lakehouse.maintenance import COLUMNS, MaintenanceOptions, maintain, parse_duration
    from lakehouse.maintenance.options import MB

    lh = open_lakehouse()
    if unpin:
        _unpin(lh, unpin, fmt)
        return
    durations = {}
    for hint, text in (("--retention", retention), ("--orphan-age", orphan_age)):
        try:
            durations[hint] = parse_duration(text)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=hint) from None
    options = MaintenanceOptions(
        max_files=max_files,
        max_small_files=max_small_files,
        small_file_bytes=int(small_file_mb * MB),
        target_file_bytes=max(1, int(target_file_mb * MB)),
        retention=durations["--retention"],
        keep_last=keep_last,
        orphan_age=durations["--orphan-age"],
    )
    started = time.perf_counter()
    try:
        run = maintain(lh, tables or None, options, dry_run=dry_run)
    except ValueError as exc:  # a --table that is not a managed table
        raise click.BadParameter(str(exc), param_hint="--table") from None
    seconds = time.perf_counter() - started
    if fmt == "json":
        by_table = {r.table: r for r in run.reports.values()}
        rows = [
            {
                **row,
                "dry_run": dry_run,
                "compactions": [c.__dict__ for c in by_table[row["table"]].compactions],
            }
            for row in run.rows()
        ]
        click.echo(render(rows, [], "json"))
    else:
        click.echo(render(run.rows(), COLUMNS, fmt))
        if fmt == "table":
            for line in run.details():
                click.echo(line)
            what = "dry run, nothing was changed" if dry_run else "done"
            click.echo(f"{len(run.tables)} table(s) in {seconds:.2f} s ({what})")
    if run.errors:
        raise click.ClickException(f"{len(run.errors)} error(s); the first: {run.errors[0]}")


def _unpin(lh: Lakehouse, specs: tuple[str, ...], fmt: str) -> None:
    from lakehouse.core.ids import TableId

    rows = []
    for spec in specs:
        name, sep, snapshot = spec.rpartition("@")
        if not sep or not snapshot.strip():
            raise click.BadParameter(f"{spec!r}: give NS.TABLE@SNAPSHOT_ID", param_hint="--unpin")
        try:
            ident = TableId.parse(name)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--unpin") from None
        ident = lh.canonical(ident.namespace, ident.name)
        removed = lh.catalog.unpin_snapshot(ident.namespace, ident.name, snapshot.strip())
        if not removed:
            raise click.ClickException(
                f"{ident} snapshot {snapshot.strip()} is not pinned (see lakehouse.snapshot_pins)"
            )
        rows.append({"table": str(ident), "snapshot_id": snapshot.strip(), "pins_removed": removed})
    click.echo(render(rows, ["table", "snapshot_id", "pins_removed"], fmt))
