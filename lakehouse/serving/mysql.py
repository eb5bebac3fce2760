"""The SQL endpoint: the MySQL protocol (as StarRocks' frontend speaks it on 9030), on mysql-mimic.

Clients connect unchanged (the mysql CLI, PyMySQL, SQLAlchemy `mysql+pymysql://`, BI tools). Namespaces
are databases. Every query is the facade's `sql(query, user=...)`, the same call as `lakehouse sql
--user`, so grants, masks, limits and the audit hold exactly as there; queries arrive in MySQL /
StarRocks SQL and are translated to DuckDB's dialect with sqlglot. SHOW, DESCRIBE, USE and
information_schema are answered by mysql-mimic from the catalog as the user may list it: databases
the user holds `List` on, and in them the tables it may SELECT (with their columns as it sees them).

mysql-mimic runs on asyncio; the facade's calls block, so each runs in a worker thread of a pool.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mysql_mimic import MysqlServer, Session
from mysql_mimic.auth import AuthInfo, AuthState, Forbidden, IdentityProvider, NativePasswordAuthPlugin, User
from mysql_mimic.errors import ErrorCode, MysqlError
from sqlglot import exp

from lakehouse.governance.store import OWNER, PermissionDenied
from lakehouse.serving.auth import Account, account, audit_login, verifier
from lakehouse.serving.listing import create_table_ddl, result_set, visible_schema

if TYPE_CHECKING:
    import pyarrow as pa
    from sqlglot.expressions import Expression

    from lakehouse.facade import Lakehouse

log = logging.getLogger("lakehouse.serve")

DEFAULT_PORT = 9030
"""StarRocks' frontend query port."""
SERVER_VERSION = "8.0.33-lakehouse"
"""What `SELECT VERSION()` answers: MySQL 8 syntax, as StarRocks announces itself."""
ER_BAD_DB = 1049
ER_TABLEACCESS_DENIED = 1142
ER_NO_SUCH_TABLE = 1146
SCHEMA_SECONDS = 2.0
"""How long one session reuses the catalog listing it built for SHOW / information_schema."""


class _LakehouseUser(User):
    """A login name with the account it names (None: no such user, refused like a wrong password)."""

    def __init__(self, name: str, auth_string: str, found: Account | None) -> None:
        super().__init__(name=name, auth_string=auth_string, auth_plugin=NativePasswordAuthPlugin.name)
        self.account = found


class AuditedNativePassword(NativePasswordAuthPlugin):
    """MySQL's native-password handshake, with every decision written to the access audit."""

    def __init__(self, lh: Lakehouse) -> None:
        self.lh = lh

    async def auth(self, auth_info: AuthInfo | None = None) -> AuthState:
        inner = super().auth(auth_info)
        decision = await inner.__anext__()
        while isinstance(decision, bytes):  # the nonce, when the handshake did not carry one
            auth_info = yield decision
            decision = await inner.asend(auth_info)
        user = auth_info.user if auth_info else None
        found = user.account if isinstance(user, _LakehouseUser) else None
        ok = not isinstance(decision, Forbidden) and found is not None
        name = user.name if user else None
        await asyncio.to_thread(audit_login, self.lh, name, found, "sql endpoint", ok)
        if not ok:
            decision = Forbidden(f"Access denied for user '{name}' (wrong password, or no such login)")
        yield decision


class LakehouseIdentity(IdentityProvider):
    """Logins from the catalog's verifiers. An unknown user gets a verifier no password matches, so
    it is refused (and audited) exactly like a wrong password: the endpoint confirms no name."""

    def __init__(self, lh: Lakehouse) -> None:
        self.lh = lh
        self.plugin = AuditedNativePassword(lh)
        self._unmatchable = secrets.token_hex(20)

    def get_plugins(self) -> Sequence[NativePasswordAuthPlugin]:
        return [self.plugin]

    async def get_user(self, username: str) -> User | None:
        def look() -> tuple[Account | None, str | None]:
            found = account(self.lh, username)
            return found, verifier(self.lh, found) if found else None

        found, stored = await asyncio.to_thread(look)
        return _LakehouseUser(username, stored or self._unmatchable, found if stored else None)


def to_duckdb(expression: Expression) -> str:
    """A MySQL / StarRocks statement as DuckDB SQL (identifiers keep their case)."""
    return expression.sql(dialect="duckdb")


def _error(exc: Exception) -> MysqlError:
    """Our errors as MySQL errors: their messages name the user, table or statement and hold no
    secret; anything unexpected is reported without its internals (the server log has the type)."""
    from lakehouse.engines.base import QueryError

    if isinstance(exc, MysqlError):
        return exc
    if isinstance(exc, PermissionDenied):
        return MysqlError(str(exc), code=ER_TABLEACCESS_DENIED)  # type: ignore[arg-type]
    if isinstance(exc, QueryError):
        text = str(exc)
        code = ErrorCode.PARSE_ERROR if text.startswith("cannot parse") else ErrorCode.UNKNOWN_ERROR
        return MysqlError(text, code=code)
    log.error("query failed: %s", type(exc).__name__)
    return MysqlError(
        f"internal error ({type(exc).__name__}); see the server log", code=ErrorCode.UNKNOWN_ERROR
    )


