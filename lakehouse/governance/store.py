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

from lakehouse.storage.catalog import CatalogDB, arrow_schema, schema_change

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.core.ids import TableId
    from lakehouse.core.settings import LakehouseSettings

from lakehouse.governance.schema import (  # noqa: F401 - the tables are part of the store's interface
    access_t,
    bindings_t,
    changes_t,
    grants_t,
    members_t,
    metadata,
    policies_t,
    roles_t,
    settings_t,
    users_t,
)

POLICY_VIEWS: dict[str, tuple[sa.Table | None, list[str]]] = {
    "grants": (grants_t, ["principal_kind", "principal", "privilege", "object_kind", "object_name"]),
    "roles": (roles_t, ["name", "created_at"]),
    "users": (users_t, ["display_name", "name", "created_at"]),
    "members": (members_t, ["role", "user_name"]),
    "policies": (policies_t, ["name", "function", "args", "roles"]),
    "bindings": (bindings_t, ["policy", "namespace", "table_name", "column_name"]),
    "changes": (changes_t, ["at", "actor", "source", "change"]),
    "masking": (None, ["name", "function", "args", "roles", "bound_to"]),
}
"""`lakehouse policy show KIND`: the table shown and its columns (masking joins policies and bindings)."""
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


RESERVED_USER_KEYS = {"", OWNER}
"""'' would be everyone's fallback key; 'owner' is how the audit names the project owner."""


def audit_name(typed: object) -> str:
    """How the audit names a user or role name that is none: escaped, marked and cut to a bounded
    length, so it never reads like a real name (names have no quotes or colons) or the owner."""
    text = ascii(typed)
    return f"unknown:{text[:200]}{'...' if len(text) > 200 else ''}"


@dataclass(frozen=True)
class Principal:
    """Who is asking. The owner (no user, no role) is unrestricted and sees real values."""

    user: str | None = None
    """The user's stored name, one spelling per user (None: the owner)."""
    roles: frozenset[str] = frozenset()
    """Effective roles for privileges: all the user's roles, or the one chosen with --role."""
    held: frozenset[str] = frozenset()
    """Every role the user holds: masks bound to any of them apply, whatever --role selects."""

    @property
    def mask_roles(self) -> frozenset[str]:
        return self.roles | self.held

    @property
    def audit_user(self) -> str:
        return self.user or OWNER

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


def _add_missing_columns(engine: sa.Engine, table: sa.Table) -> None:
    """Columns added to a table after catalogs were created with it (nullable, so old rows stay
    valid), and its indexes: a catalog from an earlier release upgrades in place."""
    with schema_change(engine) as conn:
        have = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
        for column in table.columns:
            if column.name not in have:
                kind = column.type.compile(dialect=engine.dialect)
                conn.execute(sa.text(f'alter table {table.name} add column "{column.name}" {kind}'))
        for index in table.indexes:
            index.create(conn, checkfirst=True)


