"""DuckDB -> Spark SQL translation (lakehouse/engines/spark_sql.py): every model translates, and each
rewrite says what it promises. Spark itself runs the translations in tests/e2e/test_spark.py."""

from __future__ import annotations

import re

import pytest
import sqlglot

from lakehouse.core.settings import ConfigError, LakehouseSettings
from lakehouse.engines.base import QueryError
from lakehouse.engines.spark_sql import UntranslatableSQL, translate, view_name
from lakehouse.engines.sql import referenced_tables
from lakehouse.models.parser import load_models


def spark(
    sql: str, bound: tuple[tuple[str | None, str], ...] = ((None, "t"),), namespace: str | None = None
) -> str:
    return translate(sql, namespace, bound)


def test_every_model_translates_and_spark_can_parse_it() -> None:
    for model in load_models():
        bound = tuple((dep.namespace, dep.name) for dep in model.deps)
        text = translate(model.sql, model.table.namespace, bound)
        sqlglot.parse_one(text, read="spark")  # well-formed Spark SQL
        for namespace, name in referenced_tables(model.sql):
            assert view_name(namespace or model.table.namespace, name) in text, (model.table, name)
        assert not re.search(r"\$[a-z_]", text), "parameters become :name markers"
        for duckdb_only in ("TRY_STRPTIME", "REGEXP_FULL_MATCH", "TIMEZONE(", "INT128", " TRY("):
            assert duckdb_only not in text.upper(), (model.table, duckdb_only)


def test_invalid_utf8_is_null_as_in_duckdb() -> None:
    assert "TRY_VALIDATE_UTF8(CAST(b AS STRING))" in spark("select try(decode(b)) from t")


def test_full_match_is_anchored() -> None:
    assert "RLIKE '^(?:[0-9]{13})$'" in spark("select regexp_full_match(s, '[0-9]{13}') from t")


def test_strptime_format_becomes_java_pattern() -> None:
    text = spark("select try_strptime(s, '%Y-%m-%d %H:%M:%S') from t")
    assert "TRY_TO_TIMESTAMP(s, 'yyyy-MM-dd HH:mm:ss')" in text


def test_utc_instant_as_local_time() -> None:
    text = spark("select timezone($tz, timezone('UTC', epoch_ms(x))) from t")
    assert "CAST(FROM_UTC_TIMESTAMP(TIMESTAMP_MILLIS(x), :tz) AS TIMESTAMP_NTZ)" in text


def test_other_timezone_uses_are_refused_not_guessed() -> None:
    with pytest.raises(UntranslatableSQL, match="timezone"):
        spark("select timezone('Asia/Shanghai', ts) from t")


def test_ordered_aggregate_loses_its_order() -> None:
    assert "SUM(x) AS s" in spark("select sum(x order by y) as s from t")


def test_hugeint_is_decimal_38() -> None:
    assert "CAST(x AS DECIMAL(38, 0))" in spark("select cast(x as hugeint) from t")


def test_tables_become_views_and_ctes_stay() -> None:
    text = spark(
        "with c as (select * from ods) select * from c join iov.dim as d on true",
        (("iov", "ods"), ("iov", "dim")),
        namespace="iov",
    )
    assert "FROM __src_iov__ods AS ods" in text
    assert "JOIN __src_iov__dim AS d" in text
    assert "FROM c" in text


def test_an_unbound_table_is_an_error_naming_it() -> None:
    with pytest.raises(QueryError, match="other.secret"):
        spark("select * from other.secret")


def test_try_of_anything_else_is_refused() -> None:
    with pytest.raises(UntranslatableSQL, match="try"):
        spark("select try(cast(a as int)) from t")


def test_engine_settings() -> None:
    base = {"LAKEHOUSE_HOME": "/tmp/lh-engine-settings"}
    assert LakehouseSettings.from_env(base).engine == "duckdb"
    chosen = LakehouseSettings.from_env(
        {**base, "LAKEHOUSE_ENGINE": "Spark", "LAKEHOUSE_SPARK_REMOTE": "sc://127.0.0.1:15002"}
    )
    assert (chosen.engine, chosen.spark_remote) == ("spark", "sc://127.0.0.1:15002")
    with pytest.raises(ConfigError, match="LAKEHOUSE_SPARK_REMOTE"):
        LakehouseSettings.from_env({**base, "LAKEHOUSE_ENGINE": "spark"})
    with pytest.raises(ConfigError, match="LAKEHOUSE_SPARK_REMOTE must be a Spark Connect URL"):
        LakehouseSettings.from_env({**base, "LAKEHOUSE_SPARK_REMOTE": "http://127.0.0.1:15002"})
    with pytest.raises(ConfigError, match="LAKEHOUSE_ENGINE must be one of"):
        LakehouseSettings.from_env({**base, "LAKEHOUSE_ENGINE": "presto"})


def test_integer_try_cast_rounds_like_duckdb() -> None:
    """DuckDB reads '7.5' as 8, '1e2' as 100 and '12.0' as 12; Spark's own cast gives NULL."""
    text = spark("select try_cast(trim(s) as integer) from t")
    assert "TRY_CAST(ROUND(TRY_CAST(TRIM(s) AS DECIMAL(38, 9))) AS INT)" in text
    assert "TRY_CAST(x AS DOUBLE)" in spark("select try_cast(x as double) from t")
