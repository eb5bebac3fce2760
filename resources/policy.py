"""Policy as code: MaxCompute's role, grant and data-masking statements, applied to the catalog.

`apply_policy(lakehouse, text, project, source)` parses every statement first, then applies them all
in one database transaction: a statement that cannot be parsed or applied fails the whole file with
`SOURCE:LINE: reason` and nothing changes. Applying the same file again changes nothing: statements
whose effect is already there (a role that exists, a grant that is held, a binding that is bound, a
DROP of something already gone) are no-ops and leave no row in the change trail. Every real change
is one row in gov_policy_changes (who, when, FILE:LINE, the statement, what changed).

Statements (case-insensitive keywords, `;`-separated, `--` comments; see docs/governance.md):

    CREATE ROLE r;                DROP ROLE r;
    ADD USER u;                   REMOVE USER u;
    GRANT CreateInstance, List ON PROJECT p TO ROLE r | USER u;
    GRANT SELECT ON TABLE [ns.]t TO ROLE r | USER u;
    GRANT r TO [USER] u;          REVOKE ... FROM ...   (the same forms)
    SETPROJECT odps.data.masking.policy.enable=true|false;
    CREATE DATA MASKING POLICY [IF NOT EXISTS] name TO ROLE (r[, ...]) USING FUNCTION(args);
    DROP DATA MASKING POLICY [IF EXISTS] name;
    APPLY DATA MASKING POLICY name BIND TO TABLE [ns.]t COLUMN c;
    APPLY DATA MASKING POLICY name UNBIND FROM TABLE [ns.]t COLUMN c;
"""

from __future__ import annotations

import getpass
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from resources import governance as g
from resources.masking import FUNCTIONS, MaskingError, accepts, validate
from resources.table_store import TableId

