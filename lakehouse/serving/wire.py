"""The MySQL protocol's edges, guarded: what mysql-mimic leaves open to an untrusted client.

mysql-mimic reads a packet of any size (a client may send gigabytes), waits forever for a handshake
or the next command, logs a traceback per failed login or failed command, keeps the first account
after a COM_CHANGE_USER whose authentication failed, counts and substitutes prepared-statement
parameters with a regular expression that is quadratic in the text (on the event loop), and pastes
parameter values into the SQL unescaped. Here, as MySQL itself does: a packet is at most
`max_packet` bytes (max_allowed_packet), a handshake has `handshake_seconds` (connect_timeout), an
idle connection `idle_seconds` (wait_timeout), a refused COM_CHANGE_USER closes the connection, a
connection has a bounded number of prepared statements and of long data, parameters are bound as
escaped literals by a linear scan, and every refusal is one line in the log.

The session (mysql.py) answers statements; this module only moves bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import decimal
import io
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mysql_mimic import packets, types
from mysql_mimic.connection import Connection
from mysql_mimic.constants import KillKind
from mysql_mimic.control import LocalControl
from mysql_mimic.errors import ErrorCode, MysqlError
from mysql_mimic.prepared import PreparedStatement
from mysql_mimic.server import MysqlServer
from mysql_mimic.stream import ConnectionClosed, MysqlStream

log = logging.getLogger("lakehouse.serve")

CLIENT_ADDRESS: contextvars.ContextVar[str | None] = contextvars.ContextVar("lakehouse_client", default=None)
"""The peer address of the connection the current task serves (logins are throttled by it)."""
ER_NET_PACKET_TOO_LARGE = 1153
ER_TOO_MANY_PREPARED = 1461


@dataclass(frozen=True)
class WireLimits:
    """What one connection may do to the server, whatever it sends."""

    max_packet: int = 4 * 2**20
    """Largest command a client may send (MySQL's max_allowed_packet); larger closes the connection."""
    handshake_seconds: float = 10.0
    """Time to complete the handshake and login (MySQL's connect_timeout)."""
    idle_seconds: float = 900.0
    """Time a logged-in connection may wait between commands (MySQL's wait_timeout)."""
    max_connections: int = 256
    """Connections served at once (MySQL's max_connections); more are refused."""
    max_prepared: int = 256
    """Prepared statements one connection may hold."""


class PacketTooLarge(Exception):
    def __init__(self, size: int) -> None:
        super().__init__(f"a packet of more than {size:,} bytes")
        self.size = size


class IdleTimeout(Exception):
    """The client sent nothing for longer than the connection may wait."""


class EncodedResultSet:
    """A result whose text-protocol rows were encoded off the event loop (in the worker thread that
    ran the query): the loop only writes bytes. (mysql-mimic's ResultSet is compiled and cannot be
    subclassed; GuardedConnection.query passes this one through.)"""

    def __init__(self, columns: Sequence[Any], encoded: list[bytes], count: int) -> None:
        self.columns = columns
        self.rows: Sequence[Any] = ()
        self.encoded = encoded
        self.count = count

    def __bool__(self) -> bool:
        return bool(self.columns)


class GuardedStream:
    """mysql-mimic's stream (compiled: it cannot be subclassed, so it is wrapped) with a bound on
    packet size and a timeout on every read; writing is the wrapped stream's."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, limits: WireLimits
    ) -> None:
        self._inner = MysqlStream(reader, writer)
        self.reader = reader
        self.limits = limits
        self.read_timeout = limits.handshake_seconds

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def _exactly(self, n: int) -> bytes:
        try:
            return await asyncio.wait_for(self.reader.readexactly(n), self.read_timeout)
        except asyncio.IncompleteReadError:
            raise ConnectionClosed() from None
        except TimeoutError:
            raise IdleTimeout() from None

    async def read(self) -> bytes:
        data = bytearray()
        while True:
            header = int.from_bytes(await self._exactly(4), "little")
            length, sequence = header & 0xFFFFFF, header >> 24
            expected = next(self._inner.seq)
            if sequence != expected:
                raise MysqlError(f"Expected seq({expected}) got seq({sequence})", ErrorCode.MALFORMED_PACKET)
            if len(data) + length > self.limits.max_packet:
                raise PacketTooLarge(self.limits.max_packet)
            if length:
                data += await self._exactly(length)
            if length < 0xFFFFFF:
                return bytes(data)


def placeholders(sql: str) -> list[int]:
    """Offsets of the `?` placeholders outside quotes ('...', "...", `...`, with backslash escapes
    and doubled quotes) and comments: one linear pass."""
    found: list[int] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            i += 1
            while i < n:
                if sql[i] == "\\" and c != "`":
                    i += 2
                    continue
                if sql[i] == c:
                    if i + 1 < n and sql[i + 1] == c:
                        i += 2
                        continue
                    break
                i += 1
        elif c == "-" and sql.startswith("-- ", i) or c == "#":
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif c == "/" and sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 1
        elif c == "?":
            found.append(i)
        i += 1
    return found


def sql_literal(value: Any) -> str:
    """A parameter value as a MySQL literal that can only be a value."""
    if value is None:
        return "NULL"
    if value is True or value is False:
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float | decimal.Decimal):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, bytes | bytearray):
        return "X'" + bytes(value).hex() + "'"
    if isinstance(value, dt.datetime | dt.date | dt.time | dt.timedelta):
        value = str(value)
    text = str(value).replace("\\", "\\\\").replace("'", "''")
    return f"'{text}'"


def bind(sql: str, values: Sequence[Any]) -> str:
    """`sql` with its placeholders replaced by the values as literals."""
    spots = placeholders(sql)
    if len(values) < len(spots):
        raise MysqlError(f"{len(spots)} parameters expected, {len(values)} given", code=ErrorCode.PARSE_ERROR)
    out, last = [], 0
    for spot, value in zip(spots, values, strict=False):
        out.append(sql[last:spot])
        out.append(sql_literal(value))
        last = spot + 1
    out.append(sql[last:])
    return "".join(out)


class GuardedConnection(Connection):
    """One client connection with the limits above; the session decides what statements do."""

    def __init__(self, *args: Any, limits: WireLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.address: str | None = None

    @property
    def guarded(self) -> GuardedStream:
        stream: Any = self.stream
        assert isinstance(stream, GuardedStream)
        return stream

    async def _start(self) -> None:
        from mysql_mimic import context

        context.connection_id.set(self.connection_id)
        try:
            await asyncio.wait_for(self.connection_phase(), self.limits.handshake_seconds)
        except TimeoutError:
            log.info(
                "connection %s from %s: no login within %gs, closed",
                self.connection_id,
                self.address,
                self.limits.handshake_seconds,
            )
            return
        except (ConnectionClosed, ConnectionError, IdleTimeout, PacketTooLarge):
            return
        except MysqlError as exc:
            await self._try_write(self.error(msg=exc.msg, code=exc.code))
            return
        if self.session.username is None:
            return  # refused: the error went to the client, the attempt to the audit and the log
        self.guarded.read_timeout = self.limits.idle_seconds
        try:
            await self.session.init(self)
        except MysqlError as exc:
            await self._try_write(self.error(msg=exc.msg, code=exc.code))
            return
        try:
            await self.command_phase()
        except asyncio.CancelledError:
            if self._kill != KillKind.CONNECTION:  # type: ignore[has-type]
                raise
            await self._try_write(self.error(msg="Session was killed", code=ErrorCode.SESSION_WAS_KILLED))
        finally:
            await self.session.close()

    async def _try_write(self, packet: bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):  # the client is gone
            await self.stream.write(packet)

    async def command_phase(self) -> None:
        """mysql-mimic's command loop, with one log line (no traceback) per failed command, and
        the connection closed on an oversized packet, an idle timeout or a refused COM_CHANGE_USER."""
        handlers = {
            types.Commands.COM_QUERY: self.handle_query,
            types.Commands.COM_STMT_PREPARE: self.handle_stmt_prepare,
            types.Commands.COM_STMT_SEND_LONG_DATA: self.handle_stmt_send_long_data,
            types.Commands.COM_STMT_EXECUTE: self.handle_stmt_execute,
            types.Commands.COM_STMT_FETCH: self.handle_stmt_fetch,
            types.Commands.COM_STMT_RESET: self.handle_stmt_reset,
            types.Commands.COM_STMT_CLOSE: self.handle_stmt_close,
            types.Commands.COM_PING: self.handle_ping,
            types.Commands.COM_CHANGE_USER: self.handle_change_user,
            types.Commands.COM_RESET_CONNECTION: self.handle_reset_connection,
            types.Commands.COM_DEBUG: self.handle_debug,
            types.Commands.COM_INIT_DB: self.handle_init_db,
            types.Commands.COM_FIELD_LIST: self.handle_field_list,
        }
        while True:
            try:
                data = await self.stream.read()
            except ConnectionClosed:
                return
            except IdleTimeout:
                log.info("connection %s: idle for %gs, closed", self.connection_id, self.limits.idle_seconds)
                return
            except PacketTooLarge as exc:
                await self._refuse_packet(exc)
                return
            try:
                if not data or data[0] == types.Commands.COM_QUIT:
                    return
                handler = handlers.get(data[0])
                if handler is None:
                    raise MysqlError(f"Unsupported command {hex(data[0])}", ErrorCode.UNKNOWN_COM_ERROR)
                await handler(data[1:])
            except MysqlError as exc:
                await self.stream.write(self.error(msg=exc.msg, code=exc.code))
            except asyncio.CancelledError:
                if self._kill != KillKind.QUERY:  # type: ignore[has-type]
                    raise
                if self._task is not None:
                    self._task.uncancel()
                self._kill = None
                await self.stream.write(self.error(msg="Query execution was interrupted", code=1317))  # type: ignore[arg-type]
            except (ConnectionClosed, ConnectionError):
                return
            except Exception as exc:  # noqa: BLE001 - the client gets an error, the log one line
                log.error("connection %s: command failed: %s", self.connection_id, type(exc).__name__)
                log.debug("command failure", exc_info=True)
                await self.stream.write(self.error(msg=f"internal error ({type(exc).__name__})"))
            finally:
                self.stream.reset_seq()
            if data[0] == types.Commands.COM_CHANGE_USER and self.session.username is None:
                return  # the new login was refused (or unreadable; its error sent): the connection ends

    async def _refuse_packet(self, exc: PacketTooLarge) -> None:
        log.warning("connection %s from %s: %s, closed", self.connection_id, self.address, exc)
        refused = getattr(self.session, "refused_packet", None)
        if refused is not None:
            await refused(exc.size)
        message = f"Got a packet bigger than 'max_allowed_packet' bytes ({exc.size:,})"
        await self._try_write(self.error(msg=message, code=ER_NET_PACKET_TOO_LARGE))  # type: ignore[arg-type]

    async def handle_change_user(self, data: bytes) -> None:
        """COM_CHANGE_USER logs in anew: the old account is gone first, so a refused login leaves
        none (mysql-mimic kept the first one); the connection then ends, as in MySQL."""
        logout = getattr(self.session, "logout", None)
        if logout is not None:
            logout()
        await super().handle_change_user(data)

    async def handle_query(self, data: bytes) -> None:
        self.session.binary_rows = False  # type: ignore[attr-defined]
        await super().handle_query(data)

    async def handle_stmt_prepare(self, data: bytes) -> None:
        sql = self.client_charset.decode(data)
        limit = getattr(self.session, "max_query_chars", len(sql))
        if len(sql) > limit:
            raise MysqlError(
                f"the statement is {len(sql):,} characters; at most {limit:,}", ErrorCode.PARSE_ERROR
            )
        if len(self.prepared_stmts) >= self.limits.max_prepared:
            raise MysqlError(
                f"this connection holds {self.limits.max_prepared} prepared statements; close some",
                code=ER_TOO_MANY_PREPARED,  # type: ignore[arg-type]
            )
        stmt = PreparedStatement(
            stmt_id=next(self.prepared_stmt_seq), sql=sql, num_params=len(placeholders(sql))
        )
        self.prepared_stmts[stmt.stmt_id] = stmt
        for packet in self.com_stmt_prepare_response(stmt):
            await self.stream.write(packet, drain=False)
        await self.stream.drain()

    async def handle_stmt_send_long_data(self, data: bytes) -> None:
        found = packets.parse_com_stmt_send_long_data(data)
        stmt = self.get_stmt(found.stmt_id)
        buffers = stmt.param_buffers if stmt.param_buffers is not None else {}
        stmt.param_buffers = buffers
        if sum(len(b) for b in buffers.values()) + len(found.data) > self.limits.max_packet:
            stmt.param_buffers = None
            raise MysqlError("the parameters' long data exceed max_allowed_packet", ER_NET_PACKET_TOO_LARGE)  # type: ignore[arg-type]
        buffers.setdefault(found.param_id, bytearray()).extend(found.data)

    async def handle_stmt_execute(self, data: bytes) -> None:
        """COM_STMT_EXECUTE, its parameters bound by `bind` (escaped literals) instead of mysql-mimic's
        unescaped pasting, then answered like a query with binary rows."""
        reader = io.BytesIO(data)
        stmt = self.get_stmt(packets.read_uint_4(reader))
        flags = types.ComStmtExecuteFlags(packets.read_uint_1(reader))
        use_cursor = types.ComStmtExecuteFlags.CURSOR_TYPE_READ_ONLY in flags
        packets.read_uint_4(reader)  # iteration count: always 1
        count = stmt.num_params
        announced = stmt.num_params > 0 or types.ComStmtExecuteFlags.PARAMETER_COUNT_AVAILABLE in flags
        if announced and types.Capabilities.CLIENT_QUERY_ATTRIBUTES in self.capabilities:
            count = packets.read_uint_len(reader)
        params = (
            packets._read_params(self.capabilities, self.client_charset, reader, count, stmt.param_buffers)
            if count > 0
            else []
        )
        stmt.param_buffers = None
        sql = bind(stmt.sql, [v for _, v in params[: stmt.num_params]])
        attrs = {k: v for k, v in params[stmt.num_params :] if k is not None}
        self.session.binary_rows = True  # type: ignore[attr-defined]
        result_set = await self.query(sql, attrs)
        if not result_set:
            await self.stream.write(self.ok())
            return
        await self.stream.write(types.uint_len(len(result_set.columns)))
        for column in result_set.columns:
            await self.stream.write(
                packets.make_column_definition_41(
                    server_charset=self.server_charset,
                    name=column.name,
                    column_type=column.type,
                    character_set=column.character_set,
                )
            )
        rows = [packets.make_binary_resultrow(r, result_set.columns) for r in result_set.rows]  # type: ignore[union-attr]

        async def cursor() -> Any:
            for row in rows:
                yield row

        if use_cursor:
            stmt.cursor = cursor()
            await self.stream.write(self.ok_or_eof(flags=types.ServerStatus.SERVER_STATUS_CURSOR_EXISTS))
            return
        if not self.deprecate_eof():
            await self.stream.write(self.eof())
        self.stream.write_many(rows)
        await self.stream.write(self.ok_or_eof())

    async def query(self, sql: str, query_attrs: dict[str, str]) -> Any:
        from mysql_mimic.results import ensure_result_set

        result = await self.session.handle_query(sql, query_attrs)
        return result if isinstance(result, EncodedResultSet) else await ensure_result_set(result)

    async def write_text_resultset(self, result_set: Any) -> None:
        if not isinstance(result_set, EncodedResultSet):
            await super().write_text_resultset(result_set)
            return
        header = [
            packets.make_column_count(capabilities=self.capabilities, column_count=len(result_set.columns))
        ]
        for column in result_set.columns:
            header.append(
                packets.make_column_definition_41(
                    server_charset=self.server_charset,
                    name=column.name,
                    column_type=column.type,
                    character_set=column.character_set,
                )
            )
        if not self.deprecate_eof():
            header.append(self.eof())
        self.stream.write_many(header)
        for start in range(0, len(result_set.encoded), 4096):  # a slow reader waits alone
            self.stream.write_many(result_set.encoded[start : start + 4096])
            await self.stream.drain()
        await self.stream.write(self.ok_or_eof(affected_rows=result_set.count), drain=False)
        await self.stream.drain()


class GuardedServer(MysqlServer):
    """mysql-mimic's server, building guarded streams and connections, with a connection limit."""

    def __init__(self, *args: Any, limits: WireLimits, **kwargs: Any) -> None:
        super().__init__(*args, control=LocalControl(), **kwargs)
        self.limits = limits

    @property
    def connections(self) -> dict[int, Connection]:
        assert isinstance(self.control, LocalControl)
        return self.control._connections

    async def _client_connected_cb(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else None
        CLIENT_ADDRESS.set(address)
        stream = GuardedStream(reader, writer, self.limits)
        if len(self.connections) >= self.limits.max_connections:
            log.warning("refused a connection from %s: %d connections open", address, len(self.connections))
            await stream.write(packets.make_error(msg="Too many connections", code=ErrorCode.CON_COUNT_ERROR))
            writer.close()
            return
        session = self.session_factory()
        connection = GuardedConnection(
            stream=stream,  # type: ignore[arg-type]
            session=session,  # type: ignore[arg-type]
            control=self.control,
            server_capabilities=self.capabilities,
            identity_provider=self.identity_provider,
            ssl=self.ssl,
            limits=self.limits,
        )
        connection.address = address
        connection.connection_id = await self.control.add(connection)
        try:
            await connection.start()
        except (ConnectionError, ConnectionClosed, asyncio.IncompleteReadError):
            pass  # the client left
        except asyncio.CancelledError:
            pass  # the server is stopping: this connection's task ends here, quietly
        finally:
            writer.close()
            await self.control.remove(connection.connection_id)
