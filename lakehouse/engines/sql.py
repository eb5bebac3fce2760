"""What a query reads and whether it may run, from its parse tree (sqlglot), for every engine.

Used by the model parser (dependencies), the owner's read-only path and the governed path (which
functions and table functions a governed query may use, which columns it mentions).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from lakehouse.engines.base import QueryError, ReadOnlyViolation


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@functools.lru_cache(maxsize=1024)
def _statements(sql: str, dialect: str = "duckdb") -> tuple[Any, ...]:
    """The parse trees of a text, remembered: a dashboard sends the same queries again and again,
    and each is analysed several times (read-only, governed, tables, columns). Callers only read
    the trees, never change them."""
    import sqlglot

    return tuple(s for s in sqlglot.parse(sql, read=dialect) if s is not None)


def _tree(sql: str, dialect: str = "duckdb") -> Any:
    """The one statement of a text (sqlglot's parse_one: an error when there is none)."""
    import sqlglot

    statements = _statements(sql, dialect)
    if len(statements) != 1:
        return sqlglot.parse_one(sql, read=dialect)  # its error, or its choice among several
    return statements[0]


def referenced_tables(sql: str, dialect: str = "duckdb") -> list[tuple[str | None, str]]:
    """(namespace or None, table) for every table the query reads, CTE names excluded."""
    from sqlglot import exp

    tree = _tree(sql, dialect)
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    found: list[tuple[str | None, str]] = []
    for table in tree.find_all(exp.Table):
        if not table.name or (not table.db and table.name in ctes):
            continue
        key = (table.db or None, table.name)
        if key not in found:
            found.append(key)
    return found


def ensure_read_only(sql: str) -> None:
    """Refuse anything but one SELECT-style query (no DDL, DML, PRAGMA, several statements)."""
    from sqlglot import exp
    from sqlglot.errors import ParseError

    try:
        statements = list(_statements(sql, "duckdb"))
    except ParseError as exc:
        raise QueryError(f"cannot parse query: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise ReadOnlyViolation(f"exactly one statement is allowed, got {len(statements)}")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        raise ReadOnlyViolation(f"only read-only queries are allowed, not {statement.key.upper()}")
    for node in statement.walk():
        if isinstance(node, exp.Insert | exp.Update | exp.Delete | exp.Create | exp.Drop | exp.Command):
            raise ReadOnlyViolation(f"only read-only queries are allowed, found {node.key.upper()}")


# Table functions a governed query may use in FROM: they generate values and read nothing.
GOVERNED_TABLE_FUNCTIONS = {"range", "generate_series", "unnest"}
# Functions a governed query may not call anywhere: they read files, settings, the environment, the
# engine's own catalog, or run SQL text (which would escape the checks made on the query's text).
_FORBIDDEN_FUNCTION = re.compile(
    r"^(read_|parquet_|glob$|query$|query_table$|getenv$|current_setting$|duckdb_|pragma_|sniff_|iceberg_|"
    r"delta_|sqlite_|postgres_|mysql_|json_execute|which_secret$|load_|install_|arrow_scan|python_|"
    r"checkpoint$|force_checkpoint$|test_|repeat_row$|seq_scan$|index_scan$|summary$|iceberg|delta)"
)


def _function_name(node: Any) -> str:
    from sqlglot import exp

    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return str(node.sql_name()).lower()


def ensure_governed_query(sql: str) -> None:
    """ensure_read_only, and on top: FROM names only tables (no table functions but a few value
    generators) and no function reaching files, settings, the environment or the engine's catalog.

    Defense in depth: a governed connection holds only masked data anyway (see Lakehouse.sql)."""
    from sqlglot import exp

    ensure_read_only(sql)
    tree = _tree(sql, "duckdb")
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):
            name = _function_name(table.this) if isinstance(table.this, exp.Func) else table.this.key
            if name not in GOVERNED_TABLE_FUNCTIONS:
                raise ReadOnlyViolation(f"table function {name}() is not allowed in a governed query")
    for func in tree.find_all(exp.Func):
        name = _function_name(func)
        if _FORBIDDEN_FUNCTION.match(name):
            raise ReadOnlyViolation(f"function {name}() is not allowed in a governed query")


def query_identifiers(sql: str) -> set[str] | None:
    """Lower-case names the query mentions (columns it may read), or None when it may read every
    column (`*`, COLUMNS(...), a whole-row reference to a table or its alias). Used to read only the
    columns a query needs."""
    from sqlglot import exp

    tree = _tree(sql, "duckdb")
    if any(not isinstance(star.parent, exp.Count) for star in tree.find_all(exp.Star)):
        return None
    if any(_function_name(f) == "columns" for f in tree.find_all(exp.Func)):
        return None
    # Constructs that read columns they do not name: PIVOT, SUMMARIZE, DESCRIBE, NATURAL joins,
    # positional columns (#2), and aliases that rename a table's columns by position (t(a, b)).
    if any(tree.find_all(exp.Pivot, exp.PositionalColumn, exp.Summarize, exp.Describe)):
        return None
    if any(str(j.args.get("method") or "").upper() == "NATURAL" for j in tree.find_all(exp.Join)):
        return None
    if any(a.columns for a in tree.find_all(exp.TableAlias)):
        return None
    # A table or its alias used as a value is the whole row: to_json(t), t['col'], to_json(ns.t).
    relations = {str(t.name).lower() for t in tree.find_all(exp.Table)}
    relations |= {str(t.alias).lower() for t in tree.find_all(exp.Table) if t.alias}
    relations |= {str(a.alias).lower() for a in tree.find_all(exp.TableAlias) if a.alias}
    namespaces = {str(t.db).lower() for t in tree.find_all(exp.Table) if t.db}
    for column in tree.find_all(exp.Column):
        qualifier = str(column.table).lower()
        if str(column.name).lower() in relations and (not qualifier or qualifier in namespaces):
            return None
    return {str(i.name).lower() for i in tree.find_all(exp.Identifier)}


# Functions whose value changes between two runs over the same data: a result using one is never
# remembered (serving's result cache).
_VOLATILE = re.compile(
    r"^(random|rand|uuid|gen_random_uuid|uuidv4|uuidv7|setseed|now|current_timestamp|current_date|"
    r"current_time|get_current_time|get_current_timestamp|today|localtime|localtimestamp|"
    r"transaction_timestamp|nextval|currval)$"
)


def is_volatile(sql: str) -> bool:
    """Whether the query's result may differ between two runs over the same snapshots."""
    from sqlglot import exp

    tree = _tree(sql, "duckdb")
    volatile_nodes = (exp.Rand, exp.CurrentDate, exp.CurrentTime, exp.CurrentTimestamp, exp.Uuid)
    if any(tree.find_all(*volatile_nodes)):
        return True
    return any(_VOLATILE.match(_function_name(f)) for f in tree.find_all(exp.Func))
