"""`lakehouse scan`: DataScan now, in this process, and what it asks for (the daemon's work, once).

The one command that drives Dagster, so it lives in the Dagster wing; `lakehouse/cli/main.py`
loads it by name only when it is invoked, and every other command runs without Dagster.
"""

from __future__ import annotations

import warnings

import click
import dagster as dg

from lakehouse.cli.options import open_lakehouse
from lakehouse_assets.definitions import build_definitions
from sensors.run_once import catch_up, dagster_instance, run_datascan_once


@click.command()
@click.option(
    "--execute/--plan",
    default=True,
    show_default=True,
    help="Run the requested loads now (in this process) or only show the plan.",
)
@click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    default="WARNING",
    show_default=True,
    help="Dagster run log level on the console.",
)
def scan(execute: bool, log_level: str) -> None:
    """Run DataScan now and (by default) load everything it finds through ODS, DWD and ADS.

    Like the daemon, it then rebuilds what late data left stale (the propagate sensor) and what the
    automation conditions ask for, until nothing is left to do."""
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    settings = open_lakehouse().settings
    instance = dagster_instance(settings)
    defs = build_definitions()  # the resource reads the environment at run time: no settings in run config
    if not execute:
        plan = run_datascan_once(defs, instance, execute=False, log_level=log_level)
        if plan.requested == 0:
            click.echo(f"DataScan: {plan.skip_reason or 'nothing to do'}")
        else:
            click.echo(f"DataScan: {plan.requested} run(s) would be launched")
        return
    result = catch_up(defs, instance, log_level=log_level)
    requested, succeeded = result.by_source.get("datascan", [0, 0])
    if requested:
        click.echo(f"DataScan: {succeeded}/{requested} run(s) succeeded")
    else:
        click.echo(f"DataScan: {result.first_skip_reason or 'nothing to do'}")
    for source, label in (
        ("propagate", "rebuild(s) of partitions late data touched"),
        ("automation", "automation run(s)"),
    ):
        requested, succeeded = result.by_source.get(source, [0, 0])
        if requested:
            click.echo(f"then {succeeded}/{requested} {label} succeeded")
    if result.failed:
        raise click.ClickException("some runs failed; see `dagster` run logs in the UI (make dev)")
