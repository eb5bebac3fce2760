"""DuckDB: the embedded engine, over Arrow datasets (see shared STACK notes: no DuckDB extensions here).

Tables are handed to DuckDB as lazy pyarrow datasets, so filters and projections are pushed into
the scan. Named parameters ($dt, $hh, ...) are bound, never pasted into SQL text.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, ClassVar

from lakehouse.engines.base import QueryCancelled, QueryError, QueryLimitExceeded, ResultLimits, current_scope
from lakehouse.engines.sql import quote_ident

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.core.ids import TableId


LIMITED_BATCH_ROWS = 8_192
"""Rows per batch when a result is bounded: the limits are checked between batches."""


class DuckDBEngine:
    """Run SQL over named Arrow sources in a fresh in-memory DuckDB (one per query: no shared state).

    A sequence of trusted statements (one model run: its days, checks and bookkeeping) may share one
    connection through `session()`: opening a DuckDB database costs ~30 ms, a statement on an open
    one ~3 ms. Governed queries never use a session: each gets a connection of its own."""

    name = "duckdb"
    POOL_SIZE = 16
    """Idle connections kept per configuration for pooled engines (governed queries)."""
    _idle: ClassVar[dict[tuple[Any, ...], list[Any]]] = {}
    _idle_lock = threading.Lock()

    def __init__(
        self,
        threads: int | None = None,
        memory_limit: str | None = None,
        timeout_seconds: float | None = None,
        timeout_limit: float | None = None,
        pooled: bool = False,
        limits: ResultLimits | None = None,
    ) -> None:
        self.pooled = pooled
        self.limits = limits
        """What one statement may return (governed queries); None: no bound (trusted callers)."""
        """Reuse connections between statements (a statement that succeeded leaves none of its
        views or registrations behind; one that failed closes its connection)."""
        self.threads = threads
        self.memory_limit = memory_limit
        """DuckDB's memory_limit for each connection (e.g. '4GB'); past it a statement fails."""
        self.timeout_seconds = timeout_seconds
        """Wall time a statement may take, reading its result included; then it is interrupted."""
        self.timeout_limit = timeout_limit if timeout_limit is not None else timeout_seconds
        """The limit an error names (a governed query's statement gets only the time it has left)."""

    def _open(self) -> Any:
        import duckdb

        config: dict[str, Any] = {}
        if self.threads:
            config["threads"] = self.threads
        if self.memory_limit:
            config["memory_limit"] = self.memory_limit
        con = duckdb.connect(":memory:", config=config)
        # Queries see only what is registered: no files, no URLs, no settings changes.
        con.execute("set enable_external_access = false")
        con.execute("set lock_configuration = true")
        return con

    @contextmanager
    def session(self) -> Iterator[DuckDBSession]:
        """One connection for several trusted statements, closed at the end (pooled: returned to
        the pool when every statement succeeded)."""
        if not self.pooled:
            con = self._open()
            try:
                yield DuckDBSession(
                    con, self.timeout_seconds, self.memory_limit, self.timeout_limit, self.limits
                )
            finally:
                con.close()
            return
        key = (self.threads, self.memory_limit)
        with DuckDBEngine._idle_lock:
            idle = DuckDBEngine._idle.setdefault(key, [])
            con = idle.pop() if idle else None
        con = con or self._open()
        try:
            yield DuckDBSession(con, self.timeout_seconds, self.memory_limit, self.timeout_limit, self.limits)
        except BaseException:
            con.close()
            raise
        with DuckDBEngine._idle_lock:
            if len(idle) < self.POOL_SIZE:
                idle.append(con)
                return
        con.close()

    def query(
        self,
        sql: str,
        sources: Mapping[TableId | str, Any],
        params: Mapping[str, Any] | None = None,
        *,
        default_namespace: str | None = None,
        statement_name: str = "query",
    ) -> pa.Table:
        """Run one statement (on a connection of its own) and return its result as an Arrow table."""
        with self.session() as session:
            return session.query(
                sql, sources, params, default_namespace=default_namespace, statement_name=statement_name
            )

    @contextmanager
    def stream(
        self,
        sql: str,
        sources: Mapping[TableId | str, Any],
        params: Mapping[str, Any] | None = None,
        *,
        default_namespace: str | None = None,
        statement_name: str = "query",
        batch_rows: int = 262_144,
    ) -> Iterator[pa.RecordBatchReader]:
        """Run one statement (on a connection of its own) and stream its result in record batches."""
        with (
            self.session() as session,
            session.stream(
                sql,
                sources,
                params,
                default_namespace=default_namespace,
                statement_name=statement_name,
                batch_rows=batch_rows,
            ) as reader,
        ):
            yield reader


