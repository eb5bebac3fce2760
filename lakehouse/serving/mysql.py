"""The SQL endpoint: the MySQL protocol (as StarRocks' frontend speaks it on 9030), on mysql-mimic.

Clients connect unchanged (the mysql CLI, PyMySQL, SQLAlchemy `mysql+pymysql://`, BI tools). Namespaces
are databases. Whoever logs in is untrusted, so the endpoint is a boundary (docs/security.md):

- Every statement is answered here, off the event loop: the text's length is checked on arrival,
  then parsing, answering and encoding the rows run in a worker thread, at most `per_user` at once
  per account, so no client stalls another. mysql-mimic's own middlewares (which answer a SELECT
  without FROM, SHOW and information_schema with sqlglot's Python executor, an `eval` of generated
  source, on the event loop) are not used at all.
- Queries are the facade's `sql(query, user=...)`, the same call as `lakehouse sql --user`, so
  grants, masks, time, memory and result limits and the audit hold exactly as there; they arrive
  in MySQL / StarRocks SQL and are translated to DuckDB's dialect with sqlglot. SHOW, DESCRIBE and
  information_schema are queries too, over the catalog as the account may list it
  (info_schema.py), on the same governed path. SET, USE, KILL, BEGIN/COMMIT/ROLLBACK are answered
  by the session and audited as `statement` rows.
- KILL: an account kills only its own connections and queries (the owner any); KILL QUERY
  interrupts the running statement in the engine.
- Logins: verifiers only, every attempt audited, a throttle per user and client address
  (auth.LoginThrottle); the protocol's own edges (packet size, handshake and idle timeouts,
  COM_CHANGE_USER, prepared statements) are guarded in wire.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mysql_mimic import Session
from mysql_mimic.auth import AuthInfo, AuthState, Forbidden, IdentityProvider, NativePasswordAuthPlugin, User
from mysql_mimic.constants import KillKind
from mysql_mimic.errors import ErrorCode, MysqlError
from mysql_mimic.results import ResultSet
from sqlglot import exp

from lakehouse.governance.access import MAX_QUERY_CHARS
from lakehouse.governance.store import OWNER, PermissionDenied, Principal
from lakehouse.serving.auth import (
    Account,
    LoginLocked,
    LoginThrottle,
    account,
    audit_login,
    login_label,
    throttle_keys,
    verifier,
)
from lakehouse.serving.info_schema import (
    PROCESSLIST_SOURCE,
    STATUS_SOURCE,
    VARIABLES_SOURCE,
    info_schema_sources,
    processlist_source,
    rewrite_info_schema,
    show_query,
    source_label,
    variables_source,
)
from lakehouse.serving.listing import create_table_ddl, result_set, visible_schema
from lakehouse.serving.wire import CLIENT_ADDRESS, EncodedResultSet, GuardedServer, WireLimits

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.facade import Lakehouse

log = logging.getLogger("lakehouse.serve")

DEFAULT_PORT = 9030
"""StarRocks' frontend query port."""
SERVER_VERSION = "8.0.33-lakehouse"
"""What `SELECT VERSION()` answers: MySQL 8 syntax, as StarRocks announces itself."""
ER_BAD_DB = 1049
ER_NO_SUCH_THREAD = 1094
ER_TABLEACCESS_DENIED = 1142
ER_NO_SUCH_TABLE = 1146
ER_QUERY_INTERRUPTED = 1317
SCHEMA_SECONDS = 2.0
"""How long one session reuses the catalog listing it built for SHOW / information_schema."""
AUDIT_TEXT = 2_000
"""Characters of a refused statement's text the audit keeps (the rest is counted, not stored)."""


@dataclass
class Endpoint:
    """What every connection of one server shares."""

    lh: Lakehouse
    pool: ThreadPoolExecutor
    throttle: LoginThrottle
    per_user: int
    """Statements one account runs at once; its other connections wait their turn."""
    server: GuardedServer | None = None
    slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)

    def slot(self, label: str) -> asyncio.Semaphore:
        found = self.slots.get(label)
        if found is None:
            found = self.slots[label] = asyncio.Semaphore(self.per_user)
        return found


