"""What a MySQL client sees of the lakehouse: Arrow types as MySQL column types, results as rows for
the wire, and the catalog as one account may list it (SHOW, DESCRIBE, information_schema, SHOW CREATE
TABLE). lakehouse/serving/mysql.py serves them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mysql_mimic import ResultColumn, ResultSet
from mysql_mimic.types import ColumnType

from lakehouse.core.ids import TableId
from lakehouse.governance.store import PermissionDenied

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.facade import Lakehouse
    from lakehouse.serving.auth import Account

_ARROW_TO_MYSQL: list[tuple[str, ColumnType, str]] = [
    # (pyarrow.types predicate, result column type, information_schema type)
    ("is_boolean", ColumnType.TINY, "boolean"),
    ("is_int8", ColumnType.TINY, "tinyint"),
    ("is_int16", ColumnType.SHORT, "smallint"),
    ("is_int32", ColumnType.LONG, "int"),
    ("is_integer", ColumnType.LONGLONG, "bigint"),
    ("is_float32", ColumnType.FLOAT, "float"),
    ("is_floating", ColumnType.DOUBLE, "double"),
    ("is_decimal", ColumnType.NEWDECIMAL, "decimal"),
    ("is_date", ColumnType.DATE, "date"),
    ("is_timestamp", ColumnType.DATETIME, "datetime"),
    ("is_binary", ColumnType.BLOB, "varbinary"),
    ("is_large_binary", ColumnType.BLOB, "varbinary"),
]


def mysql_type(arrow_type: pa.DataType) -> tuple[ColumnType, str]:
    """The wire type and the information_schema type name of an Arrow column type."""
    import pyarrow.types as pat

    for predicate, column_type, name in _ARROW_TO_MYSQL:
        if getattr(pat, predicate)(arrow_type):
            if name == "decimal":
                return column_type, f"decimal({arrow_type.precision},{arrow_type.scale})"
            return column_type, name
    return ColumnType.VAR_STRING, "varchar(65533)"  # strings, and nested values as their text


def result_set(table: pa.Table) -> ResultSet:
    """An Arrow result as rows for the wire, typed from the Arrow schema (not guessed from values)."""
    import pyarrow.types as pat

    columns = []
    values = []
    for field, column in zip(table.schema, table.columns, strict=True):
        kind, _ = mysql_type(field.type)
        columns.append(ResultColumn(name=field.name, type=kind))
        data = column.to_pylist()
        if kind == ColumnType.VAR_STRING and not (
            pat.is_string(field.type) or pat.is_large_string(field.type)
        ):
            data = [None if v is None else str(v) for v in data]
        values.append(data)
    rows = list(zip(*values, strict=True)) if values else []
    return ResultSet(rows=rows, columns=columns)


def create_table_ddl(name: str, columns: dict[str, str]) -> str:
    """MySQL DDL of a table as listed, in the form MySQL prints it (and SQLAlchemy parses)."""

    def quoted(text: str) -> str:
        return "`" + text.replace("`", "``") + "`"

    ddl_type = {"boolean": "tinyint(1)"}
    lines = [f"  {quoted(c)} {ddl_type.get(t, t)} DEFAULT NULL" for c, t in columns.items()]
    return f"CREATE TABLE {quoted(name)} (\n" + ",\n".join(lines) + "\n) ENGINE=OLAP DEFAULT CHARSET=utf8mb4"


def visible_schema(lh: Lakehouse, login: Account) -> dict[str, dict[str, dict[str, str]]]:
    """{namespace: {table: {column: type}}} as the account may list it: the owner every namespace
    and table; a user the namespaces it holds `List` on and in them the tables it may SELECT, with
    column types as it reads them (a masked column has its masked type)."""
    from lakehouse.governance.masking import lookup, result_type

    records = lh.table_records()
    if login.user is None:
        principal = None
        namespaces = {r.namespace for r in records}
    else:
        principal = lh.governance.resolve(login.user, None)
        namespaces = {n.lower() for n in lh.governance.listable_namespaces(principal)}
    out: dict[str, dict[str, dict[str, str]]] = {}
    for record in records:
        if record.namespace.lower() not in {n.lower() for n in namespaces}:
            continue
        ident = TableId(record.namespace, record.name)
        masks: dict[str, Any] = {}
        if principal is not None:
            try:
                masks = lh.governance.authorize(principal, [ident])[ident]
            except PermissionDenied:
                continue
        try:
            schema = lh.tables.schema(ident)
        except Exception:  # a table being created, or unreadable: not listed rather than failing SHOW
            continue
        columns = {}
        for field in schema:
            mask = lookup(masks, field.name)
            kind = field.type if mask is None else result_type(mask.function, field.type)
            columns[field.name] = mysql_type(kind)[1]
        out.setdefault(record.namespace, {})[record.name] = columns
    for namespace in namespaces:  # a listable namespace without readable tables is still a database
        if not any(n.lower() == namespace.lower() for n in out):
            out[namespace] = {}
    return out