class _Watchdog:
    """After `seconds`, call `interrupt` every 0.2 s until cancelled.

    One thread serves every watchdog of the process (a heap of deadlines): starting a thread per
    statement cost more than a small statement itself under concurrent queries."""

    _heap: ClassVar[list[tuple[float, int, _Watchdog]]] = []
    _wake = threading.Condition()
    _thread: ClassVar[threading.Thread | None] = None
    _ids = itertools.count()

    def __init__(self, seconds: float, interrupt: Any) -> None:
        self._seconds = seconds
        self._interrupt = interrupt
        self._done = False

    def start(self) -> None:
        cls = _Watchdog
        with cls._wake:
            heapq.heappush(cls._heap, (time.monotonic() + self._seconds, next(cls._ids), self))
            if cls._thread is None or not cls._thread.is_alive():
                cls._thread = threading.Thread(target=cls._serve, name="duckdb-timeout", daemon=True)
                cls._thread.start()
            cls._wake.notify()

    def cancel(self) -> None:
        with _Watchdog._wake:
            self._done = True  # dropped from the heap when its deadline comes up

    @classmethod
    def _serve(cls) -> None:
        while True:
            with cls._wake:
                while cls._heap and cls._heap[0][2]._done:
                    heapq.heappop(cls._heap)
                if not cls._heap:
                    cls._wake.wait()
                    continue
                due, _, dog = cls._heap[0]
                left = due - time.monotonic()
                if left > 0:
                    cls._wake.wait(left)
                    continue
                heapq.heappop(cls._heap)
                heapq.heappush(cls._heap, (time.monotonic() + 0.2, next(cls._ids), dog))  # again
            try:
                dog._interrupt()
            except Exception:  # a connection closed meanwhile: nothing left to interrupt
                dog.cancel()


