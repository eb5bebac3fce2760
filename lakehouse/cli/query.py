"""Reading: SQL over the catalog, the tables, their partitions, the rejected files."""

from __future__ import annotations

import click

from lakehouse.cli.options import format_option, open_lakehouse, render


@click.command()
@click.argument("query")
@format_option
@click.option("--user", help="Run as this user (grants and masking apply); default: the owner.")
@click.option("--role", help="Run with only this one of the user's roles.")
@click.option("--project", help="Namespace that unqualified table names resolve in (the seed's project).")
@click.option(
    "--as-of",
    "as_of",
    metavar="SNAPSHOT_ID|TIMESTAMP",
    help="Read the tables as they were: a snapshot id of the one table read, or a time (ISO 8601, UTC "
    "unless it has an offset) for every table read. See lakehouse.snapshots.",
)
def sql(
    query: str, fmt: str, user: str | None, role: str | None, project: str | None, as_of: str | None
) -> None:
    """Run a read-only QUERY (DuckDB SQL) over the catalog's tables as namespace.table.

    System tables (owner only): lakehouse.snapshots, lakehouse.snapshot_pins, lakehouse.tables, lakehouse.files,
    lakehouse.rejected_files, lakehouse.conflicts, lakehouse.audit, lakehouse.policy_changes, lakehouse.roles, lakehouse.users,
    lakehouse.role_members, lakehouse.grants, lakehouse.masking_policies, lakehouse.masking_bindings."""
    result = open_lakehouse().sql(query, user=user, role=role, project=project, as_of=as_of)
    click.echo(render(result.to_pylist(), result.column_names, fmt))


@click.command()
@click.option("--namespace", help="Only this namespace.")
@format_option
def tables(namespace: str | None, fmt: str) -> None:
    """List the tables the lakehouse manages (format, origin, location)."""
    rows = [r.__dict__ for r in open_lakehouse().table_records(namespace)]
    click.echo(render(rows, ["namespace", "name", "format", "origin", "location"], fmt))


@click.command()
@click.argument("table")
@format_option
def partitions(table: str, fmt: str) -> None:
    """Partitions of TABLE (namespace.table) with their row counts, by the table's partition columns
    (dt, hh for hourly tables, dt for daily ones; one row for an unpartitioned table)."""
    result = open_lakehouse().partitions(table)
    click.echo(render(result.to_pylist(), result.column_names, fmt))


@click.command()
@format_option
def rejected(fmt: str) -> None:
    """Landed files DataScan rejected, with the reason (rows rejected by models: <table>_rejected)."""
    rows = open_lakehouse().rejected_files()
    click.echo(render(rows, ["path", "partition_key", "reason"], fmt))