class _LakehouseUser(User):
    """A login name with the account it names (None: no such user, refused like a wrong password)."""

    def __init__(self, name: str, auth_string: str, found: Account | None) -> None:
        super().__init__(name=name, auth_string=auth_string, auth_plugin=NativePasswordAuthPlugin.name)
        self.account = found


class AuditedNativePassword(NativePasswordAuthPlugin):
    """MySQL's native-password handshake, with every decision audited, logged in one line and
    counted by the login throttle; a locked user or address is refused without a look at the password."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint

    async def auth(self, auth_info: AuthInfo | None = None) -> AuthState:
        lh, throttle = self.endpoint.lh, self.endpoint.throttle
        inner = super().auth(auth_info)
        decision = await inner.__anext__()
        while isinstance(decision, bytes):  # the nonce, when the handshake did not carry one
            auth_info = yield decision
            decision = await inner.asend(auth_info)
        user = auth_info.user if auth_info else None
        found = user.account if isinstance(user, _LakehouseUser) else None
        name = user.name if user else None
        address = CLIENT_ADDRESS.get()
        keys = throttle_keys(found, name, address)
        locked = throttle.locked_for(keys)
        ok = locked <= 0 and not isinstance(decision, Forbidden) and found is not None
        reason = f"locked after repeated failures ({locked:.0f} s left)" if locked > 0 else None
        label = await asyncio.to_thread(login_label, lh, name, found)
        await asyncio.to_thread(
            audit_login, lh, name, found, "sql endpoint", ok, *([reason] if reason else [])
        )
        if ok:
            throttle.succeeded(keys)
            yield decision
            return
        if locked > 0:
            log.warning("login refused (locked): %s from %s", label, address)
            yield Forbidden(str(LoginLocked(locked)))
            return
        throttle.failed(keys)
        log.warning("login refused: %s from %s", label, address)
        yield Forbidden(f"Access denied for user '{name}' (wrong password, or no such login)")


class LakehouseIdentity(IdentityProvider):
    """Logins from the catalog's verifiers. An unknown user gets a verifier no password matches, so
    it is refused (and audited) exactly like a wrong password, after the same lookups: the endpoint
    confirms no name, not even by its timing."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.plugin = AuditedNativePassword(endpoint)
        self._unmatchable = secrets.token_hex(20)

    def get_plugins(self) -> Sequence[NativePasswordAuthPlugin]:
        return [self.plugin]

    async def get_user(self, username: str) -> User | None:
        lh = self.endpoint.lh

        def look() -> tuple[Account | None, str | None]:
            found = account(lh, username)
            stored = verifier(lh, found or Account("\x00nobody", None))
            return found, stored if found else None

        found, stored = await asyncio.to_thread(look)
        return _LakehouseUser(username, stored or self._unmatchable, found if stored else None)


def to_duckdb(expression: exp.Expression) -> str:
    """A MySQL / StarRocks statement as DuckDB SQL (identifiers keep their case)."""
    return expression.sql(dialect="duckdb")


def _error(exc: Exception) -> MysqlError:
    """Our errors as MySQL errors: their messages name the user, table or statement and hold no
    secret; anything unexpected is reported without its internals (the server log has the type)."""
    from lakehouse.engines.base import QueryCancelled, QueryError

    if isinstance(exc, MysqlError):
        return exc
    if isinstance(exc, PermissionDenied):
        return MysqlError(str(exc), code=ER_TABLEACCESS_DENIED)  # type: ignore[arg-type]
    if isinstance(exc, QueryCancelled):
        return MysqlError("Query execution was interrupted (KILL QUERY)", code=ER_QUERY_INTERRUPTED)  # type: ignore[arg-type]
    if isinstance(exc, QueryError):
        text = str(exc)
        code = ErrorCode.PARSE_ERROR if text.startswith("cannot parse") else ErrorCode.UNKNOWN_ERROR
        return MysqlError(text, code=code)
    log.error("query failed: %s", type(exc).__name__)
    return MysqlError(
        f"internal error ({type(exc).__name__}); see the server log", code=ErrorCode.UNKNOWN_ERROR
    )