class GovernanceDB:
    """Governance tables in the catalog database (same engine as CatalogDB)."""

    _created: set[str] = set()

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = CatalogDB(url).engine
        if url not in GovernanceDB._created:
            with schema_change(self.engine) as conn:
                metadata.create_all(conn)
            _add_missing_columns(self.engine, access_t)
            GovernanceDB._created.add(url)

    # --- principals ------------------------------------------------------------------------
    def stored_user(self, typed: str) -> str | None:
        """The stored spelling of the user `typed` names, or None."""
        if not isinstance(typed, str) or len(typed) > 255:
            return None
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(users_t.c.display_name).where(users_t.c.name == user_key(typed)))
            return found.scalar()

    def stored_role(self, typed: str) -> str | None:
        """The stored name of the role `typed` names, or None."""
        if not isinstance(typed, str) or len(typed) > 255:
            return None
        with self.engine.connect() as conn:
            found = conn.execute(sa.select(roles_t.c.name).where(roles_t.c.name == typed.strip().lower()))
            return found.scalar()

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
        if user is not None and user_key(user) in RESERVED_USER_KEYS:
            raise PermissionDenied(f"user {user!r} is not a user name (blank, or reserved for the owner)")
        with self.engine.connect() as conn:
            role_key = role.strip().lower() if role else None
            if user is None:  # the owner previewing a role: the owner may know which roles exist
                exists = sa.select(roles_t.c.name).where(roles_t.c.name == role_key)
                if role_key and conn.execute(exists).first() is None:
                    raise PermissionDenied(f"role {role!r} does not exist")
                return Principal(None, frozenset({role_key} if role_key else set()))
            found = conn.execute(
                sa.select(users_t.c.display_name).where(users_t.c.name == user_key(user))
            ).first()
            if found is None:
                raise PermissionDenied(f"user {user!r} does not exist (ADD USER it in a policy file)")
            held = {
                r
                for (r,) in conn.execute(
                    sa.select(members_t.c.role).where(members_t.c.user_name == user_key(user))
                )
            }
        name = str(found.display_name)  # one spelling per user, whatever case or spaces were typed
        if role_key:
            if role_key not in held:
                raise PermissionDenied(f"user {name!r} does not hold role {role!r}")
            # --role narrows privileges only: masks of every held role still apply
            return Principal(name, frozenset({role_key}), frozenset(held))
        return Principal(name, frozenset(held), frozenset(held))

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
        """column -> mask for these roles (all the user holds). Two different policies on one column
        for one user are refused rather than guessed: the owner must reconcile them."""
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
                    f"{', '.join(sorted(roles))} ({previous.policy}, {mask.policy}); the owner must keep one"
                )
            if previous is None:
                seen[row.column_name.lower()] = mask
                masks[row.column_name] = mask
        return masks

    def authorize(self, principal: Principal, tables: Iterable[TableId]) -> dict[TableId, dict[str, Mask]]:
        """Masks per table, or PermissionDenied naming the first table the principal may not read."""
        from lakehouse.core.ids import TableId

        result: dict[TableId, dict[str, Mask]] = {}
        with self.engine.connect() as conn:
            # Names are case-insensitive, and a refusal names the table as asked, lower-cased: never
            # the catalog's spelling, which would tell that the table exists.
            held = {(p, k, o.lower()) for p, k, o in self._privileges(conn, principal)}
            for table in tables:
                asked = TableId(table.namespace.lower(), table.name.lower())
                if asked.namespace == "lakehouse":
                    raise PermissionDenied(
                        f"{principal.label} may not read system table {asked}: system tables are the owner's"
                    )
                if ("CreateInstance", "project", asked.namespace) not in held:
                    raise PermissionDenied(
                        f"{principal.label} has no CreateInstance on project {asked.namespace} "
                        f"(needed to query table {asked})"
                    )
                if ("SELECT", "table", str(asked)) not in held:
                    raise PermissionDenied(f"{principal.label} has no SELECT on table {asked}")
                masks = self.masks_for(conn, table, principal.mask_roles)
                result[TableId(table.namespace, table.name)] = masks
        return result

    def listable_namespaces(self, principal: Principal) -> set[str]:
        with self.engine.connect() as conn:
            return {o for p, k, o in self._privileges(conn, principal) if p == "List" and k == "project"}

    # --- views for `policy show` and system tables -------------------------------------------
    def view(self, kind: str) -> tuple[list[dict[str, Any]], list[str]]:
        """(rows, columns) of one of POLICY_VIEWS (`lakehouse policy show KIND`)."""
        if kind == "masking":  # the seed's SHOW MASKING POLICIES: each policy with where it is bound
            bound: dict[str, list[str]] = {}
            for b in self.rows(bindings_t):
                bound.setdefault(b["policy"], []).append(
                    f"{b['namespace']}.{b['table_name']}.{b['column_name']}"
                )
            rows = [{**p, "bound_to": ", ".join(bound.get(p["name"], []))} for p in self.rows(policies_t)]
            return rows, POLICY_VIEWS[kind][1]
        table, columns = POLICY_VIEWS[kind]
        assert table is not None
        return self.rows(table), columns

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


def table_governance(settings: LakehouseSettings, table: TableId) -> dict[str, Any] | None:
    """Which columns of the table are masked (column, policy, function, roles, enabled) and who may
    read it, for asset metadata; None when the catalog does not exist yet or cannot be read (a code
    location must load before the first `policy apply`)."""
    url = settings.catalog_uri
    if url.startswith("sqlite:///"):
        from pathlib import Path

        if not Path(url.removeprefix("sqlite:///")).exists():
            return None
    try:
        gov = GovernanceDB(url)
        return {"bindings": gov.policy_bindings(table), "readers": gov.readers(table)}
    except sa.exc.SQLAlchemyError:
        return None
