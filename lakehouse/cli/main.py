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
from lakehouse.cli.options import LakehouseGroup
from lakehouse.cli.query import partitions, rejected, sql, tables
from lakehouse.cli.serving import serve, user
from lakehouse.cli.spark import spark


class Commands(LakehouseGroup):
    """The commands, plus those of the Dagster wing, imported by name only when invoked."""

    lazy = {"scan": "sensors.scan_command:scan"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            import importlib

            module, attribute = self.lazy[name].split(":")
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, name)


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