if TYPE_CHECKING:
    import pyarrow as pa

    from resources.lakehouse import Lakehouse

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
USER_NAME = re.compile(r"^[A-Za-z0-9_$@.\-]+$")
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
      | (?P<quoted>`[^`]+`)
      | (?P<word>[A-Za-z0-9_$@.\-]+)
      | (?P<punct>[(),=])
    )""",
    re.VERBOSE,
)


class PolicyError(ValueError):
    """A statement could not be parsed or applied; the message starts with FILE:LINE."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str

    @property
    def value(self) -> str:
        if self.kind == "string":
            quote = self.text[0]
            return self.text[1:-1].replace(quote * 2, quote)
        if self.kind == "quoted":
            return self.text[1:-1]
        return self.text


@dataclass
class Statement:
    line: int
    text: str
    action: str
    args: dict[str, Any] = field(default_factory=dict)


def split_statements(text: str) -> Iterator[tuple[int, str]]:
    """(line of the statement's first character, its text) for each `;`-separated statement,
    with `--` comments removed (quotes respected)."""
    buf: list[str] = []
    start_line: int | None = None
    line = 1
    i = 0
    quote: str | None = None
    while i < len(text):
        ch = text[i]
        if quote:
            buf.append(ch)
            if ch == quote:
                quote = None
        elif ch in "'\"`":
            quote = ch
            start_line = start_line or line
            buf.append(ch)
        elif text.startswith("--", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        elif ch == ";":
            if "".join(buf).strip():
                yield start_line or line, "".join(buf).strip()
            buf, start_line = [], None
        else:
            if not ch.isspace() and start_line is None:
                start_line = line
            buf.append(ch)
        if ch == "\n":
            line += 1
        i += 1
    if quote:
        raise PolicyError(f"{start_line}: unterminated quote {quote}")
    if "".join(buf).strip():
        yield start_line or line, "".join(buf).strip()


class _Cursor:
    def __init__(self, text: str) -> None:
        self.tokens: list[Token] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            match = _TOKEN.match(text, pos)
            if not match or match.end() == pos:
                raise ValueError(f"unexpected character {text[pos:].lstrip()[:1]!r}")
            kind = match.lastgroup or "word"
            self.tokens.append(Token(kind, match.group(kind)))
            pos = match.end()
        self.i = 0

    def peek(self, *words: str) -> bool:
        for offset, word in enumerate(words):
            j = self.i + offset
            if j >= len(self.tokens) or self.tokens[j].kind != "word" or self.tokens[j].text.upper() != word:
                return False
        return True

    def accept(self, *words: str) -> bool:
        if self.peek(*words):
            self.i += len(words)
            return True
        return False

    def expect(self, *words: str) -> None:
        if not self.accept(*words):
            raise ValueError(f"expected {' '.join(words)}, found {self._here()}")

    def punct(self, char: str) -> bool:
        if (
            self.i < len(self.tokens)
            and self.tokens[self.i].kind == "punct"
            and self.tokens[self.i].text == char
        ):
            self.i += 1
            return True
        return False

    def _here(self) -> str:
        return repr(self.tokens[self.i].text) if self.i < len(self.tokens) else "the end of the statement"

    def word(self, what: str) -> str:
        if self.i >= len(self.tokens) or self.tokens[self.i].kind not in ("word", "quoted"):
            raise ValueError(f"expected {what}, found {self._here()}")
        self.i += 1
        return self.tokens[self.i - 1].value

    def name(self, what: str, pattern: re.Pattern[str] = NAME) -> str:
        value = self.word(what)
        if not pattern.match(value):
            raise ValueError(f"{what} {value!r} is not a valid name")
        return value

    def end(self) -> None:
        if self.i != len(self.tokens):
            raise ValueError(f"unexpected {self._here()} after the end of the statement")


def _literal(token: Token) -> Any:
    if token.kind == "string":
        return token.value
    if re.fullmatch(r"-?\d+", token.text):
        return int(token.text)
    return token.text


def _privileges(cur: _Cursor) -> list[str]:
    names = [cur.word("a privilege")]
    while cur.punct(","):
        names.append(cur.word("a privilege"))
    return names


def _subject(cur: _Cursor) -> tuple[str, str]:
    if cur.accept("ROLE"):
        return "role", cur.name("role name").lower()
    if cur.accept("USER"):
        return "user", cur.name("user name", USER_NAME)
    raise ValueError(f"expected ROLE name or USER name, found {cur._here()}")


def parse_statement(line: int, text: str) -> Statement:
    cur = _Cursor(text)
    st = Statement(line, " ".join(text.split()), "")
    if cur.accept("CREATE", "ROLE"):
        st.action, st.args = "create_role", {"role": cur.name("role name").lower()}
    elif cur.accept("DROP", "ROLE"):
        st.action, st.args = "drop_role", {"role": cur.name("role name").lower()}
    elif cur.accept("ADD", "USER"):
        user = cur.name("user name", USER_NAME)
        if not g.user_key(user) or g.user_key(user) == g.OWNER:
            # '' would be everyone's fallback key; 'owner' is how the audit names the project owner
            raise ValueError(f"user name {user!r} is reserved")
        st.action, st.args = "add_user", {"user": user}
    elif cur.accept("REMOVE", "USER"):
        st.action, st.args = "remove_user", {"user": cur.name("user name", USER_NAME)}
    elif cur.peek("GRANT") or cur.peek("REVOKE"):
        grant = cur.accept("GRANT")
        if not grant:
            cur.expect("REVOKE")
        first = _privileges(cur)
        if cur.accept("ON"):
            if cur.accept("PROJECT"):
                kind, obj = "project", cur.name("project name")
            elif cur.accept("TABLE"):
                kind, obj = "table", cur.word("table name")
            else:
                raise ValueError(f"expected PROJECT or TABLE after ON, found {cur._here()}")
            cur.expect("TO" if grant else "FROM")
            subject = _subject(cur)
            st.action = "grant" if grant else "revoke"
            st.args = {"privileges": first, "object_kind": kind, "object": obj, "subject": subject}
        else:
            if len(first) != 1 or not NAME.match(first[0]):
                raise ValueError("expected `ON PROJECT|TABLE ...` after the privileges, or one role name")
            cur.expect("TO" if grant else "FROM")
            cur.accept("USER")
            user = cur.name("user name", USER_NAME)
            st.action = "grant_role" if grant else "revoke_role"
            st.args = {"role": first[0].lower(), "user": user}
    elif cur.accept("SETPROJECT"):
        key = cur.word("a project setting").lower()
        if not cur.punct("="):
            raise ValueError("expected key=value after SETPROJECT")
        st.action, st.args = "setproject", {"key": key, "value": cur.word("a value").lower()}
    elif cur.accept("CREATE", "DATA", "MASKING", "POLICY"):
        if_not_exists = cur.accept("IF", "NOT", "EXISTS")
        name = cur.name("policy name").lower()
        cur.expect("TO", "ROLE")
        roles = []
        if cur.punct("("):
            roles.append(cur.name("role name").lower())
            while cur.punct(","):
                roles.append(cur.name("role name").lower())
            if not cur.punct(")"):
                raise ValueError(f"expected ) after the roles, found {cur._here()}")
        else:
            roles.append(cur.name("role name").lower())
        cur.expect("USING")
        function = cur.word("a masking function").upper()
        args: list[Any] = []
        if cur.punct("(") and not cur.punct(")"):
            while True:
                if cur.i >= len(cur.tokens) or cur.tokens[cur.i].kind == "punct":
                    raise ValueError(f"expected an argument of {function}, found {cur._here()}")
                args.append(_literal(cur.tokens[cur.i]))
                cur.i += 1
                if cur.punct(")"):
                    break
                if not cur.punct(","):
                    raise ValueError(f"expected , or ) in the arguments of {function}, found {cur._here()}")
        try:
            function, canonical = validate(function, args)
        except MaskingError as exc:
            raise ValueError(str(exc)) from None
        st.action = "create_policy"
        st.args = {
            "policy": name,
            "roles": sorted(set(roles)),
            "function": function,
            "fargs": list(canonical),
            "if_not_exists": if_not_exists,
        }
    elif cur.accept("DROP", "DATA", "MASKING", "POLICY"):
        cur.accept("IF", "EXISTS")
        st.action, st.args = "drop_policy", {"policy": cur.name("policy name").lower()}
    elif cur.accept("APPLY", "DATA", "MASKING", "POLICY"):
        name = cur.name("policy name").lower()
        if cur.accept("BIND", "TO", "TABLE"):
            st.action = "bind"
        elif cur.accept("UNBIND", "FROM", "TABLE"):
            st.action = "unbind"
        else:
            raise ValueError(f"expected BIND TO TABLE or UNBIND FROM TABLE, found {cur._here()}")
        table = cur.word("table name")
        cur.expect("COLUMN")
        st.args = {"policy": name, "table": table, "column": cur.word("column name")}
    elif cur.peek("SHOW"):
        raise ValueError("SHOW statements are not changes: use `lakehouse policy show`")
    else:
        raise ValueError(f"unknown statement {cur._here()}")
    cur.end()
    return st


def parse(text: str, source: str = "<policy>") -> list[Statement]:
    statements = []
    try:
        pieces = list(split_statements(text))
    except PolicyError as exc:
        raise PolicyError(f"{source}:{exc}") from None
    for line, piece in pieces:
        try:
            statements.append(parse_statement(line, piece))
        except ValueError as exc:
            raise PolicyError(f"{source}:{line}: {exc}") from None
    return statements


# --- applying ---------------------------------------------------------------------------------


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
    t = g.utc_now()
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
                        at=g.utc_now(),
                        actor=actor,
                        source=f"{source}:{st.line}",
                        statement=st.text,
                        change=change,
                    )
                )
    return ApplyReport(len(statements), changes)
