"""LakehouseDataset (lakehouse.ml): a governed, pinned, streaming PyTorch dataset, in both formats.

Each format gets one small governed lakehouse per module: three vehicles over three hours landed and
scanned through ODS -> DWD -> ADS, the seed's policy (RAM$alice sees masked VINs of the ADS table
and nothing else) plus carol, whose VIN and distance are MASKED_HASH. The pinning test, last, lands
one more hour."""

from __future__ import annotations

import datetime as dt
import itertools
import pickle
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

from lakehouse.core.settings import LakehouseSettings  # noqa: E402
from lakehouse.engines.base import QueryError  # noqa: E402
from lakehouse.facade import Lakehouse  # noqa: E402
from lakehouse.governance.policy_apply import apply_policy  # noqa: E402
from lakehouse.governance.store import PermissionDenied  # noqa: E402
from lakehouse.ml import LakehouseDataset  # noqa: E402
from lakehouse.ml.dataset import Plan, convert, converters, rebatch  # noqa: E402
from lakehouse.storage.tables.base import Pinned  # noqa: E402
from tests.helpers.governed import ADS, ALICE, MASKED, SEED_POLICY, VINS, assert_no_raw_vin  # noqa: E402
from tests.helpers.pipeline import Pipeline, gps  # noqa: E402

DWD = "iov.dwd_vehicle_gps"
HOURS = ["21", "22", "23"]
CAROL = """
CREATE ROLE hashers; ADD USER carol; GRANT hashers TO carol;
GRANT CreateInstance ON PROJECT iov TO ROLE hashers;
GRANT SELECT ON TABLE ads_vehicle_hourly_stat TO ROLE hashers;
CREATE DATA MASKING POLICY hash_vin TO ROLE (hashers) USING MASKED_HASH();
APPLY DATA MASKING POLICY hash_vin BIND TO TABLE ads_vehicle_hourly_stat COLUMN vin;
CREATE DATA MASKING POLICY hash_km TO ROLE (hashers) USING MASKED_HASH();
APPLY DATA MASKING POLICY hash_km BIND TO TABLE ads_vehicle_hourly_stat COLUMN total_distance;
"""


def land_hour(pipeline: Pipeline, hh: str) -> None:
    rows = [
        gps(
            vin,
            f"2025-09-17 {hh}:{minute:02d}:00",
            lng=120.0 + i / 100 + minute / 1000,
            lat=30.0,
            speed=40.0 + i,
        )
        for (i, vin), minute in itertools.product(enumerate(VINS), range(0, 60, 10))
    ]
    pipeline.land(rows, hh=hh)


