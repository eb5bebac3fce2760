"""Query engines behind one interface (base.py); DuckDB (duckdb.py) is the embedded default."""

from __future__ import annotations

from lakehouse.engines.base import Engine, QueryError, QueryLimitExceeded, ReadOnlyViolation, Session

__all__ = ["Engine", "QueryError", "QueryLimitExceeded", "ReadOnlyViolation", "Session", "open_engine"]


def open_engine(
    name: str = "duckdb",
    *,
    memory_limit: str | None = None,
    timeout_seconds: float | None = None,
    timeout_limit: float | None = None,
    pooled: bool = False,
) -> Engine:
    """The engine by name (`duckdb` is the only one this release ships), optionally with limits that
    every statement it runs must keep (governed queries), reusing connections when `pooled`."""
    if name == "duckdb":
        from lakehouse.engines.duckdb import DuckDBEngine

        return DuckDBEngine(
            memory_limit=memory_limit,
            timeout_seconds=timeout_seconds,
            timeout_limit=timeout_limit,
            pooled=pooled,
        )
    raise ValueError(f"unknown engine {name!r}; available: duckdb")
