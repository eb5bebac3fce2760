"""The `lakehouse` command line: thin commands over the `Lakehouse` facade.

Each group of commands is its own module; shared options and rendering are in options.py.
"""

from __future__ import annotations

import sys

import click

from lakehouse.cli.generate import generate
from lakehouse.cli.governance import audit, policy, share
from lakehouse.cli.options import LakehouseGroup
from lakehouse.cli.query import partitions, rejected, sql, tables
from lakehouse.cli.scan import scan


@click.group(cls=LakehouseGroup)
def main() -> None:
    """Open lakehouse on Dagster: DataScan, SQL models, Iceberg/Delta tables, DuckDB."""


for command in (sql, policy, share, audit, generate, scan, tables, partitions, rejected):
    main.add_command(command)


if __name__ == "__main__":
    sys.exit(main())
