"""Masking functions for dynamic data masking, named in MaxCompute's style (MASKED_...).

A function is applied to a whole Arrow column before the column reaches any query engine, so every
later step (joins, filters, GROUP BY, functions, exports) only ever sees masked values. Each function
is computed once per distinct value (dictionary encoding), so low-cardinality ids are cheap.

NULL stays NULL under every function (a masked NULL carries no information the type does not).
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse.core.secrets import local_secret

if TYPE_CHECKING:
    import pyarrow as pa

SALT_ENV = "LAKEHOUSE_MASKING_SALT"
SALT_FILE = "masking_salt"


class MaskingError(ValueError):
    """A masking function was called with arguments or on a column type it cannot handle."""


@dataclass(frozen=True)
class MaskingFunction:
    name: str
    params: tuple[str, ...]
    """Parameter names, in order (all required)."""
    types: str
    """Which column types it takes: 'string', 'any', 'temporal', 'numeric'."""
    summary: str
    """One line for docs and `lakehouse policy show`."""


FUNCTIONS: dict[str, MaskingFunction] = {
    f.name: f
    for f in [
        MaskingFunction(
            "MASKED_STRING_UNMASKED_BA",
            ("m", "n"),
            "string",
            "keep the first m and last n characters, '*' for each character between "
            "(by character, not byte); strings of length <= m + n are unchanged",
        ),
        MaskingFunction(
            "MASKED_STRING_MASKED_BA",
            ("m", "n"),
            "string",
            "the reverse: '*' for each of the first m and last n characters, the middle kept",
        ),
        MaskingFunction(
            "MASKED_ALL",
            (),
            "any",
            "full masking: every value becomes one constant of its type "
            "('***', 0, false, 1970-01-01), so not even the length is left",
        ),
        MaskingFunction(
            "MASKED_HASH",
            (),
            "any",
            "HMAC-SHA-256 of the value's text with the secret salt, as 64 hex characters "
            "(equal values stay equal, so joins and counts still work; the salt is never shown)",
        ),
        MaskingFunction("MASKED_NULL", (), "any", "NULL of the column's type"),
        MaskingFunction(
            "MASKED_DATE_ROUND",
            ("unit",),
            "temporal",
            "dates and timestamps rounded down to 'YEAR', 'MONTH', 'DAY' or 'HOUR' (the first instant)",
        ),
        MaskingFunction(
            "MASKED_NUMBER_ROUND",
            ("digits",),
            "numeric",
            "numbers rounded half-up to `digits` decimals; a negative `digits` rounds to tens, "
            "hundreds, ... (MASKED_NUMBER_ROUND(-2): 1234 -> 1200)",
        ),
    ]
}

DATE_UNITS = ("YEAR", "MONTH", "DAY", "HOUR")


def validate(name: str, args: Sequence[Any]) -> tuple[str, tuple[Any, ...]]:
    """The canonical (NAME, args) of a call, or a MaskingError saying what is wrong."""
    fn = FUNCTIONS.get(name.upper())
    if fn is None:
        raise MaskingError(f"unknown masking function {name!r}; known: {', '.join(sorted(FUNCTIONS))}")
    if len(args) != len(fn.params):
        raise MaskingError(
            f"{fn.name} takes {len(fn.params)} argument(s) ({', '.join(fn.params) or 'none'}), got {len(args)}"
        )
    if fn.name in ("MASKED_STRING_UNMASKED_BA", "MASKED_STRING_MASKED_BA") and not all(
        isinstance(a, int) and a >= 0 for a in args
    ):
        raise MaskingError(f"{fn.name}(m, n) needs two whole numbers >= 0, got {tuple(args)}")
    if fn.name == "MASKED_DATE_ROUND":
        unit = str(args[0]).upper()
        if unit not in DATE_UNITS:
            raise MaskingError(f"MASKED_DATE_ROUND unit must be one of {DATE_UNITS}, got {args[0]!r}")
        args = (unit,)
    if fn.name == "MASKED_NUMBER_ROUND" and not (isinstance(args[0], int) and -38 <= args[0] <= 38):
        raise MaskingError(
            f"MASKED_NUMBER_ROUND(digits) needs a whole number from -38 to 38, got {args[0]!r}"
        )
    return fn.name, tuple(args)


def accepts(name: str, arrow_type: pa.DataType) -> bool:
    """Whether the function can mask a column of this Arrow type."""
    import pyarrow.types as pat

    kind = FUNCTIONS[name].types
    if kind == "string":
        return bool(pat.is_string(arrow_type) or pat.is_large_string(arrow_type))
    if kind == "temporal":
        return bool(pat.is_date(arrow_type) or pat.is_timestamp(arrow_type))
    if kind == "numeric":
        return bool(pat.is_integer(arrow_type) or pat.is_floating(arrow_type) or pat.is_decimal(arrow_type))
    return True


def result_type(name: str, arrow_type: pa.DataType) -> pa.DataType:
    import pyarrow as pa

    return pa.string() if name == "MASKED_HASH" else arrow_type


# --- the functions on single values ----------------------------------------------------------


def _unmasked_ba(value: str, m: int, n: int) -> str:
    if len(value) <= m + n:
        return value
    return value[:m] + "*" * (len(value) - m - n) + (value[len(value) - n :] if n else "")


def _masked_ba(value: str, m: int, n: int) -> str:
    if len(value) <= m + n:
        return "*" * len(value)
    return "*" * m + value[m : len(value) - n] + "*" * n


def _constant(arrow_type: pa.DataType) -> Any:
    import pyarrow.types as pat

    if pat.is_string(arrow_type) or pat.is_large_string(arrow_type):
        return "***"
    if pat.is_boolean(arrow_type):
        return False
    if pat.is_integer(arrow_type) or pat.is_floating(arrow_type):
        return 0
    if pat.is_decimal(arrow_type):
        return decimal.Decimal(0)
    if pat.is_date(arrow_type):
        return dt.date(1970, 1, 1)
    if pat.is_timestamp(arrow_type):
        return dt.datetime(1970, 1, 1, tzinfo=dt.UTC if arrow_type.tz else None)
    if pat.is_binary(arrow_type) or pat.is_large_binary(arrow_type):
        return b"***"
    return None  # nested types: nothing of them is left


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def _date_round(value: Any, unit: str) -> Any:
    if isinstance(value, dt.datetime):
        if unit == "YEAR":
            return value.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        if unit == "MONTH":
            return value.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if unit == "DAY":
            return value.replace(hour=0, minute=0, second=0, microsecond=0)
        return value.replace(minute=0, second=0, microsecond=0)
    if unit == "YEAR":
        return value.replace(month=1, day=1)
    if unit == "MONTH":
        return value.replace(day=1)
    return value  # a date has no hours


def _number_round(value: Any, digits: int) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return value
    exact = decimal.Decimal(str(value)) if isinstance(value, float) else decimal.Decimal(value)
    rounded = exact.quantize(decimal.Decimal(1).scaleb(-digits), rounding=decimal.ROUND_HALF_UP)
    if isinstance(value, bool | int):
        return int(rounded)
    if isinstance(value, float):
        return float(rounded)
    return rounded


def value_function(
    name: str, args: Sequence[Any], arrow_type: pa.DataType, salt: bytes | None
) -> Callable[[Any], Any]:
    """The masking of one non-NULL Python value of the given column type."""
    if name == "MASKED_STRING_UNMASKED_BA":
        return lambda v: _unmasked_ba(v, args[0], args[1])
    if name == "MASKED_STRING_MASKED_BA":
        return lambda v: _masked_ba(v, args[0], args[1])
    if name == "MASKED_ALL":
        constant = _constant(arrow_type)
        return lambda v: constant
    if name == "MASKED_NULL":
        return lambda v: None
    if name == "MASKED_HASH":
        if not salt:
            raise MaskingError("MASKED_HASH needs the masking salt")
        key = salt
        return lambda v: hmac.new(key, _text(v).encode("utf-8"), hashlib.sha256).hexdigest()
    if name == "MASKED_DATE_ROUND":
        return lambda v: _date_round(v, args[0])
    if name == "MASKED_NUMBER_ROUND":
        return lambda v: _number_round(v, args[0])
    raise MaskingError(f"unknown masking function {name!r}")


def mask_array(
    array: pa.Array | pa.ChunkedArray, name: str, args: Sequence[Any], salt: bytes | None
) -> pa.ChunkedArray:
    """The column with the function applied, computed once per distinct value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    chunked = array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])
    if not accepts(name, chunked.type):
        raise MaskingError(f"{name} cannot mask a column of type {chunked.type}")
    out_type = result_type(name, chunked.type)
    if name == "MASKED_NULL":
        return pa.chunked_array([pa.nulls(len(chunked), out_type)], type=out_type)
    fn = value_function(name, args, chunked.type, salt)
    chunks = []
    for chunk in chunked.chunks:
        encoded = pc.dictionary_encode(chunk)
        distinct = [None if v is None else fn(v) for v in encoded.dictionary.to_pylist()]
        dictionary = pa.array(distinct, type=out_type)
        chunks.append(dictionary.take(encoded.indices))
    return pa.chunked_array(chunks, type=out_type)


