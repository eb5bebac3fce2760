"""Arrow to torch for LakehouseDataset (dataset.py): how each column becomes a tensor or a list (the
type rules are in dataset.py's docstring), and WireBatch, the form in which a DataLoader worker sends
a batch through the pipe (one buffer of tensor values, the string columns as Arrow)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa


def require_torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("LakehouseDataset needs torch: pip install 'lakehouse[ml]'") from exc
    return torch


# --- Arrow to torch -----------------------------------------------------------------------------
Prepare = Any
"""Arrow column -> numpy array for a tensor column (None: a list column)."""


def converters(schema: pa.Schema) -> list[tuple[str, Prepare | None]]:
    """For each column, how its Arrow values become a tensor (a function giving the numpy values)
    or a list (None); see the module docstring."""
    return [(field.name, _prepare(field)) for field in schema]


def _prepare(field: pa.Field) -> Prepare | None:
    import pyarrow as pa
    import pyarrow.types as pat

    kind = field.type
    if pat.is_dictionary(kind):
        inner = _prepare(field.with_type(kind.value_type))
        return None if inner is None else (lambda col: inner(col.cast(kind.value_type)))
    if pat.is_integer(kind) or pat.is_boolean(kind):
        return lambda col: _numpy(col, field.name, nulls_allowed=False)
    if pat.is_floating(kind):
        return lambda col: _numpy(col, field.name, nulls_allowed=True)
    if pat.is_decimal(kind):
        return lambda col: _numpy(col.cast(pa.float64()), field.name, nulls_allowed=True)
    if pat.is_temporal(kind):  # dates, timestamps, times, durations: their stored 32/64-bit integers
        width = pa.int32() if kind.bit_width == 32 else pa.int64()
        return lambda col: _numpy(col.cast(width), field.name, nulls_allowed=False).astype("int64")
    return None


def _numpy(column: pa.ChunkedArray, name: str, nulls_allowed: bool) -> Any:
    """One column's values as numpy (possibly a read-only view of the Arrow buffer)."""
    if column.null_count and not nulls_allowed:
        raise ValueError(
            f"column {name!r} ({column.type}) has {column.null_count} null(s) in this batch: an "
            "integer, boolean or temporal column becomes a tensor only without nulls (leave it out "
            "with columns=, or fill the nulls in a model)"
        )
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    return array.to_numpy(zero_copy_only=False)


def _array(column: pa.ChunkedArray) -> pa.Array:
    """The column as one compact array: a pickled slice would carry its whole parent's buffers."""
    import pyarrow as pa

    return pa.concat_arrays(column.chunks)


