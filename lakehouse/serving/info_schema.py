"""information_schema, SHOW and DESCRIBE as one account may list the catalog, answered by DuckDB.

mysql-mimic answers these itself with sqlglot's Python executor, which turns the query into Python
source and evaluates it (a crafted literal escapes into that source) on the event loop, with no
limit. Here the listing is data: the information_schema tables (mysql-mimic's own definitions of
their columns) are Arrow tables built from what the account may list (listing.visible_schema), a
query names them under source names of their own, and it runs on the governed engine path like any
query (read-only checks, time, memory and result limits, the audit). SHOW statements become such
queries, built as parse trees with the client's names as string literals, never pasted into text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mysql_mimic.errors import ErrorCode, MysqlError
from sqlglot import exp

if TYPE_CHECKING:
    import pyarrow as pa

INFO_DATABASES = ("information_schema", "mysql")
"""The databases a MySQL server always has; here they are views of the catalog, never tables in it."""
SOURCE_PREFIX = "__info__"
VARIABLES_SOURCE = "__session_variables"
STATUS_SOURCE = "__session_status"
PROCESSLIST_SOURCE = "__processlist"


def source_name(database: str, table: str) -> str:
    return f"{SOURCE_PREFIX}{database}__{table}"


def source_label(name: str) -> str:
    """What the audit calls a source: information_schema.tables, not its source name."""
    if name.startswith(SOURCE_PREFIX):
        database, _, table = name.removeprefix(SOURCE_PREFIX).partition("__")
        return f"{database}.{table}"
    return f"session.{name.strip('_')}"


def info_schema_sources(schema: Mapping[str, Mapping[str, Mapping[str, str]]]) -> dict[str, pa.Table]:
    """source name -> Arrow table for every information_schema and mysql table, holding the rows
    of `schema` ({database: {table: {column: type}}}, what the account may list) and of the
    information_schema itself, as a MySQL server lists them."""
    import pyarrow as pa
    from mysql_mimic.constants import INFO_SCHEMA
    from mysql_mimic.schema import Column, info_schema_tables

    columns = [
        Column(name=column, type=kind, table=table, schema=database)
        for database, tables in schema.items()
        for table, table_columns in tables.items()
        for column, kind in table_columns.items()
    ]
    data = info_schema_tables(columns)  # rows only: builds tuples, evaluates nothing
    listed = {row[1] for row in data["information_schema"]["schemata"].rows}
    for database in sorted(set(schema) - listed):  # a listable database without tables
        data["information_schema"]["schemata"].append(
            ("def", database, "utf8mb4", "utf8mb4_general_ci", None)
        )
    out: dict[str, pa.Table] = {}
    for database, tables in INFO_SCHEMA.items():
        for name, declared in tables.items():
            rows = data[database][name].rows
            arrays = {}
            for i, (column, kind) in enumerate(declared.items()):
                values = [row[i] for row in rows]
                if kind == "INT":
                    arrays[column] = pa.array([_as_int(v) for v in values], pa.int64())
                else:
                    arrays[column] = pa.array([None if v is None else str(v) for v in values], pa.string())
            out[source_name(database, name)] = pa.table(arrays)
    return out


def _as_int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _database_of(table: exp.Table, current: str | None) -> str | None:
    database = table.db or current
    return database.lower() if database else None


def rewrite_info_schema(tree: exp.Expression, current: str | None) -> exp.Expression | None:
    """The query with its information_schema / mysql tables renamed to their sources, or None when
    it reads none. A query that reads both them and catalog tables is refused (the listing is not
    joined with data: its rows would come from two different governed paths)."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    tables = [t for t in tree.find_all(exp.Table) if t.name and not (not t.db and t.name.lower() in ctes)]
    listing = [t for t in tables if _database_of(t, current) in INFO_DATABASES]
    if not listing:
        return None
    if len(listing) != len(tables):
        raise MysqlError(
            "information_schema cannot be queried together with tables of the catalog; query them apart",
            code=ErrorCode.NOT_SUPPORTED_YET,
        )
    from mysql_mimic.constants import INFO_SCHEMA

    tree = tree.copy()
    for table in [t for t in tree.find_all(exp.Table) if _database_of(t, current) in INFO_DATABASES]:
        database = _database_of(table, current) or ""
        name = table.name.lower()
        if name not in INFO_SCHEMA[database]:
            raise MysqlError(f"Unknown table '{database}.{table.name}'", code=ErrorCode.NO_SUCH_TABLE)
        alias = table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(table.name, quoted=True))
        table.replace(
            exp.Table(this=exp.to_identifier(source_name(database, name), quoted=True), alias=alias)
        )
    return tree


def _info(table: str) -> exp.Table:
    return exp.Table(
        this=exp.to_identifier(source_name("information_schema", table), quoted=True),
        alias=exp.TableAlias(this=exp.to_identifier(table, quoted=True)),
    )


def _text(value: str) -> exp.Literal:
    return exp.Literal.string(value)


def _like(column: str, show: exp.Show) -> exp.Expression | None:
    """`column LIKE pattern`, case-insensitive as MySQL's default collation compares names."""
    like = show.args.get("like")
    return exp.ILike(this=exp.column(column), expression=like) if like is not None else None


