"""Sample raw data for both seeds, written into the landing zone."""

from __future__ import annotations

import datetime as dt

import click

from lakehouse.cli.options import open_lakehouse


@click.group()
def generate() -> None:
    """Write sample raw data into the landing zone."""


@generate.command("iov")
@click.option(
    "--landing", help="Landing location (default: LAKEHOUSE_LANDING_URI or $LAKEHOUSE_HOME/landing)."
)
@click.option("--hours", type=click.IntRange(1), default=6, show_default=True)
@click.option("--vehicles", type=click.IntRange(1), default=300, show_default=True)
@click.option("--start", default="2025-09-17T18", show_default=True, help="First hour, YYYY-MM-DDTHH.")
@click.option(
    "--interval-seconds",
    type=click.IntRange(1),
    default=30,
    show_default=True,
    help="Seconds between two reports of a vehicle.",
)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--dirty-fraction", type=click.FloatRange(0, 1), default=0.02, show_default=True)
@click.option("--junk/--no-junk", default=True, show_default=True, help="Also write junk and corrupt files.")
@click.option(
    "--format",
    "file_format",
    type=click.Choice(["parquet", "orc", "mixed"]),
    default="mixed",
    show_default=True,
)
@click.option("--files-per-hour", type=click.IntRange(1), default=1, show_default=True)
def generate_iov_cmd(
    landing: str | None,
    hours: int,
    vehicles: int,
    start: str,
    interval_seconds: int,
    seed: int,
    dirty_fraction: float,
    junk: bool,
    file_format: str,
    files_per_hour: int,
) -> None:
    """Vehicle GPS reports in the seed's ods_vehicle_gps_raw schema."""
    from lakehouse.demo.iov import generate_iov

    lh = open_lakehouse()
    store = lh.object_store(landing) if landing else lh.landing
    try:
        first = dt.datetime.strptime(start, "%Y-%m-%dT%H")
    except ValueError:
        raise click.BadParameter(f"{start!r} is not YYYY-MM-DDTHH", param_hint="--start") from None
    summary = generate_iov(
        store,
        hours=hours,
        vehicles=vehicles,
        start=first,
        interval_seconds=interval_seconds,
        seed=seed,
        dirty_fraction=dirty_fraction,
        junk=junk,
        file_format=file_format,
        files_per_hour=files_per_hour,
    )
    click.echo(
        f"wrote {summary.rows} rows ({summary.dirty_rows} dirty) in {len(summary.files)} files "
        f"and {len(summary.junk)} junk files under {store.uri}"
    )


@generate.command("game")
@click.option(
    "--landing", help="Landing location (default: LAKEHOUSE_LANDING_URI or $LAKEHOUSE_HOME/landing)."
)
@click.option("--days", type=click.IntRange(1), default=8, show_default=True)
@click.option("--users", type=click.IntRange(1), default=2_000, show_default=True)
@click.option("--events-per-day", type=click.IntRange(1), default=10_000, show_default=True)
@click.option(
    "--hours-per-day",
    type=click.IntRange(1, 24),
    default=1,
    show_default=True,
    help="Event files (landing hours) per day; 1 = one daily drop at hh=00.",
)
@click.option("--start", default="2025-09-01", show_default=True, help="First day, YYYY-MM-DD.")
@click.option("--seed", type=int, default=11, show_default=True)
@click.option(
    "--profiles/--no-profiles", default=True, show_default=True, help="Also write the profiles file."
)
@click.option(
    "--tag", default="", help="Suffix for file names, so a second batch adds files instead of replacing."
)
@click.option(
    "--cohort",
    type=click.IntRange(0),
    default=0,
    show_default=True,
    help="Which players are active each day: another cohort brings other players (for late batches).",
)
def generate_game_cmd(
    landing: str | None,
    days: int,
    users: int,
    events_per_day: int,
    hours_per_day: int,
    start: str,
    seed: int,
    profiles: bool,
    tag: str,
    cohort: int,
) -> None:
    """Player profiles and events in the game seed's raw types (binary text, mixed timestamps, late events)."""
    from lakehouse.demo.game import generate_game

    lh = open_lakehouse()
    store = lh.object_store(landing) if landing else lh.landing
    try:
        first = dt.date.fromisoformat(start)
    except ValueError:
        raise click.BadParameter(f"{start!r} is not YYYY-MM-DD", param_hint="--start") from None
    summary = generate_game(
        store,
        days=days,
        users=users,
        events_per_day=events_per_day,
        hours_per_day=hours_per_day,
        start=first,
        seed=seed,
        with_profiles=profiles,
        tag=tag,
        cohort=cohort,
    )
    click.echo(
        f"wrote {summary.profile_rows} profile rows and {summary.event_rows} events "
        f"in {len(summary.files)} files under {store.uri}"
    )
