"""The `lakehouse` command line: thin commands over the `Lakehouse` facade.

Each group of commands is its own module; shared options and rendering are in options.py.
"""

from __future__ import annotations

import sys

import click

from lakehouse.cli.dashboard import dashboard
from lakehouse.cli.discovery import connection, datascan
from lakehouse.cli.generate import generate
from lakehouse.cli.governance import audit, policy, share
from lakehouse.cli.maintain import maintain
from lakehouse.cli.options import LazyGroup
from lakehouse.cli.query import partitions, rejected, sql, tables
from lakehouse.cli.serving import serve, user
from lakehouse.cli.spark import spark


class Commands(LazyGroup):
    """The commands, plus those of the Dagster wing, imported by name only when invoked."""

    lazy = {"scan": "sensors.scan_command:scan"}


@click.group(cls=Commands)
def main() -> None:
    """Open lakehouse on Dagster: DataScan, SQL models, Iceberg/Delta tables, DuckDB."""


for command in (
    sql,
    policy,
    share,
    audit,
    generate,
    tables,
    partitions,
    rejected,
    user,
    serve,
    dashboard,
    maintain,
    spark,
    connection,
    datascan,
):
    main.add_command(command)


if __name__ == "__main__":
    sys.exit(main())
