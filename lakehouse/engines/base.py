"""The engine interface: run SQL over named Arrow sources. DuckDB is one implementation (duckdb.py).

An engine runs one statement at a time on a connection of its own (`query`, `stream`), or a sequence
of trusted statements on one connection (`session()`: a model run's days, checks and bookkeeping).
Sources are lazy Arrow datasets (or tables) named `namespace.table` or a bare name; parameters
($dt, $hh, ...) are bound, never pasted into SQL text.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.core.ids import TableId

Sources = Mapping["TableId | str", Any]
"""Name -> lazy Arrow dataset, table or record batch reader."""


class QueryError(Exception):
    """A statement failed; the message names the statement (model or query) and DuckDB's reason."""


class QueryLimitExceeded(QueryError):
    """A statement ran past its time or memory limit and was stopped; the message names the limit."""


class ReadOnlyViolation(QueryError):
    """Only single read-only queries are allowed on this path."""


class ResultTooLarge(QueryLimitExceeded):
    """A result grew past the rows or bytes a governed query may return; it was stopped there."""


class QueryCancelled(QueryError):
    """The statement was cancelled from outside (KILL QUERY, KILL CONNECTION) and stopped."""


@dataclass(frozen=True)
class ResultLimits:
    """What one governed statement may return: past either, it stops with ResultTooLarge."""

    max_rows: int
    max_bytes: int

    def check(self, rows: int, size: int, statement_name: str) -> None:
        if rows > self.max_rows:
            raise ResultTooLarge(
                f"{statement_name}: the result has more than {self.max_rows:,} rows, the limit "
                "LAKEHOUSE_QUERY_MAX_ROWS sets (add a LIMIT or an aggregate)"
            )
        if size > self.max_bytes:
            raise ResultTooLarge(
                f"{statement_name}: the result is larger than {self.max_bytes:,} bytes, the limit "
                "LAKEHOUSE_QUERY_MAX_BYTES sets (select fewer columns or rows)"
            )


class CancelScope:
    """Work done for one request that someone else may cancel (KILL QUERY from another connection).

    Engines running a statement inside `cancellable(scope)` register their interrupt with it, so
    `cancel()` stops the statement at once rather than when it finishes; Python loops between
    statements call `check()`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._interrupts: dict[int, Callable[[], Any]] = {}
        self._next = 0
        self.cancelled = False

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            interrupts = list(self._interrupts.values())
        for interrupt in interrupts:
            with suppress(Exception):  # a statement that just finished: nothing left to interrupt
                interrupt()

    def check(self) -> None:
        if self.cancelled:
            raise QueryCancelled("query: cancelled (KILL QUERY)")

    @contextmanager
    def interruptible(self, interrupt: Callable[[], Any]) -> Iterator[None]:
        """While the block runs, `cancel()` calls `interrupt`."""
        with self._lock:
            self._next += 1
            handle = self._next
            self._interrupts[handle] = interrupt
            cancelled = self.cancelled
        try:
            if cancelled:
                interrupt()
            yield
        finally:
            with self._lock:
                self._interrupts.pop(handle, None)


_SCOPE: contextvars.ContextVar[CancelScope | None] = contextvars.ContextVar("lakehouse_cancel", default=None)


def current_scope() -> CancelScope | None:
    """The cancel scope of the work this thread does now, if any."""
    return _SCOPE.get()


@contextmanager
def cancellable(scope: CancelScope) -> Iterator[CancelScope]:
    """Run the block's statements under `scope` (in this thread)."""
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


class Session(Protocol):
    """Statements on one connection, one at a time (each binds its own sources)."""

    def query(
        self,
        sql: str,
        sources: Sources,
        params: Mapping[str, Any] | None = None,
        *,
        default_namespace: str | None = None,
        statement_name: str = "query",
    ) -> pa.Table: ...

    def stream(
        self,
        sql: str,
        sources: Sources,
        params: Mapping[str, Any] | None = None,
        *,
        default_namespace: str | None = None,
        statement_name: str = "query",
        batch_rows: int = 262_144,
    ) -> AbstractContextManager[pa.RecordBatchReader]: ...


class Engine(Protocol):
    """What models, governance and the facade need of a query engine."""

    name: str

    def session(self) -> AbstractContextManager[Session]: ...

    def query(
        self,
        sql: str,
        sources: Sources,
        params: Mapping[str, Any] | None = None,
        *,
        default_namespace: str | None = None,
        statement_name: str = "query",
    ) -> pa.Table: ...

    def stream(
        self,
        sql: str,
        sources: Sources,
        params: Mapping[str, Any] | None = None,
        *,
        default_namespace: str | None = None,
        statement_name: str = "query",
        batch_rows: int = 262_144,
    ) -> AbstractContextManager[pa.RecordBatchReader]: ...