_SPECIALS: re.Pattern[str] | None = None


def _specials(session: Session) -> re.Pattern[str]:
    """What, in a query's text, mysql-mimic's variable processor would replace."""
    global _SPECIALS
    if _SPECIALS is None:
        from mysql_mimic.session import mysql_function_mapping
        from mysql_mimic.variable_processor import variable_constants

        names = sorted({*mysql_function_mapping(session), *variable_constants}, key=len, reverse=True)
        _SPECIALS = re.compile(r"@@|/\*\+|\b(" + "|".join(map(re.escape, names)) + r")\b", re.IGNORECASE)
    return _SPECIALS


def _clipped(text: str) -> str:
    if len(text) <= AUDIT_TEXT:
        return text
    return f"{text[:AUDIT_TEXT]}... ({len(text):,} characters)"


@dataclass
class _Listing:
    at: float
    schema: dict[str, dict[str, dict[str, str]]]
    sources: dict[str, pa.Table]


class LakehouseSession(Session):
    """One client connection: the logged-in account, its current database, its statements."""

    database: str | None
    max_query_chars = MAX_QUERY_CHARS

    def __init__(self, endpoint: Endpoint) -> None:
        super().__init__()
        self.middlewares: list[
            Any
        ] = []  # every statement is answered by handle_query below, none by mysql-mimic
        self.endpoint = endpoint
        self.lh = endpoint.lh
        self.account: Account | None = None
        self.binary_rows = False
        """The statement running came as a prepared statement (binary rows) or as text."""
        self._listing: _Listing | None = None
        self._refused_database: str | None = None
        self._scope: Any = None
        self._running: tuple[float, str] | None = None
        self._since = time.time()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.variables.set("version", SERVER_VERSION, force=True)
        self.variables.set(
            "version_comment", "lakehouse SQL endpoint (StarRocks-style, MySQL protocol)", force=True
        )

    # --- the connection's life -------------------------------------------------------------------
    async def init(self, connection: Any) -> None:
        await super().init(connection)
        self._loop = asyncio.get_running_loop()
        if self.username is None:  # the handshake refused it: nothing more on this connection
            raise MysqlError("not logged in", code=ErrorCode.ACCESS_DENIED_ERROR)
        if self.database:  # the database of the handshake: visible, or every statement refuses
            wanted = self.database
            self.database = None
            try:
                await self.use(wanted)
            except MysqlError:
                self._refused_database = wanted

    def logout(self) -> None:
        """Forget the account (COM_CHANGE_USER logs in anew, or the connection ends)."""
        self.username = None
        self.account = None
        self.database = None
        self._listing = None
        self._refused_database = None

    async def refused_packet(self, size: int) -> None:
        await self._run(
            self._audit,
            f"(a command of more than {size:,} bytes)",
            "denied",
            "larger than max_allowed_packet",
        )

    def cancel_running(self) -> None:
        """Stop the statement this connection runs (KILL QUERY from another connection)."""
        scope = self._scope
        if scope is not None:
            scope.cancel()

    def process(self) -> tuple[Any, ...]:
        """This connection as SHOW PROCESSLIST lists it."""
        running = self._running
        label = self.account.label if self.account else (self.username or "")
        connection = self._connection
        return (
            connection.connection_id if connection else 0,
            label,
            getattr(connection, "address", None) or "",
            self.database,
            "Query" if running else "Sleep",
            int(time.time() - (running[0] if running else self._since)),
            "executing" if running else "",
            running[1][:100] if running else None,
        )

    # --- statements ------------------------------------------------------------------------------
    async def handle_query(self, sql: str, attrs: dict[str, str]) -> Any:
        from lakehouse.engines.base import CancelScope

        if len(sql) > MAX_QUERY_CHARS:  # before any parse: the text itself is the attack
            reason = f"the statement is {len(sql):,} characters; at most {MAX_QUERY_CHARS:,}"
            await self._run(self._audit, _clipped(sql), "denied", reason)
            raise MysqlError(reason, code=ErrorCode.PARSE_ERROR)
        login = self._account()
        async with self.endpoint.slot(login.label):
            self._scope = CancelScope()
            self._running = (time.time(), sql)
            try:
                return await self._run(self._statements, sql, self._scope)
            finally:
                self._scope, self._running = None, None
                self._since = time.time()

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.endpoint.pool, fn, *args)

    def _statements(self, sql: str, scope: Any) -> Any:
        """Every statement of a text, in a worker thread; the result of the last."""
        from sqlglot.errors import ParseError

        from lakehouse.engines.base import cancellable

        with cancellable(scope):
            self.timestamp = dt.datetime.now(tz=self.timezone())
            try:
                statements = self._parse(sql)
            except ParseError as exc:
                reason = f"cannot parse the statement: {str(exc).splitlines()[0][:300]}"
                self._audit(_clipped(sql), "error", reason)
                raise MysqlError(reason, code=ErrorCode.PARSE_ERROR) from None
            if not statements:
                self._audit(_clipped(sql), "error", "an empty statement")
                raise MysqlError("Query was empty", code=ErrorCode.EMPTY_QUERY)
            substitute = _specials(self).search(sql) is not None
            result = None
            for statement in statements:
                result = self._one(statement, substitute)
            return result

    def _one(self, statement: exp.Expression, substitute: bool) -> Any:
        from mysql_mimic.session import mysql_function_mapping
        from mysql_mimic.variable_processor import VariableProcessor

        if self._refused_database is not None and not isinstance(statement, exp.Use):
            text = _clipped(statement.sql(dialect="mysql"))
            self._audit(text, "denied", f"unknown database {self._refused_database!r}")
            raise MysqlError(f"Unknown database '{self._refused_database}'", code=ER_BAD_DB)  # type: ignore[arg-type]
        # @@variables, SET_VAR hints, DATABASE(), NOW()...: replaced by literals (no evaluation)
        replacing = (
            VariableProcessor(mysql_function_mapping(self), self.variables, statement).set_variables()
            if substitute
            else nullcontext()
        )
        with replacing:
            return self._answer(statement)

    def _answer(self, statement: exp.Expression) -> Any:
        if isinstance(statement, exp.Set | exp.Use | exp.Kill | exp.Transaction | exp.Commit | exp.Rollback):
            text = _clipped(statement.sql(dialect="mysql"))
            with self._audited(text):
                if isinstance(statement, exp.Set):
                    self._set(statement)
                elif isinstance(statement, exp.Use):
                    self._use(statement.this.name)
                elif isinstance(statement, exp.Kill):
                    self._kill(statement)
            return None
        if isinstance(statement, exp.Show) and statement.name.upper() == "CREATE TABLE":
            text = _clipped(statement.sql(dialect="mysql"))
            with self._audited(text):
                return self._show_create_table(statement)
        if isinstance(statement, exp.Show):
            return self._listing_query(statement, lambda: show_query(statement, self.database))
        if isinstance(statement, exp.Describe) and not isinstance(statement.this, exp.Query):
            target = statement.this
            show = exp.Show(
                this="COLUMNS",
                target=exp.to_identifier(target.name),
                db=target.args.get("db") if isinstance(target, exp.Table) else None,
            )
            return self._listing_query(statement, lambda: show_query(show, self.database))
        rewritten = self._rewritten(statement)
        if rewritten is not None:
            return self._listing_query(statement, lambda: rewritten)
        return self._query(statement)

    def _rewritten(self, statement: exp.Expression) -> exp.Expression | None:
        try:
            return rewrite_info_schema(statement, self.database)
        except MysqlError as exc:
            self._audit(_clipped(statement.sql(dialect="mysql")), "denied", exc.msg)
            raise

    def _query(self, statement: exp.Expression) -> Any:
        login = self._account()
        try:
            duck = to_duckdb(statement)
            table = self._governed_sql(login, duck)
        except Exception as exc:  # every failure leaves as a MySQL error the client shows
            raise _error(exc) from None
        return self._result(table)

    def _governed_sql(self, login: Account, statement: str) -> pa.Table:
        """The facade's sql as this login; the owner's queries are audited here too (over the
        network every query is, though `lakehouse sql` on the owner's own machine is not)."""
        if login.user is not None:
            return self.lh.sql(statement, user=login.user, project=self.database)
        with self.lh.access.attempt(Principal(), "query", statement) as record:
            result = self.lh.sql(statement, project=self.database)
            record.rows = result.num_rows
        return result

    def _listing_query(self, statement: exp.Expression, build: Any) -> Any:
        """SHOW, DESCRIBE and information_schema: a query over the listing's sources, governed."""
        try:
            tree = build()
        except MysqlError as exc:
            self._audit(_clipped(statement.sql(dialect="mysql")), "error", exc.msg)
            raise
        sources = dict(self._listing_now().sources)
        sources[VARIABLES_SOURCE] = variables_source(list(self.variables.list()))
        sources[STATUS_SOURCE] = variables_source([])
        sources[PROCESSLIST_SOURCE] = processlist_source(self._processes())
        try:
            table = self.lh.access.sql_over(
                to_duckdb(tree),
                self._principal(),
                sources,
                label=source_label,
                statement=_clipped(statement.sql(dialect="mysql")),
            )
        except Exception as exc:
            raise _error(exc) from None
        return self._result(table)

    def _result(self, table: pa.Table) -> ResultSet | EncodedResultSet:
        """The rows for the wire, encoded here (in the worker thread) for the text protocol."""
        from mysql_mimic import packets

        found = result_set(table)
        rows = list(found.rows)  # type: ignore[arg-type]
        if self.binary_rows:
            return ResultSet(rows=rows, columns=found.columns)
        encoded = [packets.make_text_resultset_row(r, found.columns) for r in rows]
        return EncodedResultSet(found.columns, encoded, len(rows))

    # --- what the session answers itself -----------------------------------------------------------
    def _set(self, statement: exp.Set) -> None:
        from mysql_mimic.intercept import setitem_kind

        for item in statement.expressions:
            kind = setitem_kind(item)
            if kind == "VARIABLE":
                self._set_variable(item)
            elif kind == "CHARACTER SET":
                self._set_charset(item)
            elif kind == "NAMES":
                self._set_names(item)
            elif kind == "TRANSACTION":
                self._set_transaction(item)
            else:
                raise MysqlError(f"Unsupported SET statement: {kind}", code=ErrorCode.NOT_SUPPORTED_YET)

    def _kill(self, statement: exp.Kill) -> None:
        """KILL [CONNECTION | QUERY] id: of this account's own connections (the owner: any). Another
        account's connection is answered as one that does not exist (no oracle of who is on)."""
        this = statement.this.name
        if not this.isdigit():
            raise MysqlError(f"Invalid KILL connection ID: {this[:40]}", code=ErrorCode.PARSE_ERROR)
        target_id = int(this)
        login = self._account()
        target = self._connections().get(target_id)
        session = getattr(target, "session", None)
        mine = isinstance(session, LakehouseSession) and session.account is not None
        if not (mine and (login.user is None or session.account.label == login.label)):  # type: ignore[union-attr]
            raise MysqlError(f"Unknown thread id: {target_id}", code=ER_NO_SUCH_THREAD)  # type: ignore[arg-type]
        assert isinstance(session, LakehouseSession) and target is not None
        kind = KillKind[statement.text("kind").upper() or "CONNECTION"]
        session.cancel_running()
        if kind == KillKind.CONNECTION and self._loop is not None:
            self._loop.call_soon_threadsafe(target.kill, KillKind.CONNECTION)

    def _connections(self) -> dict[int, Any]:
        server = self.endpoint.server
        return dict(server.connections) if server is not None else {}

    def _processes(self) -> list[tuple[Any, ...]]:
        login = self._account()
        out = []
        for connection in self._connections().values():
            session = connection.session
            if not isinstance(session, LakehouseSession) or session.account is None:
                continue
            if login.user is None or session.account.label == login.label:
                out.append(session.process())
        return out

    async def use(self, database: str) -> None:
        """COM_INIT_DB and the handshake's database (USE statements come through handle_query)."""
        await self._run(self._use, database)

    def _use(self, database: str) -> None:
        if database.lower() == "information_schema":
            self.database = database
            self._refused_database = None
            return
        schema = self._listing_now().schema
        found = next((db for db in schema if db.lower() == database.lower()), None)
        if found is None:  # not there, or not listable: the same answer
            raise MysqlError(f"Unknown database '{database}'", code=ER_BAD_DB)  # type: ignore[arg-type]
        self.database = found
        self._refused_database = None

    def _show_create_table(self, expression: exp.Show) -> Any:
        """SHOW CREATE TABLE (SQLAlchemy's inspector reads columns from it), from the same listing
        as SHOW TABLES: a table the user may not list does not exist for it."""
        name = expression.text("target")
        database = expression.text("db") or self.database
        if not database:
            raise MysqlError("No database selected", code=ErrorCode.NO_DB_ERROR)
        schema = self._listing_now().schema
        tables = next((t for db, t in schema.items() if db.lower() == database.lower()), {})
        found = next((t for t in tables if t.lower() == name.lower()), None)
        if found is None:
            raise MysqlError(f"Unknown table '{database}.{name}'", code=ER_NO_SUCH_TABLE)  # type: ignore[arg-type]
        return [(found, create_table_ddl(found, tables[found]))], ["Table", "Create Table"]

    # --- who, what they may list, the audit ---------------------------------------------------------
    def _account(self) -> Account:
        if self.account is None:
            found = account(self.lh, self.username) if self.username else None
            if found is None:
                raise MysqlError("not logged in", code=ErrorCode.ACCESS_DENIED_ERROR)
            self.account = found
        return self.account

    def _principal(self) -> Principal:
        login = self._account()
        if login.user is None:
            return Principal()
        return self.lh.access.principal(login.user, None, "statement", "(the SQL endpoint's session)")

    def _listing_now(self) -> _Listing:
        now = time.monotonic()
        if self._listing is None or now - self._listing.at > SCHEMA_SECONDS:
            schema = visible_schema(self.lh, self._account())
            self._listing = _Listing(now, schema, info_schema_sources(schema))
        return self._listing

    def _audit(self, text: str, status: str, reason: str | None) -> None:
        """One complete audit row (kind `statement`) for what the session answered or refused itself."""
        try:
            principal = self._principal()
            who, roles = principal.audit_user, principal.roles
        except (PermissionDenied, MysqlError):
            who, roles = login_label(self.lh, self.username, None), frozenset()
        self.lh.audit.complete(who, roles, "statement", text, [], [], None, status, reason)

    @contextmanager
    def _audited(self, text: str) -> Iterator[None]:
        try:
            yield
        except MysqlError as exc:
            self._audit(text, "error", exc.msg)
            raise
        except Exception as exc:
            error = _error(exc)
            self._audit(text, "error", error.msg)
            raise error from None
        self._audit(text, "ok", None)