def _select(
    outputs: Sequence[tuple[str, str]], source: exp.Table, conditions: list[exp.Expression | None]
) -> exp.Select:
    select = exp.select(*(exp.alias_(exp.column(c), a, quoted=True) for c, a in outputs)).from_(source)
    for condition in conditions:
        if condition is not None:
            select = select.where(condition)
    return select


def _filtered(select: exp.Select, show: exp.Show) -> exp.Expression:
    """SHOW ... WHERE <expr> filters on the output columns (as MySQL does): applied around it."""
    where = show.args.get("where")
    if where is None:
        return select
    return exp.select("*").from_(select.subquery("shown")).where(where.this)


def show_query(show: exp.Show, database: str | None) -> exp.Expression:
    """The query over the information_schema sources that answers a SHOW statement (DATABASES,
    TABLES, COLUMNS, INDEX, CHARACTER SET, COLLATION, VARIABLES, STATUS, WARNINGS, ERRORS,
    PROCESSLIST); MysqlError for the others."""
    kind = show.name.upper()
    full = bool(show.args.get("full"))
    db = show.text("db") or database
    if kind == "DATABASES":
        select = _select([("schema_name", "Database")], _info("schemata"), [_like("schema_name", show)])
        return _filtered(select.order_by("1"), show)
    if kind == "TABLES":
        if not db:
            raise MysqlError("No database selected", code=ErrorCode.NO_DB_ERROR)
        outputs = [("table_name", "Table_name")] + ([("table_type", "Table_type")] if full else [])
        where = [exp.column("table_schema").eq(_text(db)), _like("table_name", show)]
        return _filtered(_select(outputs, _info("tables"), where).order_by("1"), show)
    if kind in ("COLUMNS", "INDEX"):
        table = show.text("target")
        if not table:
            raise MysqlError(
                "You have an error in your SQL syntax: the table name is missing", code=ErrorCode.PARSE_ERROR
            )
        conditions: list[exp.Expression | None] = [exp.column("table_name").eq(_text(table))]
        if db:
            conditions.append(exp.column("table_schema").eq(_text(db)))
        if kind == "INDEX":
            outputs = [("table_name", "Table"), ("non_unique", "Non_unique"), ("index_name", "Key_name")]
            return _select(outputs, _info("statistics"), conditions)
        outputs = [
            ("column_name", "Field"),
            ("data_type", "Type"),
            ("is_nullable", "Null"),
            ("column_key", "Key"),
            ("column_default", "Default"),
            ("extra", "Extra"),
        ]
        if full:
            outputs += [
                ("collation_name", "Collation"),
                ("privileges", "Privileges"),
                ("column_comment", "Comment"),
            ]
        conditions.append(_like("column_name", show))
        return _filtered(_select(outputs, _info("columns"), conditions).order_by("ordinal_position"), show)
    if kind == "CHARACTER SET":
        outputs = [("character_set_name", "Charset"), ("description", "Description")]
        outputs += [("default_collate_name", "Default collation"), ("maxlen", "Maxlen")]
        return _filtered(_select(outputs, _info("character_sets"), [_like("character_set_name", show)]), show)
    if kind == "COLLATION":
        outputs = [("collation_name", "Collation"), ("character_set_name", "Charset"), ("id", "Id")]
        outputs += [("is_default", "Default")]
        return _filtered(_select(outputs, _info("collations"), [_like("collation_name", show)]), show)
    if kind in ("VARIABLES", "STATUS"):
        source = exp.Table(
            this=exp.to_identifier(VARIABLES_SOURCE if kind == "VARIABLES" else STATUS_SOURCE, quoted=True)
        )
        select = _select(
            [("variable_name", "Variable_name"), ("value", "Value")], source, [_like("variable_name", show)]
        )
        return _filtered(select.order_by("1"), show)
    if kind in ("WARNINGS", "ERRORS"):
        return exp.select(
            exp.alias_(exp.cast(exp.null(), "text"), "Level", quoted=True),
            exp.alias_(exp.cast(exp.null(), "bigint"), "Code", quoted=True),
            exp.alias_(exp.cast(exp.null(), "text"), "Message", quoted=True),
        ).where(exp.false())
    if kind == "PROCESSLIST":
        source = exp.Table(this=exp.to_identifier(PROCESSLIST_SOURCE, quoted=True))
        names = ["Id", "User", "Host", "db", "Command", "Time", "State", "Info"]
        return exp.select(*(exp.column(n, quoted=True) for n in names)).from_(source).order_by("1")
    raise MysqlError(f"SHOW {kind} is not supported here", code=ErrorCode.NOT_SUPPORTED_YET)


def variables_source(variables: Sequence[tuple[str, Any]]) -> pa.Table:
    import pyarrow as pa

    return pa.table(
        {
            "variable_name": pa.array([k for k, _ in variables], pa.string()),
            "value": pa.array([None if v is None else str(v) for _, v in variables], pa.string()),
        }
    )


def processlist_source(rows: Sequence[tuple[Any, ...]]) -> pa.Table:
    """Id, User, Host, db, Command, Time, State, Info of the connections the account may see."""
    import pyarrow as pa

    names = ["Id", "User", "Host", "db", "Command", "Time", "State", "Info"]
    types = [
        pa.int64(),
        pa.string(),
        pa.string(),
        pa.string(),
        pa.string(),
        pa.int64(),
        pa.string(),
        pa.string(),
    ]
    return pa.table(
        {n: pa.array([r[i] for r in rows], t) for i, (n, t) in enumerate(zip(names, types, strict=True))}
    )
