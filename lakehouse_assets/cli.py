"""The `lakehouse` command line: query, generate sample data, scan, list tables and rejections."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import sys
from typing import Any

import click

from resources.settings import ConfigError, LakehouseSettings


def _settings() -> LakehouseSettings:
    try:
        return LakehouseSettings.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _plain(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def render(rows: list[dict[str, Any]], columns: list[str], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([{k: _plain(v) for k, v in r.items()} for r in rows], ensure_ascii=False)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: _plain(v) for k, v in r.items()} for r in rows)
        return out.getvalue().rstrip("\n")
    from tabulate import tabulate

    return tabulate(
        [[_plain(r[c]) for c in columns] for r in rows],
        headers=columns,
        tablefmt="psql",
        disable_numparse=True,
    )


class _Group(click.Group):
    """Errors end as one line on stderr and a non-zero exit (LAKEHOUSE_DEBUG=1 shows the traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        import os

        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # the CLI's boundary: every failure becomes the one-line contract
            if os.environ.get("LAKEHOUSE_DEBUG"):
                raise
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise click.ClickException(
                f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            ) from None


@click.group(cls=_Group)
def main() -> None:
    """Open lakehouse on Dagster: DataScan, SQL models, Iceberg/Delta tables, DuckDB."""
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)


@main.command()
@click.argument("query")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True
)
@click.option("--user", help="Run as this user (grants and masking apply); default: the owner.")
@click.option("--role", help="Run with only this one of the user's roles.")
@click.option("--project", help="Namespace that unqualified table names resolve in (the seed's project).")
def sql(query: str, fmt: str, user: str | None, role: str | None, project: str | None) -> None:
    """Run a read-only QUERY (DuckDB SQL) over the catalog's tables as namespace.table.

    System tables (owner only): lakehouse.tables, lakehouse.files, lakehouse.rejected_files,
    lakehouse.conflicts, lakehouse.audit, lakehouse.policy_changes, lakehouse.roles, lakehouse.users,
    lakehouse.role_members, lakehouse.grants, lakehouse.masking_policies, lakehouse.masking_bindings."""
    from resources.lakehouse import Lakehouse

    result = Lakehouse(_settings()).sql(query, user=user, role=role, project=project)
    click.echo(render(result.to_pylist(), result.column_names, fmt))


@main.group()
def policy() -> None:
    """Roles, grants and data masking as code (MaxCompute's statements)."""


@policy.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--project", required=True, help="Namespace that unqualified table names resolve in.")
def policy_apply(file: str, project: str) -> None:
    """Apply the statements of FILE atomically (all or nothing); re-applying changes nothing."""
    from pathlib import Path

    from resources.lakehouse import Lakehouse
    from resources.policy import apply_policy

    text = Path(file).read_text(encoding="utf-8")
    report = apply_policy(Lakehouse(_settings()), text, project, source=file)
    for line, change in report.changes:
        click.echo(f"{file}:{line}: {change}")
    click.echo(f"{report.statements} statement(s), {len(report.changes)} change(s)")


SHOW_KINDS = {
    "grants": ("grants_t", ["principal_kind", "principal", "privilege", "object_kind", "object_name"]),
    "roles": ("roles_t", ["name", "created_at"]),
    "users": ("users_t", ["display_name", "name", "created_at"]),
    "members": ("members_t", ["role", "user_name"]),
    "policies": ("policies_t", ["name", "function", "args", "roles"]),
    "bindings": ("bindings_t", ["policy", "namespace", "table_name", "column_name"]),
    "changes": ("changes_t", ["at", "actor", "source", "change"]),
}


@policy.command("show")
@click.argument("kind", type=click.Choice([*SHOW_KINDS, "masking"]), default="grants")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True
)
def policy_show(kind: str, fmt: str) -> None:
    """SHOW GRANTS (default) / ROLES / USERS / MEMBERS / POLICIES / BINDINGS / CHANGES, or MASKING
    (the seed's SHOW MASKING POLICIES: every policy with the columns it is bound to)."""
    from resources import governance as g

    gov = g.GovernanceDB(_settings().catalog_uri)
    if kind == "masking":
        bindings: dict[str, list[str]] = {}
        for b in gov.rows(g.bindings_t):
            bindings.setdefault(b["policy"], []).append(
                f"{b['namespace']}.{b['table_name']}.{b['column_name']}"
            )
        rows = [{**p, "bound_to": ", ".join(bindings.get(p["name"], []))} for p in gov.rows(g.policies_t)]
        click.echo(render(rows, ["name", "function", "args", "roles", "bound_to"], fmt))
        return
    table_name, columns = SHOW_KINDS[kind]
    click.echo(render(gov.rows(getattr(g, table_name)), columns, fmt))


