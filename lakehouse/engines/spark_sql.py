"""DuckDB SQL -> Spark SQL, with sqlglot plus the rewrites sqlglot does not make.

The models stay written in DuckDB's dialect, one file per model: DuckDB is the default engine, the
engine of every check, governed query and test, so the default path runs each file exactly as
written and only the Spark path translates. The rewrites below are the constructs the models use
whose meaning sqlglot's generic transpilation would change or that Spark lacks; any function this
module does not know stays as sqlglot writes it, and Spark's analyzer names it if it has none.

- `try(decode(blob))` (NULL for invalid UTF-8) -> `try_validate_utf8(cast(blob as string))`;
  `try(f(...))` of a function that is NULL-safe in Spark (JSON extraction) -> `f(...)`.
- `regexp_full_match(s, p)` -> `s rlike '^(?:p)$'`.
- `try_strptime(s, '%Y-...')` -> `try_to_timestamp(s, 'yyyy-...')` (TIMESTAMP_NTZ in our sessions).
- `timezone(zone, timezone('UTC', ts))` (a UTC instant as local wall-clock time) ->
  `cast(from_utc_timestamp(ts, zone) as timestamp_ntz)` (our sessions run in UTC).
- ordered aggregates `sum(x order by y)` -> `sum(x)`: Spark has none; the sum's order then differs,
  so doubles agree to rounding (1e-9 relative), not bit for bit.
- `hugeint` -> `decimal(38, 0)`.
- `try_cast(x as <integer type>)` -> `try_cast(round(try_cast(x as decimal(38, 9))) as <type>)`:
  DuckDB reads '7.5' as 8, '1e2' as 100 and '12.0' as 12, where Spark's own cast gives NULL.
- table names -> the temporary views the engine binds each source to; `$name` parameters -> Spark's
  named parameter markers `:name` (bound, never pasted into the text).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from lakehouse.engines.base import QueryError


class UntranslatableSQL(QueryError):
    """A construct of the DuckDB text that has no faithful Spark translation here; names it."""


def view_name(namespace: str | None, table: str) -> str:
    """The temporary view a source is bound to (Spark views are not qualified by a database)."""
    raw = f"{namespace}__{table}" if namespace else table
    return "__src_" + re.sub(r"[^A-Za-z0-9_]", "_", raw)


def _integer_types() -> set[Any]:
    from sqlglot import exp

    t = exp.DataType.Type
    return {t.TINYINT, t.SMALLINT, t.INT, t.BIGINT}


_INTEGERS: set[Any] = set()


def _anonymous(name: str, *args: Any) -> Any:
    from sqlglot import exp

    return exp.Anonymous(this=name, expressions=list(args))


def _rewrite(node: Any) -> Any:
    from sqlglot import exp
    from sqlglot.dialects.spark import Spark
    from sqlglot.time import format_time

    if isinstance(node, exp.Try):
        inner = node.this
        if isinstance(inner, exp.Decode):
            given = inner.args.get("charset")
            charset = str(given.name if given is not None else "utf-8").lower()
            if charset.replace("-", "") != "utf8":
                raise UntranslatableSQL(f"decode(..., {charset!r}): only UTF-8 is translated for Spark")
            return _anonymous("try_validate_utf8", exp.Cast(this=inner.this, to=exp.DataType.build("string")))
        if isinstance(inner, exp.JSONExtractScalar | exp.JSONExtract):
            return inner  # get_json_object is NULL on malformed JSON already
        raise UntranslatableSQL(f"try({inner.sql('duckdb')}) has no Spark translation")
    if isinstance(node, exp.RegexpFullMatch):
        pattern = node.expression
        if not isinstance(pattern, exp.Literal):
            raise UntranslatableSQL("regexp_full_match with a pattern that is not a literal")
        return exp.RegexpLike(this=node.this, expression=exp.Literal.string(f"^(?:{pattern.this})$"))
    if isinstance(node, exp.Anonymous):
        name = str(node.name).lower()
        args = node.expressions
        if name == "try_strptime":
            if len(args) != 2 or not isinstance(args[1], exp.Literal):
                raise UntranslatableSQL("try_strptime needs a literal format to translate")
            java = format_time(args[1].this, Spark.INVERSE_TIME_MAPPING, Spark.INVERSE_TIME_TRIE)
            return _anonymous("try_to_timestamp", args[0], exp.Literal.string(java))
        if name == "timezone":
            if (
                len(args) == 2
                and isinstance(args[1], exp.Anonymous)
                and str(args[1].name).lower() == "timezone"
                and len(args[1].expressions) == 2
                and isinstance(args[1].expressions[0], exp.Literal)
                and str(args[1].expressions[0].this).upper() == "UTC"
            ):
                instant = args[1].expressions[1]
                return exp.Cast(
                    this=_anonymous("from_utc_timestamp", instant, args[0]),
                    to=exp.DataType.build("timestamp_ntz", dialect="spark"),
                )
            raise UntranslatableSQL(
                "timezone(...) is translated only as timezone(zone, timezone('UTC', ts)) "
                "(a UTC instant as local time)"
            )
    if isinstance(node, exp.AggFunc) and isinstance(node.this, exp.Order):
        node.set("this", node.this.this)
        return node
    if isinstance(node, exp.TryCast) and node.to.this in _INTEGERS:
        exact = exp.TryCast(this=node.this, to=exp.DataType.build("decimal(38, 9)"), safe=True)
        return exp.TryCast(this=exp.Round(this=exact), to=node.to, safe=True)
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.INT128:
        return exp.DataType.build("decimal(38, 0)")
    return node


@functools.lru_cache(maxsize=512)
def _translate(
    sql: str, default_namespace: str | None, bound: tuple[tuple[str | None, str], ...], suffix: str
) -> str:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import ParseError

    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except ParseError as exc:
        raise QueryError(f"cannot parse query: {str(exc).splitlines()[0]}") from None
    known = set(bound)
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    for table in list(tree.find_all(exp.Table)):
        if not table.name or (not table.db and table.name in ctes):
            continue
        namespace = table.db or default_namespace
        key = (namespace, table.name) if (namespace, table.name) in known else (None, table.name)
        if key not in known:
            raise QueryError(f"table {table.sql('duckdb')} is not bound for this statement")
        alias = table.alias
        replacement = exp.to_table(view_name(*key) + suffix)
        replacement.set("alias", exp.TableAlias(this=exp.to_identifier(alias or table.name)))
        table.replace(replacement)
    if not _INTEGERS:
        _INTEGERS.update(_integer_types())
    tree = tree.transform(_rewrite)
    return tree.sql(dialect="spark")


def translate(
    sql: str,
    default_namespace: str | None,
    bound: Mapping[tuple[str | None, str], Any] | tuple[tuple[str | None, str], ...],
    view_suffix: str = "",
) -> str:
    """The Spark SQL text of a DuckDB query whose tables are the `bound` (namespace, table) keys
    (a bare key (None, name) for sources bound without a namespace), read from views named
    view_name(...) + view_suffix."""
    keys = tuple(sorted(bound, key=lambda k: (k[0] or "", k[1])))
    return _translate(sql, default_namespace, keys, view_suffix)