def convert(table: pa.Table, plan: list[tuple[str, Prepare | None]], wire: bool) -> dict[str, Any]:
    """One batch as a dict: the tensor columns copied into one buffer (one allocation, and one
    shared-memory segment when a worker sends it), the other columns as lists; `wire` (in a
    DataLoader worker): a WireBatch, whose list columns stay Arrow until it reaches the main process."""
    torch = require_torch()
    values = {name: prepare(table.column(i)) for i, (name, prepare) in enumerate(plan) if prepare is not None}
    layout: list[tuple[str, int | None, int, Any]] = []
    total = 0
    for name, prepare in plan:
        if prepare is None:
            layout.append((name, None, 0, None))
            continue
        array = values[name]
        layout.append((name, total, array.nbytes, _TORCH_DTYPES.get(array.dtype.str) or _torch_dtype(array)))
        total += -(-array.nbytes // 8) * 8  # every column starts 8-byte aligned
    packed = torch.empty(total, dtype=torch.uint8)
    flat = packed.numpy()
    out: dict[str, Any] = WireBatch() if wire else {}
    arrays: dict[str, pa.Array] = {}
    for i, (name, offset, nbytes, dtype) in enumerate(layout):
        if offset is None:
            column = table.column(i)
            if wire:
                out[name] = _array(column)
                arrays[name] = _compact(out[name])
            else:
                out[name] = column.to_pylist()
            continue
        array = values[name]
        flat[offset : offset + nbytes].view(array.dtype)[:] = array
        out[name] = packed[offset : offset + nbytes].view(dtype)
    if isinstance(out, WireBatch):
        out.pack(packed, layout, arrays)
    return out


_TORCH_DTYPES: dict[str, Any] = {}
SHARED_MEMORY_BYTES = 1 << 20
"""A worker sends a batch's tensor values this big or bigger in shared memory, smaller ones as bytes."""


def _torch_dtype(array: Any) -> Any:
    dtype = require_torch().from_numpy(array[:0].copy()).dtype
    _TORCH_DTYPES[array.dtype.str] = dtype
    return dtype


class WireBatch(dict[str, Any]):
    """A batch on its way from a DataLoader worker: pickled as its one buffer of tensor values plus
    its list columns as Arrow (cheap to send), and unpickled as a plain dict of tensor views and lists.

    In the worker its list columns are pyarrow Arrays, so torch's default conversion does not walk
    every string; a custom `collate_fn` that changes the batch in the worker gets it sent as it is."""

    _packed: Any = None
    _layout: Any = None
    _arrays: Any = None
    _sent: Any = None

    def pack(
        self, packed: Any, layout: list[tuple[str, int | None, int, Any]], arrays: dict[str, Any]
    ) -> None:
        self._packed, self._layout, self._arrays = packed, layout, arrays
        self._sent = [(k, id(v)) for k, v in self.items()]

    def __copy__(self) -> WireBatch:
        return self  # torch's default_convert "clones" a mapping, then sets every value back

    def __reduce__(self) -> Any:
        if self._packed is None or [(k, id(v)) for k, v in self.items()] != self._sent:
            return (dict, (dict(self),))  # changed in the worker: sent as it is
        # A small buffer goes as bytes through the worker's pipe; a big one as one tensor in shared
        # memory (torch hands a file descriptor over per tensor: about a millisecond each).
        packed = self._packed if self._packed.numel() >= SHARED_MEMORY_BYTES else self._packed.numpy()
        return (_rebuild, (packed, self._layout, self._arrays))


def _compact(array: pa.Array) -> pa.Array:
    """A string column with repeated values as a dictionary array (fewer bytes to send, and each
    distinct string made once in the main process); others unchanged."""
    import pyarrow.types as pat

    if array.null_count or not (pat.is_string(array.type) or pat.is_large_string(array.type)):
        return array
    import pyarrow.compute as pc

    sample = array.slice(0, 1024)  # encoding mostly unique strings would cost more than it saves
    if pc.count_distinct(sample).as_py() * 2 > len(sample):
        return array
    encoded = array.dictionary_encode()
    return encoded if len(encoded.dictionary) * 2 <= len(array) else array


def _pylist(array: pa.Array) -> list[Any]:
    import numpy as np
    import pyarrow.types as pat

    if pat.is_dictionary(array.type):  # from _compact: no nulls
        words = np.array(array.dictionary.to_pylist() + [None], dtype=object)[:-1]  # stays 1-d
        found: list[Any] = words[array.indices.to_numpy()].tolist()
        return found
    return array.to_pylist()


def _rebuild(
    packed: Any, layout: list[tuple[str, int | None, int, Any]], arrays: dict[str, Any]
) -> dict[str, Any]:
    """A WireBatch received: a plain dict of tensor views of the one buffer, and lists."""
    import numpy as np

    if isinstance(packed, np.ndarray):
        packed = require_torch().from_numpy(packed if packed.flags.writeable else np.array(packed, copy=True))
    out: dict[str, Any] = {}
    for name, offset, nbytes, dtype in layout:
        out[name] = _pylist(arrays[name]) if offset is None else packed[offset : offset + nbytes].view(dtype)
    return out
