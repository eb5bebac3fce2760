"""Policy as code, applying: parsed statements applied to the governance tables in one transaction.

`apply_policy(lakehouse, text, project, source)` parses every statement first, then applies them all
in one database transaction: a statement that cannot be parsed or applied fails the whole file with
`SOURCE:LINE: reason` and nothing changes. Applying the same file again changes nothing: statements
whose effect is already there (a role that exists, a grant that is held, a binding that is bound, a
DROP of something already gone) are no-ops and leave no row in the change trail. Every real change
is one row in gov_policy_changes (who, when, FILE:LINE, the statement, what changed).
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from lakehouse.core.ids import TableId
from lakehouse.governance import store as g
from lakehouse.governance.masking import FUNCTIONS, accepts
from lakehouse.governance.policy_parser import NAME, PolicyError, Statement, parse
from lakehouse.storage.catalog import utc_now

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.facade import Lakehouse


@dataclass
class ApplyReport:
    statements: int
    changes: list[tuple[int, str]]
    """(line, what changed) for each statement that changed something."""


class _Context:
    """What statements need to know about the lakehouse, looked up before the transaction starts."""

    def __init__(self, lakehouse: Lakehouse, project: str, statements: list[Statement]) -> None:
        self.project = project
        records = lakehouse.catalog.list_tables()
        self.known = {(r.namespace.lower(), r.name.lower()): TableId(r.namespace, r.name) for r in records}
        self.namespaces = {r.namespace.lower(): r.namespace for r in records}
        self.schemas: dict[TableId, pa.Schema] = {}
        for st in statements:
            if st.action in ("bind", "grant") and (st.action == "bind" or st.args["object_kind"] == "table"):
                try:
                    ident = self.table(st.args.get("table") or st.args["object"])
                except ValueError:
                    continue  # reported with its line when the statement is applied
                known = ident in self.known.values() and ident not in self.schemas
                if known and lakehouse.tables.exists(ident):
                    self.schemas[ident] = lakehouse.tables.schema(ident)

    def table(self, text: str) -> TableId:
        parts = text.split(".")
        if len(parts) == 1:
            parts = [self.project, parts[0]]
        if len(parts) != 2 or not all(NAME.match(p) for p in parts):
            raise ValueError(f"table name {text!r} must be table or namespace.table")
        return self.known.get(
            (parts[0].lower(), parts[1].lower()), TableId(parts[0].lower(), parts[1].lower())
        )

    def existing_table(self, text: str) -> TableId:
        ident = self.table(text)
        if ident not in self.schemas:
            raise ValueError(f"table {ident} does not exist (see `lakehouse tables`)")
        return ident


def _exists(conn: sa.Connection, table: sa.Table, **keys: Any) -> bool:
    query = sa.select(sa.literal(1)).select_from(table)
    for column, value in keys.items():
        query = query.where(table.c[column] == value)
    return conn.execute(query).first() is not None


def _need(conn: sa.Connection, kind: str, name: str) -> None:
    if kind == "role" and not _exists(conn, g.roles_t, name=name):
        raise ValueError(f"role {name!r} does not exist (CREATE ROLE {name} first)")
    if kind == "user" and not _exists(conn, g.users_t, name=g.user_key(name)):
        raise ValueError(f"user {name!r} does not exist (ADD USER {name} first)")


def _grant_rows(st: Statement, ctx: _Context) -> list[dict[str, Any]]:
    kind, name = st.args["subject"]
    principal = name if kind == "role" else g.user_key(name)
    rows = []
    for privilege in st.args["privileges"]:
        if st.args["object_kind"] == "project":
            canonical = g.PROJECT_PRIVILEGES.get(privilege.lower())
            if canonical is None:
                raise ValueError(
                    f"privilege {privilege!r} on a project is not supported (supported: CreateInstance, List)"
                )
            obj = ctx.namespaces.get(st.args["object"].lower(), st.args["object"])
        else:
            canonical = g.TABLE_PRIVILEGES.get(privilege.lower())
            if canonical is None:
                raise ValueError(
                    f"privilege {privilege!r} on a table is not supported (supported: SELECT; "
                    "the lakehouse's SQL is read-only)"
                )
            obj = str(
                ctx.existing_table(st.args["object"])
                if st.action == "grant"
                else ctx.table(st.args["object"])
            )
        rows.append(
            {
                "principal_kind": kind,
                "principal": principal,
                "privilege": canonical,
                "object_kind": st.args["object_kind"],
                "object_name": obj,
            }
        )
    return rows


def _apply_one(conn: sa.Connection, st: Statement, ctx: _Context) -> list[str]:
    a = st.args
    t = utc_now()
    if st.action == "create_role":
        if _exists(conn, g.roles_t, name=a["role"]):
            return []
        conn.execute(sa.insert(g.roles_t).values(name=a["role"], created_at=t))
        return [f"created role {a['role']}"]
    if st.action == "drop_role":
        if not _exists(conn, g.roles_t, name=a["role"]):
            return []
        for name, roles in conn.execute(sa.select(g.policies_t.c.name, g.policies_t.c.roles)):
            if a["role"] in json.loads(roles):
                raise ValueError(f"role {a['role']} is used by masking policy {name}: drop that policy first")
        conn.execute(sa.delete(g.members_t).where(g.members_t.c.role == a["role"]))
        conn.execute(
            sa.delete(g.grants_t).where(
                g.grants_t.c.principal_kind == "role", g.grants_t.c.principal == a["role"]
            )
        )
        conn.execute(sa.delete(g.roles_t).where(g.roles_t.c.name == a["role"]))
        return [f"dropped role {a['role']} with its members and grants"]
    if st.action == "add_user":
        if _exists(conn, g.users_t, name=g.user_key(a["user"])):
            return []
        conn.execute(
            sa.insert(g.users_t).values(name=g.user_key(a["user"]), display_name=a["user"], created_at=t)
        )
        return [f"added user {a['user']}"]
    if st.action == "remove_user":
        key = g.user_key(a["user"])
        if not _exists(conn, g.users_t, name=key):
            return []
        conn.execute(sa.delete(g.members_t).where(g.members_t.c.user_name == key))
        conn.execute(
            sa.delete(g.grants_t).where(g.grants_t.c.principal_kind == "user", g.grants_t.c.principal == key)
        )
        conn.execute(sa.delete(g.users_t).where(g.users_t.c.name == key))
        return [f"removed user {a['user']} with its role memberships and grants"]
    if st.action in ("grant", "revoke"):
        kind, name = a["subject"]
        _need(conn, kind, name)
        if (
            a["object_kind"] == "project"
            and st.action == "grant"
            and a["object"].lower() not in ctx.namespaces
        ):
            raise ValueError(f"project {a['object']} does not exist (no table in namespace {a['object']})")
        changes = []
        for row in _grant_rows(st, ctx):
            held = _exists(conn, g.grants_t, **row)
            what = f"{row['privilege']} on {row['object_kind']} {row['object_name']} {kind} {name}"
            if st.action == "grant" and not held:
                conn.execute(sa.insert(g.grants_t).values(**row, created_at=t))
                changes.append(f"granted {what.replace(f' {kind} ', f' to {kind} ')}")
            elif st.action == "revoke" and held:
                conn.execute(sa.delete(g.grants_t).where(*[g.grants_t.c[k] == v for k, v in row.items()]))
                changes.append(f"revoked {what.replace(f' {kind} ', f' from {kind} ')}")
        return changes
    if st.action in ("grant_role", "revoke_role"):
        _need(conn, "role", a["role"])
        _need(conn, "user", a["user"])
        key = g.user_key(a["user"])
        held = _exists(conn, g.members_t, role=a["role"], user_name=key)
        if st.action == "grant_role" and not held:
            conn.execute(sa.insert(g.members_t).values(role=a["role"], user_name=key, created_at=t))
            return [f"granted role {a['role']} to user {a['user']}"]
        if st.action == "revoke_role" and held:
            conn.execute(
                sa.delete(g.members_t).where(g.members_t.c.role == a["role"], g.members_t.c.user_name == key)
            )
            return [f"revoked role {a['role']} from user {a['user']}"]
        return []
    if st.action == "setproject":
        if a["key"] != g.MASKING_ENABLED_KEY:
            raise ValueError(f"unknown project setting {a['key']!r} (supported: {g.MASKING_ENABLED_KEY})")
        if a["value"] not in ("true", "false"):
            raise ValueError(f"{a['key']} must be true or false, got {a['value']!r}")
        keys = {"namespace": ctx.project, "key": a["key"]}
        current = conn.execute(
            sa.select(g.settings_t.c.value).where(*[g.settings_t.c[k] == v for k, v in keys.items()])
        ).scalar()
        if current == a["value"]:
            return []
        conn.execute(sa.delete(g.settings_t).where(*[g.settings_t.c[k] == v for k, v in keys.items()]))
        conn.execute(sa.insert(g.settings_t).values(**keys, value=a["value"], updated_at=t))
        return [f"set {a['key']}={a['value']} for project {ctx.project}"]
    if st.action == "create_policy":
        for role in a["roles"]:
            _need(conn, "role", role)
        existing = conn.execute(sa.select(g.policies_t).where(g.policies_t.c.name == a["policy"])).first()
        definition = (a["function"], json.dumps(a["fargs"]), json.dumps(a["roles"]))
        if existing is not None:
            if (existing.function, existing.args, existing.roles) == definition:
                return []
            raise ValueError(
                f"masking policy {a['policy']} already exists with another definition "
                f"({existing.function}{tuple(json.loads(existing.args))} to roles {json.loads(existing.roles)}); "
                "DROP DATA MASKING POLICY it first"
            )
        conn.execute(
            sa.insert(g.policies_t).values(
                name=a["policy"],
                function=definition[0],
                args=definition[1],
                roles=definition[2],
                created_at=t,
            )
        )
        return [
            f"created masking policy {a['policy']}: {a['function']}{tuple(a['fargs'])} to roles {a['roles']}"
        ]
    if st.action == "drop_policy":
        if not _exists(conn, g.policies_t, name=a["policy"]):
            return []
        unbound = conn.execute(sa.delete(g.bindings_t).where(g.bindings_t.c.policy == a["policy"])).rowcount
        conn.execute(sa.delete(g.policies_t).where(g.policies_t.c.name == a["policy"]))
        return [f"dropped masking policy {a['policy']} and its {unbound} binding(s)"]
    if st.action in ("bind", "unbind"):
        if st.action == "bind" and not _exists(conn, g.policies_t, name=a["policy"]):
            raise ValueError(f"masking policy {a['policy']} does not exist")
        if st.action == "bind":
            ident = ctx.existing_table(a["table"])
            schema = ctx.schemas[ident]
            names = {f.name.lower(): f for f in schema}
            found = names.get(a["column"].lower())
            if found is None:
                raise ValueError(f"table {ident} has no column {a['column']!r}")
            function = conn.execute(
                sa.select(g.policies_t.c.function).where(g.policies_t.c.name == a["policy"])
            ).scalar_one()
            if not accepts(function, found.type):
                raise ValueError(
                    f"{function} cannot mask {ident}.{found.name} of type {found.type} "
                    f"({FUNCTIONS[function].types} columns only)"
                )
            column = found.name
        else:
            ident, column = ctx.table(a["table"]), a["column"]
        keys = {"policy": a["policy"], "namespace": ident.namespace, "table_name": ident.name}
        bound = [
            c
            for (c,) in conn.execute(
                sa.select(g.bindings_t.c.column_name).where(
                    *[g.bindings_t.c[k] == v for k, v in keys.items()]
                )
            )
            if c.lower() == column.lower()
        ]
        if st.action == "bind" and not bound:
            conn.execute(sa.insert(g.bindings_t).values(**keys, column_name=column, created_at=t))
            return [f"bound masking policy {a['policy']} to {ident}.{column}"]
        if st.action == "unbind" and bound:
            conn.execute(
                sa.delete(g.bindings_t).where(
                    *[g.bindings_t.c[k] == v for k, v in keys.items()], g.bindings_t.c.column_name == bound[0]
                )
            )
            return [f"unbound masking policy {a['policy']} from {ident}.{bound[0]}"]
        return []
    raise AssertionError(st.action)


def apply_policy(lakehouse: Lakehouse, text: str, project: str, source: str = "<policy>") -> ApplyReport:
    """Parse and apply every statement atomically; PolicyError (FILE:LINE: reason) and nothing changed."""
    if not NAME.match(project):
        raise PolicyError(f"project {project!r} is not a valid namespace name")
    statements = parse(text, source)
    ctx = _Context(lakehouse, project, statements)
    gov = g.GovernanceDB(lakehouse.settings.catalog_uri)
    actor = getpass.getuser()
    changes: list[tuple[int, str]] = []
    with gov.engine.begin() as conn:  # one transaction: all or nothing
        for st in statements:
            try:
                done = _apply_one(conn, st, ctx)
            except ValueError as exc:
                raise PolicyError(f"{source}:{st.line}: {exc}") from None
            for change in done:
                changes.append((st.line, change))
                conn.execute(
                    sa.insert(g.changes_t).values(
                        at=utc_now(),
                        actor=actor,
                        source=f"{source}:{st.line}",
                        statement=st.text,
                        change=change,
                    )
                )
    return ApplyReport(len(statements), changes)
