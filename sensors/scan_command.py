"""`lakehouse scan` and `lakehouse datascan run TASK`: DataScan now, in this process, and what it
asks for (the daemon's work, once).

The commands that drive Dagster, so they live in the Dagster wing; `lakehouse/cli/main.py` and
`lakehouse/cli/discovery.py` load them by name only when invoked (`LazyGroup`), and every other
command runs without Dagster.
"""

from __future__ import annotations

import warnings

import click
import dagster as dg

from lakehouse.cli.options import open_lakehouse
from lakehouse_assets.definitions import build_definitions
from sensors.datascan import TaskFailed
from sensors.run_once import CatchUpResult, catch_up, dagster_instance, datascan_sensors, run_sensor_once

LOG_LEVEL = click.option(
    "--log-level",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]),
    default="WARNING",
    show_default=True,
    help="Dagster run log level on the console.",
)


def _quiet() -> None:
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)


@click.command()
@click.option(
    "--execute/--plan",
    default=True,
    show_default=True,
    help="Run the requested loads now (in this process) or only show the plan.",
)
@LOG_LEVEL
def scan(execute: bool, log_level: str) -> None:
    """Run DataScan now and (by default) build everything stale: ODS, DWD, DWS and ADS.

    Like the daemon, one reconcile run per namespace with work, until nothing is stale; a namespace
    another process is reconciling is waited for, then planned again."""
    _quiet()
    settings = open_lakehouse().settings
    instance = dagster_instance(settings)
    defs = build_definitions()  # the resource reads the environment at run time: no settings in run config
    if not execute:
        requested, skipped = 0, None
        errors = []
        for sensor in datascan_sensors(defs):
            try:
                plan = run_sensor_once(defs, instance, sensor, execute=False, log_level=log_level)
            except TaskFailed as exc:  # one task's connection failing does not hide the others' plans
                errors.append(str(exc))
                continue
            requested += plan.requested
            skipped = skipped or plan.skip_reason
        for error in errors:
            click.echo(f"error: {error}", err=True)
        if requested == 0:
            click.echo(f"DataScan: {skipped or 'nothing to do'}")
        else:
            click.echo(f"DataScan: {requested} reconcile run(s) would be launched")
        return
    report("DataScan", catch_up(defs, instance, log_level=log_level))


def report(label: str, result: CatchUpResult) -> None:
    """What a catch-up did, as `lakehouse scan` and `lakehouse datascan run` print it; failures exit 1."""
    if result.waited_seconds >= 1:
        click.echo(f"waited {result.waited_seconds:.0f}s for a reconcile run of another process")
    if result.requested:
        built = sum(result.built.values())
        tables = ", ".join(f"{name} {n}" for name, n in sorted(result.built.items()))
        click.echo(
            f"{label}: {result.succeeded}/{result.requested} reconcile run(s) succeeded, "
            f"{built} partition(s) built" + (f" ({tables})" if tables else "")
        )
    else:
        click.echo(f"{label}: {result.first_skip_reason or 'nothing to do'}")
    for error in result.errors:
        click.echo(f"error: {error}", err=True)
    if result.failed:
        raise click.ClickException("some runs failed; see `dagster` run logs in the UI (make dev)")
    if result.errors:
        raise click.ClickException(f"{len(result.errors)} DataScan task(s) could not be listed (above)")


@click.command("run")
@click.argument("task")
@LOG_LEVEL
def datascan_run(task: str, log_level: str) -> None:
    """Run task TASK now: list its location and build everything stale in its namespace."""
    from lakehouse.landing.tasks import TaskError, find_task

    _quiet()
    lh = open_lakehouse()
    try:
        found = find_task(lh, task)
    except TaskError as exc:
        raise click.ClickException(str(exc)) from None
    instance = dagster_instance(lh.settings)
    result = catch_up(build_definitions(), instance, log_level=log_level, sensors=[found.sensor_name])
    if result.errors:
        raise click.ClickException(result.errors[0])
    report(f"DataScan {task}", result)