@pytest.fixture(scope="module", params=["iceberg", "delta"])
def lake(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    settings = LakehouseSettings.for_home(
        tmp_path_factory.mktemp(f"ml-{request.param}") / "lh", table_format=request.param
    )
    with dg.instance_for_test() as instance:
        pipeline = Pipeline(settings, instance)
        for hh in HOURS:
            land_hour(pipeline, hh)
        pipeline.scan()
        apply_policy(pipeline.lh, SEED_POLICY.read_text(), "iov", str(SEED_POLICY))
        apply_policy(pipeline.lh, CAROL, "iov")
        yield pipeline


def load(ds: LakehouseDataset, workers: int) -> list[dict[str, Any]]:
    return list(DataLoader(ds, batch_size=None, num_workers=workers))


def rows_of(batches: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The batches' rows as tuples, in column order (tensors as Python values)."""
    out: list[tuple[Any, ...]] = []
    for batch in batches:
        columns = [v.tolist() if isinstance(v, torch.Tensor) else v for v in batch.values()]
        out.extend(zip(*columns, strict=True))
    return out


def sql_rows(lh: Lakehouse, query: str, user: str | None = None) -> list[tuple[Any, ...]]:
    table = lh.sql(query, user=user)
    return list(zip(*(table.column(i).to_pylist() for i in range(table.num_columns)), strict=True))


def dataset_audit(lh: Lakehouse) -> list[dict[str, Any]]:
    return lh.sql("select * from lakehouse.audit where kind = 'dataset' order by id").to_pylist()


# --- rows, workers, batches -------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_every_row_once_as_governed_sql_returns_it(lake: Pipeline, workers: int) -> None:
    lh = lake.lh
    ds = LakehouseDataset(ADS, user=ALICE, batch_size=2, lakehouse=lh)
    got = rows_of(load(ds, workers))
    expected = sql_rows(lh, f"select * from {ADS}", user=ALICE)
    assert len(expected) == len(VINS) * len(HOURS)
    assert Counter(got) == Counter(expected)  # as multisets: none twice, none missing
    assert {r[0] for r in got} == set(MASKED.values())
    assert_no_raw_vin([dict(zip(ds.schema.names, r, strict=True)) for r in got])


def test_the_owner_reads_every_row_and_real_values(lake: Pipeline) -> None:
    lh = lake.lh
    ds = LakehouseDataset(DWD, columns=["vin", "lng", "speed", "loc_valid", "hh"], lakehouse=lh)
    got = rows_of(load(ds, 2))
    assert Counter(got) == Counter(sql_rows(lh, f"select vin, lng, speed, loc_valid, hh from {DWD}"))
    assert {r[0] for r in got} == set(VINS)


def test_batches_have_exactly_batch_size_rows(lake: Pipeline) -> None:
    lh = lake.lh
    total = len(VINS) * 6 * len(HOURS)  # DWD: one row per report
    ds = LakehouseDataset(DWD, columns=["vin", "speed"], batch_size=5, lakehouse=lh)
    sizes = [len(b["vin"]) for b in load(ds, 0)]
    assert sizes == [5] * (total // 5) + [total % 5]
    assert all(len(b["speed"]) == len(b["vin"]) for b in load(ds, 0))
    sizes = [len(b["vin"]) for b in load(ds, 2)]
    assert sum(sizes) == total and all(s <= 5 for s in sizes)
    assert sum(s < 5 for s in sizes) <= 2  # only each worker's last batch is short
    big = LakehouseDataset(DWD, columns=["vin"], batch_size=10_000, lakehouse=lh)
    assert [len(b["vin"]) for b in load(big, 0)] == [total]
    with pytest.raises(ValueError, match="batch_size"):
        LakehouseDataset(DWD, batch_size=0, lakehouse=lh)


def test_tensor_types(lake: Pipeline) -> None:
    lh = lake.lh
    ds = LakehouseDataset(DWD, columns=["vin", "event_time", "lng", "loc_valid", "dt"], lakehouse=lh)
    (batch,) = load(ds, 0)
    assert list(batch) == ["vin", "event_time", "lng", "loc_valid", "dt"]
    assert isinstance(batch["vin"], list) and all(isinstance(v, str) for v in batch["vin"])
    assert batch["lng"].dtype == torch.float64
    assert batch["loc_valid"].dtype == torch.bool
    assert batch["event_time"].dtype == torch.int64  # microseconds since the epoch, as stored
    times = lh.sql(f"select event_time from {DWD}").column("event_time").to_pylist()
    epoch = dt.datetime(1970, 1, 1)
    assert sorted(batch["event_time"].tolist()) == sorted(
        (t - epoch) // dt.timedelta(microseconds=1) for t in times
    )
    assert set(batch["dt"]) == {"2025-09-17"}  # a partition column (Delta keeps it out of the files)
    for batch in load(ds, 2):  # from a worker: the same types, a plain dict
        assert type(batch) is dict and isinstance(batch["vin"], list) and isinstance(batch["dt"], list)
        assert (batch["lng"].dtype, batch["loc_valid"].dtype, batch["event_time"].dtype) == (
            torch.float64,
            torch.bool,
            torch.int64,
        )


def test_masked_hash_turns_a_column_into_strings(lake: Pipeline) -> None:
    lh = lake.lh
    ds = LakehouseDataset(ADS, columns=["vin", "total_distance", "avg_speed"], user="carol", lakehouse=lh)
    batches = load(ds, 2)
    assert ds.schema.field("total_distance").type == pa.string()
    for batch in batches:
        assert all(isinstance(v, str) and len(v) == 64 for v in batch["vin"] + batch["total_distance"])
        assert batch["avg_speed"].dtype == torch.float64
    expected = sql_rows(lh, f"select vin, total_distance, avg_speed from {ADS}", user="carol")
    assert Counter(rows_of(batches)) == Counter(expected)
    assert_no_raw_vin(batches)


def test_columns_are_checked_at_creation(lake: Pipeline) -> None:
    lh = lake.lh
    ds = LakehouseDataset(ADS, columns=["VIN", "avg_speed"], user=ALICE, lakehouse=lh)
    assert ds.columns == ["vin", "avg_speed"]  # names are case-insensitive, as in SQL
    assert set(load(ds, 0)[0]["vin"]) == set(MASKED.values())
    with pytest.raises(QueryError, match="has no column 'nope'"):
        LakehouseDataset(ADS, columns=["vin", "nope"], user=ALICE, lakehouse=lh)


# --- governance --------------------------------------------------------------------------------


def test_a_user_without_select_fails_at_creation_and_is_audited(lake: Pipeline) -> None:
    lh = lake.lh
    with pytest.raises(
        PermissionDenied, match=r"RAM\$alice \(role thirdparty\) has no SELECT on table iov.dwd"
    ):
        LakehouseDataset(DWD, user=ALICE, lakehouse=lh)
    denied = dataset_audit(lh)[-1]
    assert (denied["user_name"], denied["status"], denied["tables"]) == (ALICE, "denied", DWD)
    assert "no SELECT on table iov.dwd_vehicle_gps" in denied["reason"]
    with pytest.raises(PermissionDenied, match="user 'bob' does not exist"):
        LakehouseDataset(ADS, user="bob", lakehouse=lh)
    assert dataset_audit(lh)[-1]["status"] == "denied"


def test_one_audit_row_per_worker_iteration(lake: Pipeline) -> None:
    lh = lake.lh
    ds = LakehouseDataset(ADS, user=ALICE, batch_size=4, lakehouse=lh)
    before = len(dataset_audit(lh))
    assert len(dataset_audit(lh)) == before  # creating it read nothing: no row
    load(ds, 2)
    rows = dataset_audit(lh)[before:]
    assert len(rows) == 2
    assert sorted(r["statement"].rsplit(" ", 1)[1] for r in rows) == ["worker=0/2", "worker=1/2"]
    assert all(r["user_name"] == ALICE and r["status"] == "ok" and r["tables"] == ADS for r in rows)
    assert all(r["masked_columns"] == f"{ADS}.vin:MASKED_STRING_UNMASKED_BA" for r in rows)
    assert sum(r["rows"] for r in rows) == len(VINS) * len(HOURS)
    assert all(f"snapshot={ds.snapshot_id}" in r["statement"] for r in rows)
    # a consumer that stops early completes its attempt with the rows it got
    for _ in iter(ds):
        break
    last = dataset_audit(lh)[-1]
    assert (last["status"], last["rows"]) == ("ok", 4)


def test_a_revoke_applies_to_the_next_iteration(lake: Pipeline) -> None:
    lh = lake.lh
    ds = LakehouseDataset(ADS, user=ALICE, lakehouse=lh)
    try:
        apply_policy(lh, "REVOKE SELECT ON TABLE ads_vehicle_hourly_stat FROM ROLE thirdparty;", "iov")
        with pytest.raises(PermissionDenied, match="no SELECT on table iov.ads_vehicle_hourly_stat"):
            load(ds, 0)
        assert dataset_audit(lh)[-1]["status"] == "denied"
    finally:
        apply_policy(lh, SEED_POLICY.read_text(), "iov")
    assert {r[0] for r in rows_of(load(ds, 0))} == set(MASKED.values())


def test_the_dataset_pickles_without_its_facade(lake: Pipeline) -> None:
    """What a spawned worker gets: settings and the plan, no connections; it opens its own facade."""
    lh = lake.lh
    ds = LakehouseDataset(ADS, user=ALICE, lakehouse=lh)
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._lakehouse is None and copy.snapshot_id == ds.snapshot_id
    assert Counter(rows_of(list(iter(copy)))) == Counter(rows_of(load(ds, 0)))


# --- row groups and conversions (no lakehouse) ---------------------------------------------------


def test_work_units_are_row_groups_split_across_workers(tmp_path: Path) -> None:
    table = pa.table({"id": list(range(1000)), "name": [f"n{i}" for i in range(1000)]})
    for part in range(3):
        pq.write_table(
            table.slice(part * 300, 300 if part < 2 else 400),
            tmp_path / f"f{part}.parquet",
            row_group_size=64,
        )
    dataset = pads.dataset(sorted(str(p) for p in tmp_path.glob("*.parquet")), format="parquet")
    plan = Plan.of(Pinned("1", dataset), str(tmp_path))
    settings = LakehouseSettings.for_home(tmp_path / "lh")
    assert len(plan.units(settings)) == 5 + 5 + 7
    for workers in (1, 2, 3, 4):
        ids: list[int] = []
        for worker in range(workers):
            mine = plan.dataset(settings, worker, workers)
            ids.extend(mine.to_table().column("id").to_pylist() if mine is not None else [])
        assert sorted(ids) == list(range(1000)), workers
    chunks = list(rebatch(dataset.to_batches(batch_size=100), 128))
    assert [c.num_rows for c in chunks] == [128] * 7 + [104]


def test_conversions_and_integers_with_nulls_refused_by_name() -> None:
    schema = pa.schema(
        [
            ("n", pa.int64()),
            ("x", pa.float32()),
            ("d", pa.date32()),
            ("b", pa.bool_()),
            ("s", pa.string()),
            ("r", pa.string()),
        ]
    )
    table = pa.Table.from_batches(
        [
            pa.record_batch(
                [[1, 2], [1.5, None], [dt.date(1970, 1, 3)] * 2, [True, False], ["a", None], ["u", "u"]],
                schema=schema,
            ),
            pa.record_batch([[3], [2.5], [dt.date(1970, 1, 1)], [True], ["c"], ["u"]], schema=schema),
        ]
    )
    plan = converters(schema)
    for wire in (False, True):
        batch = convert(table, plan, wire=wire)
        if wire:  # what a worker sends: one buffer and Arrow, received as tensors and lists
            assert isinstance(batch["s"], pa.Array)
            batch = pickle.loads(pickle.dumps(batch))
            assert type(batch) is dict
        assert batch["n"].tolist() == [1, 2, 3] and batch["n"].dtype == torch.int64
        assert batch["x"].dtype == torch.float32 and batch["x"].isnan().tolist() == [False, True, False]
        assert batch["d"].tolist() == [2, 2, 0] and batch["d"].dtype == torch.int64  # days since 1970
        assert batch["b"].tolist() == [True, False, True] and batch["b"].dtype == torch.bool
        assert batch["s"] == ["a", None, "c"]
        assert batch["r"] == ["u", "u", "u"]  # repeated: sent dictionary-encoded
    # a worker's custom collate_fn that changes the batch: it is sent as it is
    changed = convert(table, plan, wire=True)
    changed["n"] = changed["n"] * 2
    assert pickle.loads(pickle.dumps(changed))["n"].tolist() == [2, 4, 6]
    with pytest.raises(ValueError, match="column 'n'"):
        convert(
            pa.table({"n": pa.array([1, None], pa.int64())}),
            converters(pa.schema([("n", pa.int64())])),
            wire=False,
        )


# --- the snapshot (last: it lands one more hour) ------------------------------------------------


def test_the_snapshot_is_pinned_for_the_datasets_life(lake: Pipeline) -> None:
    lh = lake.lh
    ds = LakehouseDataset(ADS, user=ALICE, lakehouse=lh)
    old_rows = Counter(rows_of(load(ds, 0)))
    old = ds.snapshot_id
    assert old is not None
    land_hour(lake, "20")
    lake.scan()
    now = sql_rows(lh, f"select * from {ADS}", user=ALICE)
    assert len(now) == len(VINS) * (len(HOURS) + 1)
    for workers in (0, 2):
        assert Counter(rows_of(load(ds, workers))) == old_rows  # still the old snapshot's rows
    fresh = LakehouseDataset(ADS, user=ALICE, lakehouse=lh)
    assert fresh.snapshot_id != old
    assert Counter(rows_of(load(fresh, 2))) == Counter(now)
    back = LakehouseDataset(ADS, user=ALICE, snapshot=old, lakehouse=lh)
    assert back.snapshot_id == old
    assert Counter(rows_of(load(back, 2))) == old_rows
    with pytest.raises(QueryError):
        LakehouseDataset(ADS, user=ALICE, snapshot="12345678", lakehouse=lh)
