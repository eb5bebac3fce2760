"""The `Lakehouse` facade's own reads: partitions by the columns a table really has."""

from __future__ import annotations

import pyarrow as pa
import pytest

from lakehouse.core.ids import TableId
from lakehouse.core.settings import LakehouseSettings
from lakehouse.engines.base import QueryError
from lakehouse.facade import Lakehouse


def _table(lh: Lakehouse, name: str, partition_by: list[str], rows: list[dict]) -> TableId:
    ident = TableId("game_db", name)
    data = pa.Table.from_pylist(rows)
    lh.tables.ensure_table(ident, data.schema, partition_by, origin="model")
    for values in sorted({tuple(r[c] for c in partition_by) for r in rows}):
        part = dict(zip(partition_by, values, strict=True))
        chunk = pa.Table.from_pylist([r for r in rows if all(r[c] == v for c, v in part.items())])
        lh.tables.overwrite_partition(ident, chunk, part)
    return ident


def test_partitions_of_a_daily_table_are_its_days(settings: LakehouseSettings) -> None:
    lh = Lakehouse(settings)
    rows = [{"dau": n, "dt": d} for n, d in [(1, "2025-09-01"), (2, "2025-09-01"), (3, "2025-09-02")]]
    ident = _table(lh, "ads_daily", ["dt"], rows)
    assert lh.tables.partition_columns(ident) == ["dt"]
    assert lh.partitions(ident).to_pylist() == [
        {"dt": "2025-09-01", "rows": 2},
        {"dt": "2025-09-02", "rows": 1},
    ]


def test_partitions_of_an_hourly_table_with_a_day_index(settings: LakehouseSettings) -> None:
    lh = Lakehouse(settings)
    rows = [
        {"n": 1, "dt": "2025-09-02", "hh": "00", "event_date": "2025-09-01"},
        {"n": 2, "dt": "2025-09-02", "hh": "00", "event_date": "2025-09-02"},
        {"n": 3, "dt": "2025-09-02", "hh": "00", "event_date": "2025-09-02"},
    ]
    ident = _table(lh, "dwd_events", ["dt", "hh", "event_date"], rows)
    assert [(r["event_date"], r["rows"]) for r in lh.partitions(str(ident)).to_pylist()] == [
        ("2025-09-01", 1),
        ("2025-09-02", 2),
    ]


def test_an_unpartitioned_table_is_one_partition(settings: LakehouseSettings) -> None:
    lh = Lakehouse(settings)
    ident = _table(lh, "dwd_user_details", [], [{"user_id": 1}, {"user_id": 2}])
    assert lh.tables.partition_columns(ident) == []
    assert lh.partitions(ident).to_pylist() == [{"rows": 2}]


def test_partitions_of_a_missing_table_name_it(settings: LakehouseSettings) -> None:
    with pytest.raises(QueryError, match=r"table game_db\.nothing does not exist"):
        Lakehouse(settings).partitions("game_db.nothing")
