"""The lakehouse's bookkeeping tables in the catalog database (their own SQLAlchemy MetaData)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

tables_t = sa.Table(
    "lakehouse_tables",
    metadata,
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

files_t = sa.Table(
    "lakehouse_files",
    metadata,
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("namespace", sa.String(255)),
    sa.Column("table_name", sa.String(255)),
    sa.Column("partition_key", sa.String(32)),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("fingerprint", sa.String(255), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("rows", sa.BigInteger),
    sa.Column("reason", sa.Text),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_lakehouse_files_table_partition", "namespace", "table_name", "partition_key"),
)

conflicts_t = sa.Table(
    "lakehouse_conflicts",
    metadata,
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("first_seen", sa.DateTime, nullable=False),
)

stale_t = sa.Table(
    "lakehouse_stale",
    metadata,
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("table_name", sa.String(255), primary_key=True),
    sa.Column("partition_key", sa.String(32), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("done_version", sa.BigInteger, nullable=False, default=0),
    sa.Column("reason", sa.Text),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
"""Partitions of model tables whose inputs changed: the propagate sensor rebuilds them.
partition_key is '' for an unpartitioned table. version grows with every change and never goes back;
a rebuild records the version it saw when it started as done_version, so one that started before the
latest change leaves the partition stale (version > done_version)."""

partition_days_t = sa.Table(
    "lakehouse_partition_days",
    metadata,
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("table_name", sa.String(255), primary_key=True),
    sa.Column("partition_key", sa.String(32), primary_key=True),
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("rows", sa.BigInteger, nullable=False),
)
"""Which days (of a model's day_index column) each hourly partition holds: the days a rewrite of the
hour changes (those it held before and after), which are then marked stale for daily readers."""