@dataclass
class _Listing:
    at: float
    schema: dict[str, dict[str, dict[str, str]]]


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


class LakehouseSession(Session):
    """One client connection: the logged-in account, its current database, its queries."""

    database: str | None

    def __init__(self, lh: Lakehouse, pool: ThreadPoolExecutor) -> None:
        super().__init__()
        self.lh = lh
        self.pool = pool
        self.account: Account | None = None
        self._listing: _Listing | None = None
        self._refused_database: str | None = None
        self.variables.set("version", SERVER_VERSION, force=True)
        self.variables.set(
            "version_comment", "lakehouse SQL endpoint (StarRocks-style, MySQL protocol)", force=True
        )

    async def init(self, connection: Any) -> None:
        await super().init(connection)
        if self.username is None:  # the handshake refused it: nothing more on this connection
            raise MysqlError("not logged in", code=ErrorCode.ACCESS_DENIED_ERROR)
        if self.database:  # the database of the handshake: visible, or every statement refuses
            wanted = self.database
            self.database = None
            try:
                await self.use(wanted)
            except MysqlError:
                self._refused_database = wanted

    async def handle_query(self, sql: str, attrs: dict[str, str]) -> Any:
        if self._refused_database is not None:
            parsed = self._parse(sql)
            if not (len(parsed) == 1 and isinstance(parsed[0], exp.Use)):
                raise MysqlError(f"Unknown database '{self._refused_database}'", code=ER_BAD_DB)  # type: ignore[arg-type]
        result = await super().handle_query(sql, attrs)
        self._refused_database = None if self._refused_database and self.database else self._refused_database
        return result

    async def _set_var_middleware(self, q: Any) -> Any:
        """mysql-mimic replaces @@variables, SET_VAR hints and functions such as NOW() or DATABASE()
        by their values, copying and walking the whole tree: a query that names none of them skips
        it (a dashboard's queries mostly do)."""
        if _specials(self).search(q.sql) is None:
            return await q.next()
        return await super()._set_var_middleware(q)

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def _account(self) -> Account:
        if self.account is None:
            found = account(self.lh, self.username) if self.username else None
            if found is None:
                raise MysqlError("not logged in", code=ErrorCode.ACCESS_DENIED_ERROR)
            self.account = found
        return self.account

    async def query(self, expression: exp.Expression, sql: str, attrs: dict[str, str]) -> Any:
        login = self._account()
        try:
            statement = to_duckdb(expression)
            result = await self._run(self._governed_sql, login, statement)
        except Exception as exc:  # every failure leaves as a MySQL error the client shows
            raise _error(exc) from None
        return result_set(result)

    def _governed_sql(self, login: Account, statement: str) -> pa.Table:
        """The facade's sql as this login; the owner's queries are audited here too (over the
        network every query is, though `lakehouse sql` on the owner's own machine is not)."""
        if login.user is not None:
            return self.lh.sql(statement, user=login.user, project=self.database)
        from lakehouse.governance.store import Principal

        with self.lh.access.attempt(Principal(), "query", statement) as record:
            result = self.lh.sql(statement, project=self.database)
            record.rows = result.num_rows
        return result

    async def schema(self) -> dict[str, dict[str, dict[str, str]]]:
        now = time.monotonic()
        if self._listing is None or now - self._listing.at > SCHEMA_SECONDS:
            login = self._account()
            self._listing = _Listing(now, await self._run(visible_schema, self.lh, login))
        return self._listing.schema

    async def _show(self, expression: exp.Show) -> Any:
        if expression.name.upper() == "CREATE TABLE":
            return await self._show_create_table(expression)
        return await super()._show(expression)

    async def _show_create_table(self, expression: exp.Show) -> Any:
        """SHOW CREATE TABLE (SQLAlchemy's inspector reads columns from it), from the same listing
        as SHOW TABLES: a table the user may not list does not exist for it."""
        name = expression.text("target")
        database = expression.text("db") or self.database
        if not database:
            raise MysqlError("No database selected", code=ErrorCode.NO_DB_ERROR)
        schema = await self.schema()
        tables = next((t for db, t in schema.items() if db.lower() == database.lower()), {})
        found = next((t for t in tables if t.lower() == name.lower()), None)
        if found is None:
            raise MysqlError(f"Unknown table '{database}.{name}'", code=ER_NO_SUCH_TABLE)  # type: ignore[arg-type]
        return [(found, create_table_ddl(found, tables[found]))], ["Table", "Create Table"]

    async def use(self, database: str) -> None:
        if database.lower() == "information_schema":
            self.database = database
            return
        schema = await self.schema()
        found = next((db for db in schema if db.lower() == database.lower()), None)
        if found is None:  # not there, or not listable: the same answer
            raise MysqlError(f"Unknown database '{database}'", code=ER_BAD_DB)  # type: ignore[arg-type]
        self.database = found


async def serve(
    lh: Lakehouse,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    ssl: Any = None,
    workers: int = 16,
    ready: Any = None,
) -> None:
    """Serve until cancelled. `ready(sockname)` is called once listening (the CLI prints it)."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lakehouse-sql")
    server = MysqlServer(
        session_factory=lambda: LakehouseSession(lh, pool),
        identity_provider=LakehouseIdentity(lh),
        ssl=ssl,
    )
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