def lookup(masks: Mapping[str, Any], column: str) -> Any:
    """The mask of a column, its name matched case-insensitively (SQL names are: a table re-created
    or evolved with `VIN` instead of `vin` must not shed the mask bound to `vin`); None if unmasked."""
    wanted = column.lower()
    for name, mask in masks.items():
        if name.lower() == wanted:
            return mask
    return None


def mask_table(
    table: pa.Table, masks: Mapping[str, tuple[str, Sequence[Any]]], salt: bytes | None
) -> pa.Table:
    """Replace each masked column (name -> (function, args)) by its masked values; others untouched.

    Every field is looked at by position, so a column selected twice, or spelled in another case
    than the binding, is masked too."""
    for index, field in enumerate(table.schema):
        found = lookup(masks, field.name)
        if found is None:
            continue
        name, args = found
        masked = mask_array(table.column(index), name, args, salt)
        table = table.set_column(index, field.with_type(masked.type), masked)
    return table


def masking_salt(home: str, env: Mapping[str, str] | None = None) -> bytes:
    """The secret for MASKED_HASH: LAKEHOUSE_MASKING_SALT, else a random one kept in
    $LAKEHOUSE_HOME/masking_salt (created once, mode 0600). Never logged, shown or written elsewhere."""
    return local_secret(home, SALT_FILE, SALT_ENV, env)
