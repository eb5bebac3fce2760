"""The governance tables in the catalog database (their own SQLAlchemy MetaData): roles, users, role
members, grants, masking policies and bindings, project settings, the policy change trail and the
access audit."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

roles_t = sa.Table(
    "gov_roles",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
)
users_t = sa.Table(
    "gov_users",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("display_name", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
)
members_t = sa.Table(
    "gov_role_members",
    metadata,
    sa.Column("role", sa.String(255), primary_key=True),
    sa.Column("user_name", sa.String(255), primary_key=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
)
grants_t = sa.Table(
    "gov_grants",
    metadata,
    sa.Column("principal_kind", sa.String(8), primary_key=True),  # role | user
    sa.Column("principal", sa.String(255), primary_key=True),
    sa.Column("privilege", sa.String(32), primary_key=True),  # CreateInstance | List | SELECT
    sa.Column("object_kind", sa.String(8), primary_key=True),  # project | table
    sa.Column("object_name", sa.String(511), primary_key=True),  # namespace | namespace.table
    sa.Column("created_at", sa.DateTime, nullable=False),
)
policies_t = sa.Table(
    "gov_masking_policies",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("function", sa.String(64), nullable=False),
    sa.Column("args", sa.Text, nullable=False),  # JSON list
    sa.Column("roles", sa.Text, nullable=False),  # JSON list, sorted
    sa.Column("created_at", sa.DateTime, nullable=False),
)
bindings_t = sa.Table(
    "gov_masking_bindings",
    metadata,
    sa.Column("policy", sa.String(255), primary_key=True),
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("table_name", sa.String(255), primary_key=True),
    sa.Column("column_name", sa.String(255), primary_key=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
)
settings_t = sa.Table(
    "gov_project_settings",
    metadata,
    sa.Column("namespace", sa.String(255), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
changes_t = sa.Table(
    "gov_policy_changes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("source", sa.Text, nullable=False),  # FILE:LINE
    sa.Column("statement", sa.Text, nullable=False),
    sa.Column("change", sa.Text, nullable=False),
)
access_t = sa.Table(
    "gov_access_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("user_name", sa.String(255), nullable=False),  # 'owner' when called without a user
    sa.Column("roles", sa.Text, nullable=False),  # comma-separated effective roles
    sa.Column("kind", sa.String(16), nullable=False),  # query | read_table | export
    sa.Column("tables", sa.Text, nullable=False),
    sa.Column("masked_columns", sa.Text, nullable=False),  # table.column:FUNCTION, ...
    sa.Column("rows", sa.BigInteger),
    sa.Column("status", sa.String(16), nullable=False),  # started | ok | denied | error
    sa.Column("reason", sa.Text),
    sa.Column("statement", sa.Text),
    # The tamper-evident chain (see governance/audit.py); NULL on rows written before it existed.
    sa.Column("finished_at", sa.DateTime),
    sa.Column("prev_id", sa.BigInteger),  # the row this one follows: unique, so the chain cannot fork
    sa.Column("prev_hash", sa.String(64)),
    sa.Column("row_hash", sa.String(64)),  # HMAC of the attempt (who, what, when) and prev_hash
    sa.Column("end_hash", sa.String(64)),  # HMAC of the outcome and row_hash
    sa.Index("ux_gov_access_log_prev_id", "prev_id", unique=True),
)
"""The access audit: one row per governed attempt, written before it runs (status started) and
completed after. A killed query leaves its row as started."""
access_ends_t = sa.Table(
    "gov_access_ends",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("attempt_id", sa.BigInteger, nullable=False),  # the gov_access_log row completed
    sa.Column("prev_id", sa.BigInteger, nullable=False),  # the completion this one follows (0: none)
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("entry_hash", sa.String(64), nullable=False),  # HMAC of the attempt's end_hash and prev_hash
    sa.Index("ux_gov_access_ends_attempt", "attempt_id", unique=True),
    sa.Index("ux_gov_access_ends_prev_id", "prev_id", unique=True),
)
"""The completions of the audit's attempts, a chain of their own: completing an attempt appends an
entry here in the same transaction, so an attempt turned back into 'started' still has one (and
deleting it breaks this chain). See governance/audit.py."""
credentials_t = sa.Table(
    "gov_credentials",
    metadata,
    sa.Column("user_name", sa.String(255), primary_key=True),  # a user's key, or 'owner'
    sa.Column("plugin", sa.String(64), nullable=False),  # mysql_native_password
    sa.Column("verifier", sa.String(128), nullable=False),  # hex SHA1(SHA1(password)), never the password
    sa.Column("updated_at", sa.DateTime, nullable=False),
)
"""Passwords for the serving surfaces (`lakehouse serve`, `lakehouse dashboard`): only a verifier.
MySQL's native-password handshake needs exactly this one: the client proves it knows SHA1(password)
against a fresh nonce, so neither the password nor the verifier crosses the wire."""
