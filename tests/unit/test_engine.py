"""The DuckDB engine: one connection per query, or one per model run (a session) without leaks."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lakehouse.core.ids import TableId
from lakehouse.engines.base import QueryError
from lakehouse.engines.duckdb import DuckDBEngine

ADS = TableId("game_db", "ads")


def test_a_query_gets_its_sources_and_nothing_else() -> None:
    engine = DuckDBEngine()
    got = engine.query(
        "select sum(a) as s from ads", {ADS: pa.table({"a": [1, 2]})}, default_namespace="game_db"
    )
    assert got.to_pylist() == [{"s": 3}]
    with pytest.raises(QueryError, match="my statement: Catalog Error"):
        engine.query("select * from ads", {}, default_namespace="game_db", statement_name="my statement")


def test_a_session_binds_each_statements_sources_for_it_alone() -> None:
    with DuckDBEngine().session() as session:
        first = session.query("select count(*) as n from game_db.ads", {ADS: pa.table({"a": [1, 2, 3]})})
        assert first.to_pylist() == [{"n": 3}]
        # The same name bound again to other data: the new rows, not the old ones.
        again = session.query(
            "select sum(a) as s from ads", {ADS: pa.table({"a": [10]})}, default_namespace="game_db"
        )
        assert again.to_pylist() == [{"s": 10}]
        # Bare names (checks' `this`) resolve with or without a default namespace.
        this = {"this": pa.table({"a": [5, 2]})}
        assert session.query("select count(*) as n from this where a > $m", this, {"m": 3}).to_pylist() == [
            {"n": 1}
        ]
        assert session.query(
            "select count(*) as n from this", this, default_namespace="game_db"
        ).to_pylist() == [{"n": 2}]
        # What an earlier statement read is gone for the next one.
        for leftover in ("select * from game_db.ads", "select * from this", "select * from __source_1_0"):
            with pytest.raises(QueryError, match="does not exist"):
                session.query(leftover, {})
        views = session.query("select count(*) as n from duckdb_views() where not internal", {})
        assert views.to_pylist() == [{"n": 0}]


def test_a_session_runs_one_statement_at_a_time_and_streams() -> None:
    with DuckDBEngine().session() as session:
        rows = pa.table({"a": list(range(1000))})
        with session.stream("select a from t", {"t": rows}, batch_rows=100) as reader:
            with pytest.raises(RuntimeError, match="one statement at a time"):
                session.query("select 1", {})
            assert sum(batch.num_rows for batch in reader) == 1000
        # Done reading: the session takes the next statement.
        assert session.query("select 1 as x", {}).to_pylist() == [{"x": 1}]
        # A failing statement leaves the session usable and clean.
        with pytest.raises(QueryError, match="bad: "):
            session.query("select nope from t", {"t": rows}, statement_name="bad")
        assert session.query(
            "select count(*) as n from duckdb_views() where not internal", {}
        ).to_pylist() == [{"n": 0}]
