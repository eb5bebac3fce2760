"""The engine interface: run SQL over named Arrow sources. DuckDB is one implementation (duckdb.py).

An engine runs one statement at a time on a connection of its own (`query`, `stream`), or a sequence
of trusted statements on one connection (`session()`: a model run's days, checks and bookkeeping).
Sources are lazy Arrow datasets (or tables) named `namespace.table` or a bare name; parameters
($dt, $hh, ...) are bound, never pasted into SQL text.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
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