async def serve(
    lh: Lakehouse,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    ssl: Any = None,
    workers: int = 8,
    ready: Any = None,
    throttle: LoginThrottle | None = None,
    limits: WireLimits | None = None,
    per_user: int | None = None,
) -> None:
    """Serve until cancelled. `ready(sockname)` is called once listening (the CLI prints it)."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lakehouse-sql")
    endpoint = Endpoint(lh, pool, throttle or LoginThrottle(), per_user or max(1, workers - 2))
    server = GuardedServer(
        session_factory=lambda: LakehouseSession(endpoint),
        identity_provider=LakehouseIdentity(endpoint),
        ssl=ssl,
        limits=limits or WireLimits(),
    )
    endpoint.server = server
    loop = asyncio.get_running_loop()
    default_handler = loop.get_exception_handler()

    def quiet_disconnects(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """A client that connects and leaves (a health check, a port probe) is not an error."""
        error = context.get("exception")
        if isinstance(error, ConnectionError) or type(error).__name__ == "ConnectionClosed":
            log.debug("client left during the handshake: %s", type(error).__name__)
        elif default_handler is not None:
            default_handler(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(quiet_disconnects)
    await server.start_server(host=host, port=port)
    try:
        if ready is not None:
            ready(server.sockets()[0].getsockname())
        await server.serve_forever()
    finally:
        server.close()
        pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["DEFAULT_PORT", "OWNER", "serve", "visible_schema"]