class DuckDBSession:
    """Statements on one DuckDB connection, one at a time: each statement's sources are bound as
    views for it alone (namespace.table, or a bare name) and dropped when it is done."""

    def __init__(
        self,
        con: Any,
        timeout_seconds: float | None = None,
        memory_limit: str | None = None,
        timeout_limit: float | None = None,
        limits: ResultLimits | None = None,
    ) -> None:
        self._con = con
        self._limits = limits
        self._timeout = timeout_seconds
        self._timeout_limit = timeout_limit if timeout_limit is not None else timeout_seconds
        self._memory_limit = memory_limit
        self._busy = False
        self._schemas: set[str] = set()
        self._statements = 0

    def _bind(self, sources: Mapping[TableId | str, Any], default_namespace: str | None) -> list[str]:
        con = self._con
        self._statements += 1
        schema = default_namespace or "main"
        for namespace in {schema, *(i.namespace for i in sources if not isinstance(i, str))} - self._schemas:
            if namespace != "main":
                con.execute(f"create schema if not exists {quote_ident(namespace)}")
            self._schemas.add(namespace)
        con.execute(f"use {quote_ident(schema)}")
        bound: list[str] = []
        for i, (ident, source) in enumerate(sources.items()):
            namespace, name = ("main", ident) if isinstance(ident, str) else (ident.namespace, ident.name)
            alias = f"__source_{self._statements}_{i}"
            con.register(alias, source)
            bound.append(alias)
            view = f"{quote_ident(namespace)}.{quote_ident(name)}"
            con.execute(f"create view {view} as select * from {alias}")
            bound.append(view)
        return bound

    def _unbind(self, bound: list[str]) -> None:
        for name in reversed(bound):
            if name.startswith("__source_"):
                self._con.unregister(name)
            else:
                self._con.execute(f"drop view if exists {name}")

    def query(
        self,
        sql: str,
        sources: Mapping[TableId | str, Any],
        params: Mapping[str, Any] | None = None,
        *,
        default_namespace: str | None = None,
        statement_name: str = "query",
    ) -> pa.Table:
        import pyarrow as pa

        limits = self._limits
        with self.stream(
            sql,
            sources,
            params,
            default_namespace=default_namespace,
            statement_name=statement_name,
            batch_rows=262_144 if limits is None else LIMITED_BATCH_ROWS,
        ) as reader:
            if limits is None:
                return reader.read_all()
            batches, rows, size = [], 0, 0
            for batch in reader:  # stopped at the limit: nothing past it is computed or kept
                rows += batch.num_rows
                size += batch.nbytes
                limits.check(rows, size, statement_name)
                batches.append(batch)
            return pa.Table.from_batches(batches, schema=reader.schema)

    @contextmanager
    def stream(
        self,
        sql: str,
        sources: Mapping[TableId | str, Any],
        params: Mapping[str, Any] | None = None,
        *,
        default_namespace: str | None = None,
        statement_name: str = "query",
        batch_rows: int = 262_144,
    ) -> Iterator[pa.RecordBatchReader]:
        """Run one statement and stream its result in record batches (bounded memory)."""
        import duckdb
        import pyarrow as pa

        if self._busy:
            raise RuntimeError("a DuckDB session runs one statement at a time; finish reading the last one")
        self._busy = True
        used = {k: v for k, v in (params or {}).items() if f"${k}" in sql}

        scope = current_scope()

        def failure(exc: Exception) -> QueryError:
            if isinstance(exc, duckdb.InterruptException) and scope is not None and scope.cancelled:
                return QueryCancelled(f"{statement_name}: cancelled (KILL QUERY)")
            if isinstance(exc, duckdb.InterruptException) and self._timeout is not None:
                return QueryLimitExceeded(
                    f"{statement_name}: cancelled after {self._timeout_limit:g} s, "
                    "the limit LAKEHOUSE_QUERY_TIMEOUT_SECONDS sets"
                )
            if isinstance(exc, duckdb.OutOfMemoryException) and self._memory_limit:
                return QueryLimitExceeded(
                    f"{statement_name}: needs more memory than {self._memory_limit}, "
                    "the limit LAKEHOUSE_QUERY_MEMORY_LIMIT sets"
                )
            return QueryError(f"{statement_name}: {str(exc).splitlines()[0]}")

        def batches(reader: Any) -> Iterator[pa.RecordBatch]:
            try:
                for batch in reader:
                    if scope is not None:
                        scope.check()  # a cancel that came while DuckDB was still binding
                    yield batch
            except duckdb.Error as exc:
                raise failure(exc) from None
            except pa.ArrowException as exc:  # a value Arrow cannot hold (a string over 2 GB)
                raise QueryLimitExceeded(f"{statement_name}: {str(exc).splitlines()[0]}") from None

        # The clock covers running the statement and reading its result; on expiry the connection's
        # work is interrupted, again and again until the statement stops (an interrupt that arrives
        # while DuckDB is still binding is lost), so nothing keeps running after the error.
        timer = _Watchdog(self._timeout, self._con.interrupt) if self._timeout else None
        bound: list[str] = []
        reader: Any = None
        interruptible = scope.interruptible(self._con.interrupt) if scope is not None else nullcontext()
        try:
            with interruptible:  # KILL QUERY from another connection interrupts this statement
                try:
                    bound = self._bind(sources, default_namespace)
                    if timer is not None:
                        timer.start()
                    reader = self._con.sql(sql, params=used or None).to_arrow_reader(batch_rows)
                except duckdb.Error as exc:
                    raise failure(exc) from None
                yield pa.RecordBatchReader.from_batches(reader.schema, batches(reader))
        finally:
            if timer is not None:
                timer.cancel()
            if reader is not None:
                reader.close()  # a result left unread (a limit stopped it) holds the connection
            try:
                self._unbind(bound)
            finally:
                self._busy = False
