"""The table-store contract both formats keep: atomic, idempotent partition overwrites, schema
evolution rules, and concurrent writers of one new table."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest

from lakehouse.core.ids import TableId
from lakehouse.core.settings import LakehouseSettings
from lakehouse.facade import Lakehouse
from lakehouse.storage.schemas import SchemaConflictError, merge_schemas

T = TableId("iov", "t")
SCHEMA = pa.schema([("v", pa.float64()), ("dt", pa.string()), ("hh", pa.string())])


def rows(values: list[float], hh: str) -> pa.Table:
    return pa.table(
        {"v": values, "dt": ["2025-09-17"] * len(values), "hh": [hh] * len(values)}, schema=SCHEMA
    )


def partition(hh: str) -> dict[str, str]:
    return {"dt": "2025-09-17", "hh": hh}


def test_overwrite_replaces_a_partition_and_leaves_the_others(settings: LakehouseSettings) -> None:
    lh = Lakehouse(settings)
    lh.tables.ensure_table(T, SCHEMA, ["dt", "hh"], origin="model")
    lh.tables.overwrite_partition(T, rows([1.0, 2.0], "00"), partition("00"))
    lh.tables.overwrite_partition(T, rows([3.0], "01"), partition("01"))
    lh.tables.overwrite_partition(T, rows([1.0, 2.0], "00"), partition("00"))  # a re-run
    assert sorted(lh.tables.read(T)["v"].to_pylist()) == [1.0, 2.0, 3.0]
    lh.tables.overwrite_partition(T, SCHEMA.empty_table(), partition("00"))  # the partition's files are gone
    assert lh.tables.read(T)["v"].to_pylist() == [3.0]
    assert lh.tables.read(T, partition("00")).num_rows == 0


def test_chunked_overwrite_is_one_commit(settings: LakehouseSettings) -> None:
    lh = Lakehouse(settings)
    lh.tables.ensure_table(T, SCHEMA, ["dt", "hh"], origin="model")
    lh.tables.overwrite_partition(T, rows([0.0], "00"), partition("00"))
    version = lh.tables.version(T)

    def failing_chunks():
        yield rows([1.0], "00")
        raise RuntimeError("source broke mid-way")

    with pytest.raises(RuntimeError):
        lh.tables.overwrite_partition(T, failing_chunks, partition("00"))
    assert lh.tables.version(T) == version  # nothing committed
    assert lh.tables.read(T)["v"].to_pylist() == [0.0]
    written = lh.tables.overwrite_partition(
        T, lambda: [rows([1.0], "00"), rows([2.0, 3.0], "00")], partition("00")
    )
    assert written == 3 and sorted(lh.tables.read(T)["v"].to_pylist()) == [1.0, 2.0, 3.0]


def test_two_writers_create_and_fill_one_new_table_at_once(settings: LakehouseSettings) -> None:
    def write(hh: str) -> int:
        lh = Lakehouse(settings)  # each writer has its own catalog handle, as separate runs do
        lh.tables.ensure_table(T, SCHEMA, ["dt", "hh"], origin="datascan")
        return lh.tables.overwrite_partition(T, rows([float(int(hh))] * 3, hh), partition(hh))

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(write, ["00", "01", "02", "03"])) == [3, 3, 3, 3]
    data = Lakehouse(settings).tables.read(T)
    assert sorted(data["v"].to_pylist()) == [0.0] * 3 + [1.0] * 3 + [2.0] * 3 + [3.0] * 3


def test_schema_rules() -> None:
    table = pa.schema([("a", pa.float64()), ("b", pa.int64())])
    assert merge_schemas(table, pa.schema([("a", pa.float32())]), "f").equals(table)  # narrower fits
    widened = merge_schemas(pa.schema([("a", pa.float32())]), pa.schema([("a", pa.float64())]), "f")
    assert widened.field("a").type == pa.float64()
    assert merge_schemas(table, pa.schema([("c", pa.string())]), "f").names == ["a", "b", "c"]
    with pytest.raises(SchemaConflictError, match=r"landing/x\.parquet: column 'b' is string"):
        merge_schemas(table, pa.schema([("b", pa.string())]), "landing/x.parquet")
