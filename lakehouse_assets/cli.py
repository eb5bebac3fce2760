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
def sql(query: str, fmt: str) -> None:
    """Run a read-only QUERY (DuckDB SQL) over the catalog's tables as namespace.table.

    System tables: lakehouse.tables, lakehouse.files, lakehouse.rejected_files, lakehouse.conflicts."""
    from resources.lakehouse import Lakehouse

    result = Lakehouse(_settings()).sql(query)
    click.echo(render(result.to_pylist(), result.column_names, fmt))


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
    """Run one DataScan tick now and (by default) load everything it finds through ODS, DWD and ADS."""
    from lakehouse_assets.definitions import build_definitions
    from lakehouse_assets.oneshot import dagster_instance, run_datascan_once

    settings = _settings()
    instance = dagster_instance(settings)
    defs = build_definitions()  # the resource reads the environment at run time: no settings in run config
    result = run_datascan_once(defs, instance, execute=execute, log_level=log_level)
    if result.requested == 0:
        click.echo(f"DataScan: {result.skip_reason or 'nothing to do'}")
        return
    if not execute:
        click.echo(f"DataScan: {result.requested} run(s) would be launched")
        return
    click.echo(f"DataScan: {result.succeeded}/{result.requested} run(s) succeeded")
    if result.succeeded != result.requested:
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
