"""Governance state in the catalog database: roles, users, grants, masking policies, their bindings,
project settings, the trail of policy changes and the access audit (every governed query and export).

The tables have their own SQLAlchemy MetaData, created on the catalog's engine. Names follow the
seed (MaxCompute): a project is a catalog namespace, `CreateInstance` lets a principal run queries in
it, `List` lets it list its tables, `SELECT` on a table lets it read the table. Role, user and policy
names are case-insensitive (kept lower-case); a user's `RAM$` prefix is optional (`RAM$alice` and
`alice` are one user). The project owner is whoever calls without a user or role: everything,
unmasked (as the seed's project owner).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from resources.catalog import CatalogDB, arrow_schema, utc_now

if TYPE_CHECKING:
    import pyarrow as pa

    from resources.settings import LakehouseSettings
    from resources.table_store import TableId

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
    sa.Column("status", sa.String(16), nullable=False),  # ok | denied | error
    sa.Column("reason", sa.Text),
    sa.Column("statement", sa.Text),
)

MASKING_ENABLED_KEY = "odps.data.masking.policy.enable"
PROJECT_PRIVILEGES = {"createinstance": "CreateInstance", "list": "List"}
TABLE_PRIVILEGES = {"select": "SELECT"}
OWNER = "owner"


class PermissionDenied(PermissionError):
    """The principal may not do this; the message names the user, its roles and the table or project."""


def user_key(name: str) -> str:
    """The stored key of a user: lower-case, without the seed's `RAM$` prefix."""
    key = name.strip().lower()
    return key[4:] if key.startswith("ram$") else key


@dataclass(frozen=True)
class Principal:
    """Who is asking. The owner (no user, no role) is unrestricted and sees real values."""

    user: str | None = None
    """The user's name as given (None: the owner)."""
    roles: frozenset[str] = frozenset()
    """Effective roles: all the user's roles, or the one chosen with --role."""

    @property
    def is_owner(self) -> bool:
        return self.user is None and not self.roles

    @property
    def label(self) -> str:
        who = self.user or OWNER
        return f"{who} (role {', '.join(sorted(self.roles))})" if self.roles else who


@dataclass(frozen=True)
class Mask:
    policy: str
    function: str
    args: tuple[Any, ...]


@dataclass
class Access:
    """What a principal may see of one table: allowed or not, and its masked columns."""

    table: str
    masks: dict[str, Mask] = field(default_factory=dict)