@main.group()
def share() -> None:
    """Secure sharing: masked, granted data for another team (e.g. Spark)."""


@share.command("export")
@click.option("--user", required=True, help="Export as this user: its grants and masks apply.")
@click.option("--role", help="Only this one of the user's roles.")
@click.option("--table", "table", required=True, help="namespace.table")
@click.option("--to", "target", required=True, help="Local folder or s3://bucket/prefix (must be empty).")
@click.option("--overwrite", is_flag=True, help="Replace a previous share at the target.")
def share_export(user: str, role: str | None, table: str, target: str, overwrite: bool) -> None:
    """Write the table as USER sees it (masked) as Parquet files plus _manifest.json."""
    from resources.lakehouse import Lakehouse
    from resources.share import export_share

    manifest = export_share(Lakehouse(_settings()), table, target, user=user, role=role, overwrite=overwrite)
    masked = ", ".join(f"{c['name']}:{c['masking']}" for c in manifest["columns"] if c["masking"]) or "none"
    click.echo(
        f"exported {manifest['rows']} rows of {manifest['table']} in {len(manifest['files'])} file(s) to {target}"
    )
    click.echo(f"masked columns: {masked}")


@main.command()
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True
)
def audit(limit: int, fmt: str) -> None:
    """The latest governed queries, table reads and exports (who, role, tables, rows, outcome).

    The whole log is the system table lakehouse.audit (owner only)."""
    import sqlalchemy as sa

    from resources import governance as g

    gov = g.GovernanceDB(_settings().catalog_uri)
    with gov.engine.connect() as conn:
        query = sa.select(g.access_t).order_by(g.access_t.c.id.desc()).limit(limit)
        rows = [dict(r._mapping) for r in conn.execute(query)]
    columns = ["at", "user_name", "roles", "kind", "tables", "masked_columns", "rows", "status", "reason"]
    click.echo(render(rows, columns, fmt))


@main.group()
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
    from lakehouse_assets.generate import generate_iov
    from resources.object_store import open_object_store
    from resources.settings import _as_uri

    settings = _settings()
    store = open_object_store(_as_uri(landing) if landing else settings.landing_uri, settings.s3)
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
    from lakehouse_assets.generate_game import generate_game
    from resources.object_store import open_object_store
    from resources.settings import _as_uri

    settings = _settings()
    store = open_object_store(_as_uri(landing) if landing else settings.landing_uri, settings.s3)
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


@main.command()
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
    from lakehouse_assets.definitions import build_definitions
    from lakehouse_assets.oneshot import catch_up, dagster_instance, run_datascan_once

    settings = _settings()
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


@main.command()
@click.option("--namespace", help="Only this namespace.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True
)
def tables(namespace: str | None, fmt: str) -> None:
    """List the tables the lakehouse manages (format, origin, location)."""
    from resources.catalog import CatalogDB

    rows = [r.__dict__ for r in CatalogDB(_settings().catalog_uri).list_tables(namespace)]
    click.echo(render(rows, ["namespace", "name", "format", "origin", "location"], fmt))


@main.command()
@click.argument("table")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True
)
def partitions(table: str, fmt: str) -> None:
    """Partitions of TABLE (namespace.table) with their row counts."""
    from resources.engine import quote_ident
    from resources.lakehouse import Lakehouse
    from resources.table_store import TableId

    ident = TableId.parse(table)
    query = (
        f"select dt, hh, count(*) as rows from {quote_ident(ident.namespace)}.{quote_ident(ident.name)} "
        "group by dt, hh order by dt, hh"
    )
    result = Lakehouse(_settings()).sql(query)
    click.echo(render(result.to_pylist(), result.column_names, fmt))


@main.command()
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table", show_default=True
)
def rejected(fmt: str) -> None:
    """Landed files DataScan rejected, with the reason (rows rejected by models: <table>_rejected)."""
    from resources.catalog import CatalogDB

    rows = CatalogDB(_settings().catalog_uri).file_rows(status="rejected")
    click.echo(render(rows, ["path", "partition_key", "reason"], fmt))


if __name__ == "__main__":
    sys.exit(main())
