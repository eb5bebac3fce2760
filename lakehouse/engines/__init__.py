"""Query engines behind one interface (base.py); DuckDB (duckdb.py) is the embedded default."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from lakehouse.engines.base import (
    Engine,
    QueryError,
    QueryLimitExceeded,
    ReadOnlyViolation,
    ResultLimits,
    ResultTooLarge,
    Session,
)

if TYPE_CHECKING:
    from lakehouse.core.ids import TableId

__all__ = [
    "Engine",
    "QueryError",
    "QueryLimitExceeded",
    "ReadOnlyViolation",
    "ResultLimits",
    "ResultTooLarge",
    "Session",
    "open_engine",
]


def open_engine(
    name: str = "duckdb",
    *,
    memory_limit: str | None = None,
    timeout_seconds: float | None = None,
    timeout_limit: float | None = None,
    pooled: bool = False,
    limits: ResultLimits | None = None,
    spark_remote: str | None = None,
    locate: Callable[[TableId], str] | None = None,
) -> Engine:
    """The engine by name: `duckdb` (embedded), optionally with limits that every statement it runs
    must keep (governed queries), reusing connections when `pooled`; or `spark` on the Spark
    Connect server at `spark_remote` (sc://host:port)."""
    if name == "duckdb":
        from lakehouse.engines.duckdb import DuckDBEngine

        return DuckDBEngine(
            memory_limit=memory_limit,
            timeout_seconds=timeout_seconds,
            timeout_limit=timeout_limit,
            pooled=pooled,
            limits=limits,
        )
    if name == "spark":
        from lakehouse.engines.spark import SparkEngine

        if not spark_remote:
            raise ValueError("engine spark needs a Spark Connect URL (LAKEHOUSE_SPARK_REMOTE)")
        return SparkEngine(spark_remote, locate)
    raise ValueError(f"unknown engine {name!r}; available: duckdb, spark")