class GovernanceDB:
    """Governance tables in the catalog database (same engine as CatalogDB)."""

    _created: set[str] = set()

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = CatalogDB(url).engine
        if url not in GovernanceDB._created:
            metadata.create_all(self.engine)
            GovernanceDB._created.add(url)

    # --- principals ------------------------------------------------------------------------
    def resolve(self, user: str | None, role: str | None) -> Principal:
        """The principal for --user/--role. Unknown users, unknown roles and roles the user does not
        hold are refused. A role alone (no user) is the owner acting as that role."""
        if user is None and role is None:
            return Principal()
        # A blank name is a mistake (or a request field left empty), never the owner: fail closed.
        if role is not None and not role.strip():
            raise PermissionDenied(
                "an empty role name is not a role (omit the role to use all of the user's)"
            )
        if user is not None and not user_key(user):
            raise PermissionDenied(f"user {user!r} is not a user name")
        with self.engine.connect() as conn:
            role_key = role.strip().lower() if role else None
            if (
                role_key
                and conn.execute(sa.select(roles_t.c.name).where(roles_t.c.name == role_key)).first() is None
            ):
                raise PermissionDenied(f"role {role!r} does not exist")
            if user is None:
                return Principal(None, frozenset({role_key} if role_key else set()))
            found = conn.execute(sa.select(users_t.c.name).where(users_t.c.name == user_key(user))).first()
            if found is None:
                raise PermissionDenied(f"user {user!r} does not exist (ADD USER it in a policy file)")
            held = {
                r
                for (r,) in conn.execute(
                    sa.select(members_t.c.role).where(members_t.c.user_name == user_key(user))
                )
            }
        if role_key:
            if role_key not in held:
                raise PermissionDenied(f"user {user!r} does not hold role {role!r}")
            return Principal(user, frozenset({role_key}))
        return Principal(user, frozenset(held))

    def _privileges(self, conn: sa.Connection, principal: Principal) -> set[tuple[str, str, str]]:
        """(privilege, object_kind, object_name) the principal holds through its roles or directly."""
        who = sa.or_(
            sa.and_(grants_t.c.principal_kind == "role", grants_t.c.principal.in_(sorted(principal.roles))),
            sa.and_(
                grants_t.c.principal_kind == "user",
                grants_t.c.principal == (user_key(principal.user) if principal.user else ""),
            ),
        )
        query = sa.select(grants_t.c.privilege, grants_t.c.object_kind, grants_t.c.object_name).where(who)
        return {(p, k, o) for p, k, o in conn.execute(query)}

    def masking_enabled(self, conn: sa.Connection, namespace: str) -> bool:
        value = conn.execute(
            sa.select(settings_t.c.value).where(
                settings_t.c.namespace == namespace, settings_t.c.key == MASKING_ENABLED_KEY
            )
        ).scalar()
        return value is None or value.lower() != "false"  # on unless switched off: fail closed

    def masks_for(self, conn: sa.Connection, table: TableId, roles: Iterable[str]) -> dict[str, Mask]:
        """column -> mask for these roles. Two different policies on one column for one session are
        refused (pick one role with --role) rather than guessed."""
        roles = set(roles)
        if not roles or not self.masking_enabled(conn, table.namespace):
            return {}
        query = (
            sa.select(bindings_t.c.column_name, policies_t)
            .join(policies_t, policies_t.c.name == bindings_t.c.policy)
            # Case-insensitive, like SQL names: a table re-created under another spelling keeps its masks.
            .where(
                sa.func.lower(bindings_t.c.namespace) == table.namespace.lower(),
                sa.func.lower(bindings_t.c.table_name) == table.name.lower(),
            )
            .order_by(bindings_t.c.column_name, policies_t.c.name)
        )
        masks: dict[str, Mask] = {}
        seen: dict[str, Mask] = {}  # by lower-case column name: `vin` and `VIN` are one SQL column
        for row in conn.execute(query):
            if not roles & set(json.loads(row.roles)):
                continue
            mask = Mask(row.name, row.function, tuple(json.loads(row.args)))
            previous = seen.get(row.column_name.lower())
            if previous and (previous.function, previous.args) != (mask.function, mask.args):
                raise PermissionDenied(
                    f"column {table}.{row.column_name} has two masking policies for roles "
                    f"{', '.join(sorted(roles))} ({previous.policy}, {mask.policy}); choose one role with --role"
                )
            if previous is None:
                seen[row.column_name.lower()] = mask
                masks[row.column_name] = mask
        return masks

    def authorize(self, principal: Principal, tables: Iterable[TableId]) -> dict[TableId, dict[str, Mask]]:
        """Masks per table, or PermissionDenied naming the first table the principal may not read."""
        from resources.table_store import TableId

        result: dict[TableId, dict[str, Mask]] = {}
        with self.engine.connect() as conn:
            held = self._privileges(conn, principal)
            for table in tables:
                if table.namespace == "lakehouse":
                    raise PermissionDenied(
                        f"{principal.label} may not read system table {table}: system tables are the owner's"
                    )
                if ("CreateInstance", "project", table.namespace) not in held:
                    raise PermissionDenied(
                        f"{principal.label} has no CreateInstance on project {table.namespace} "
                        f"(needed to query table {table})"
                    )
                if ("SELECT", "table", str(table)) not in held:
                    raise PermissionDenied(f"{principal.label} has no SELECT on table {table}")
                result[TableId(table.namespace, table.name)] = self.masks_for(conn, table, principal.roles)
        return result

    def listable_namespaces(self, principal: Principal) -> set[str]:
        with self.engine.connect() as conn:
            return {o for p, k, o in self._privileges(conn, principal) if p == "List" and k == "project"}

    # --- audit -----------------------------------------------------------------------------
    def record_access(
        self,
        principal: Principal,
        kind: str,
        tables: Iterable[Any],
        masks: dict[Any, dict[str, Mask]] | None,
        rows: int | None,
        status: str,
        reason: str | None = None,
        statement: str | None = None,
    ) -> None:
        masked = [
            f"{table}.{column}:{mask.function}"
            for table, columns in (masks or {}).items()
            for column, mask in sorted(columns.items())
        ]
        with self.engine.begin() as conn:
            conn.execute(
                sa.insert(access_t).values(
                    at=utc_now(),
                    user_name=principal.user or OWNER,
                    roles=",".join(sorted(principal.roles)),
                    kind=kind,
                    tables=",".join(str(t) for t in tables),
                    masked_columns=",".join(masked),
                    rows=rows,
                    status=status,
                    reason=reason,
                    statement=statement,
                )
            )

    # --- views for `policy show` and system tables -------------------------------------------
    def rows(self, table: sa.Table) -> list[dict[str, Any]]:
        order = list(table.primary_key) or list(table.columns)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(table).order_by(*order))]

    def as_arrow(self, table: sa.Table) -> pa.Table:
        import pyarrow as pa

        return pa.Table.from_pylist(self.rows(table), schema=arrow_schema(table))

    def policy_bindings(self, table: TableId) -> list[dict[str, Any]]:
        """Every binding on the table with its policy (for asset metadata)."""
        query = (
            sa.select(
                bindings_t.c.column_name,
                policies_t.c.name,
                policies_t.c.function,
                policies_t.c.args,
                policies_t.c.roles,
            )
            .join(policies_t, policies_t.c.name == bindings_t.c.policy)
            .where(bindings_t.c.namespace == table.namespace, bindings_t.c.table_name == table.name)
            .order_by(bindings_t.c.column_name, policies_t.c.name)
        )
        with self.engine.connect() as conn:
            enabled = self.masking_enabled(conn, table.namespace)
            return [
                {
                    "column": r.column_name,
                    "policy": r.name,
                    "function": f"{r.function}({', '.join(repr(a) for a in json.loads(r.args))})",
                    "roles": ", ".join(json.loads(r.roles)),
                    "enabled": enabled,
                }
                for r in conn.execute(query)
            ]

    def readers(self, table: TableId) -> list[str]:
        """Roles and users with SELECT on the table."""
        with self.engine.connect() as conn:
            query = sa.select(grants_t.c.principal_kind, grants_t.c.principal).where(
                grants_t.c.privilege == "SELECT",
                grants_t.c.object_kind == "table",
                grants_t.c.object_name == str(table),
            )
            return [f"{kind} {name}" for kind, name in conn.execute(query)]


