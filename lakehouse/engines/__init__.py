"""Query engines behind one interface (base.py); DuckDB (duckdb.py) is the embedded default."""

from __future__ import annotations

from lakehouse.engines.base import Engine, QueryError, ReadOnlyViolation, Session

__all__ = ["Engine", "QueryError", "ReadOnlyViolation", "Session", "open_engine"]


def open_engine(name: str = "duckdb") -> Engine:
    """The engine by name; `duckdb` is the only one this release ships."""
    if name == "duckdb":
        from lakehouse.engines.duckdb import DuckDBEngine

        return DuckDBEngine()
    raise ValueError(f"unknown engine {name!r}; available: duckdb")
