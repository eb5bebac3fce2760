"""Arrow schemas as both table formats store them: normalization, evolution by widening, conforming data."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa


class SchemaConflictError(ValueError):
    """New data does not fit the table's schema and cannot be widened into it."""


# Widenings every reader of both formats accepts (Iceberg's allowed type promotions).
_WIDENINGS = {
    ("int8", "int16"),
    ("int8", "int32"),
    ("int16", "int32"),
    ("int32", "int64"),
    ("int8", "int64"),
    ("int16", "int64"),
    ("float", "double"),
    ("halffloat", "double"),
    ("halffloat", "float"),
    ("string", "large_string"),
    ("large_string", "string"),
    ("binary", "large_binary"),
    ("large_binary", "binary"),
}


def _type_name(t: pa.DataType) -> str:
    return str(t).split("[")[0]


def normalize_schema(schema: pa.Schema) -> pa.Schema:
    """Types both formats store the same way: strings, binaries not large; timestamps in microseconds."""
    import pyarrow as pa

    def norm(t: pa.DataType) -> pa.DataType:
        if pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return pa.string()
        if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
            return pa.binary()
        if pa.types.is_dictionary(t):
            return norm(t.value_type)
        if pa.types.is_timestamp(t) and t.unit in ("ns", "ms", "s"):
            return pa.timestamp("us", t.tz)
        if pa.types.is_null(t):
            return pa.string()
        if pa.types.is_float16(t):
            return pa.float32()
        return t

    return pa.schema([pa.field(f.name, norm(f.type), nullable=True) for f in schema])


def merge_schemas(current: pa.Schema, incoming: pa.Schema, what: str) -> pa.Schema:
    """The schema that holds both: new columns appended, allowed widenings applied.

    Raises SchemaConflictError naming `what` (a file, a model) for an incompatible change."""
    import pyarrow as pa

    fields = {f.name: f for f in current}
    order = [f.name for f in current]
    for f in normalize_schema(incoming):
        if f.name not in fields:
            fields[f.name] = f
            order.append(f.name)
            continue
        have = fields[f.name].type
        if have.equals(f.type) or pa.types.is_null(f.type):
            continue
        if (_type_name(f.type), _type_name(have)) in _WIDENINGS:
            continue  # incoming is narrower: it will be cast up
        if (_type_name(have), _type_name(f.type)) in _WIDENINGS:
            fields[f.name] = f  # table widens
            continue
        raise SchemaConflictError(
            f"{what}: column {f.name!r} is {f.type} but the table has {have}; "
            "only widening changes (e.g. float -> double, int -> bigint) are accepted"
        )
    return pa.schema([fields[n] for n in order])


def conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """Data in exactly the table's column order and types; columns it lacks become NULL."""
    import pyarrow as pa

    columns = []
    for f in schema:
        if f.name in data.column_names:
            col = data.column(f.name)
            columns.append(col if col.type.equals(f.type) else col.cast(f.type))
        else:
            columns.append(pa.nulls(data.num_rows, f.type))
    return pa.Table.from_arrays(columns, schema=schema)
