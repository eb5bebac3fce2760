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

builds_t = sa.Table(
    "lakehouse_builds",
    metadata,
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("table_name", sa.String(255), primary_key=True),
    sa.Column("partition_key", sa.String(32), primary_key=True),
    sa.Column("token", sa.String(64), nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("rows", sa.BigInteger),
    sa.Column("built_at", sa.DateTime, nullable=False),
)
"""What each built table partition was built from (partition_key '' for an unpartitioned table).
`inputs` is the JSON of the input versions it read (for an ODS partition the digest of its landed
files; for a model the tokens of the input partitions it read, and its code); `token` is the
version of its content, which its readers record in turn. A partition is stale when what it would
read now differs from `inputs`, or when it has no row: written only after the table commit, so a
crash leaves work to redo, never work falsely done. status: ok | blocked (a blocking check failed;
readers wait until it changes)."""

key_changes_t = sa.Table(
    "lakehouse_key_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("namespace", sa.String(255), nullable=False),
    sa.Column("table_name", sa.String(255), nullable=False),
    sa.Column("from_token", sa.String(64), nullable=False),
    sa.Column("to_token", sa.String(64)),
    sa.Column("keys", sa.Text),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
    sa.Index("ix_lakehouse_key_changes_from", "namespace", "table_name", "from_token"),
)
"""How an unpartitioned table changed from one build to the next: per `changes_by` column the key
values whose rows differ (JSON), so hourly readers rebuild only the hours holding them. A row with
no to_token is a rewrite in progress: a crash there leaves it, and the next transition from the
same build then counts every key as changed (keys NULL = all)."""

workers_t = sa.Table(
    "lakehouse_workers",
    metadata,
    sa.Column("worker_id", sa.String(64), primary_key=True),
    sa.Column("namespace", sa.String(255), nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("heartbeat_at", sa.DateTime, nullable=False),
)
"""Processes reconciling a namespace (or waiting to): a heartbeat every few seconds. A worker is
dead when its heartbeat is old or, on the same host, its process is gone (SIGKILL, OOM)."""

leases_t = sa.Table(
    "lakehouse_leases",
    metadata,
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("worker_id", sa.String(64), nullable=False),
    sa.Column("acquired_at", sa.DateTime, nullable=False),
)
"""One writer per namespace: the worker that holds its lease. A dead holder's lease is taken over."""

failures_t = sa.Table(
    "lakehouse_build_failures",
    metadata,
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("table_name", sa.String(255), primary_key=True),
    sa.Column("partition_key", sa.String(32), primary_key=True),
    sa.Column("wanted", sa.String(64), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text, nullable=False),
    sa.Column("failed_at", sa.DateTime, nullable=False),
)
"""Partitions whose build raised, with the inputs it was asked to build from (`wanted`): retried up to
a few times, then left until the inputs change again (the error stays here and in the run log)."""

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
hour now holds, so a daily reader knows which hours it reads for a day (and their versions)."""

snapshot_pins_t = sa.Table(
    "lakehouse_snapshot_pins",
    metadata,
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("table_name", sa.String(255), primary_key=True),
    sa.Column("snapshot_id", sa.String(64), primary_key=True),
    sa.Column("pinned_by", sa.String(255), primary_key=True),
    sa.Column("pinned_at", sa.DateTime, nullable=False),
)
"""Snapshots something depends on (a trained model read them: pinned_by `ml/<model>`): table
maintenance (lakehouse/maintenance/) and the automatic bounded expiry of Iceberg tables never expire
them. Removed with `lakehouse maintain --unpin NS.TABLE@SNAPSHOT`; listed as lakehouse.snapshot_pins."""

connections_t = sa.Table(
    "lakehouse_connections",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("endpoint", sa.Text, nullable=False),
    sa.Column("region", sa.String(64)),
    sa.Column("role_arn", sa.Text),
    sa.Column("access_key_env", sa.String(255)),
    sa.Column("secret_key_env", sa.String(255)),
    sa.Column("sts_endpoint", sa.Text),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("allow_http", sa.Integer),
)
"""The seed's CONNECTION: a named way to reach an object store (endpoint, region, a role to assume).
No secret is ever stored: only the names of the environment variables that hold the keys.
allow_http: 1 when `connection add --allow-http` allowed plain http to a host that is not loopback
(NULL or 0: refused when used). Every row is checked again when used (lakehouse/landing/connections.py)."""

datascan_tasks_t = sa.Table(
    "lakehouse_datascan_tasks",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("location", sa.Text, nullable=False),
    sa.Column("namespace", sa.String(255), nullable=False),
    sa.Column("connection", sa.String(255)),
    sa.Column("interval_seconds", sa.Integer, nullable=False),
    sa.Column("table_prefix", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)
"""DataScan tasks (the seed's DataScan: task, cycle, connection, location, target schema). The
default task, LAKEHOUSE_LANDING_URI with namespaces as folders, is not stored: it is the settings."""

datascan_tables_t = sa.Table(
    "lakehouse_datascan_tables",
    metadata,
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("task", sa.String(255), nullable=False),
    sa.Column("layout", sa.String(16), nullable=False),
    sa.Column("folder", sa.Text, nullable=False),
    sa.Column("claimed_at", sa.DateTime, nullable=False),
)
"""Which DataScan task registered each ODS table, from which folder, in which layout (hourly, daily,
flat). The first task to find a table holds it; another task finding the same name is a conflict."""

datascan_conflicts_t = sa.Table(
    "lakehouse_datascan_conflicts",
    metadata,
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("task", sa.String(255), primary_key=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("first_seen", sa.DateTime, nullable=False),
)
"""Tables a DataScan task found that another task holds: one row per (table, task), reported once."""