def masking_metadata(table: TableId, settings: LakehouseSettings | None = None) -> dict[str, Any]:
    """Asset metadata: which columns of the table are masked, for which roles, and who may read it.

    Read when the code location loads (reload it after `lakehouse policy apply`). A catalog that does
    not exist yet, or cannot be read, gives no governance metadata rather than a broken code location."""
    import dagster as dg

    from resources.settings import ConfigError, LakehouseSettings

    try:
        settings = settings or LakehouseSettings.from_env()
    except ConfigError:
        return {}
    url = settings.catalog_uri
    if url.startswith("sqlite:///"):
        from pathlib import Path

        if not Path(url.removeprefix("sqlite:///")).exists():
            return {}
    try:
        gov = GovernanceDB(url)
        bindings = gov.policy_bindings(table)
        readers = gov.readers(table)
    except sa.exc.SQLAlchemyError:
        return {}
    lines = ["| column | masked for roles | function | policy |", "|---|---|---|---|"]
    lines += [f"| {b['column']} | {b['roles']} | {b['function']} | {b['policy']} |" for b in bindings]
    if bindings and not bindings[0]["enabled"]:
        lines.append(
            f"\nMasking is switched off for project {table.namespace} ({MASKING_ENABLED_KEY}=false)."
        )
    return {
        "governance/masked_columns": dg.MetadataValue.md(
            "\n".join(lines) if bindings else "no masked columns"
        ),
        "governance/masked_column_names": dg.MetadataValue.json(sorted({b["column"] for b in bindings})),
        "governance/readers": dg.MetadataValue.json(readers),
    }
