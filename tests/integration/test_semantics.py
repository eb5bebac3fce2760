"""The seed's SQL with the issue's clarifications, checked through the real pipeline in both formats."""

from __future__ import annotations

import math

import pytest

from tests.helpers import reference
from tests.helpers.pipeline import Pipeline, gps

STAT_HOUR = "2025-09-17 23"


def test_dwd_keeps_valid_rows_and_rejects_the_rest_with_reasons(pipeline: Pipeline) -> None:
    rows = [
        gps("VIN001", "2025-09-16 00:00:00", speed=0.0),  # speed 0 is valid
        gps("VIN002", " 2025-09-16 00:30:00 "),  # surrounding spaces are trimmed
        gps(None),  # no vin
        gps("   "),  # blank vin
        gps("VIN003", speed=None),  # NULL speed
        gps("VIN003", speed=-1.0),  # negative speed
        gps("VIN003", speed=float("nan")),  # NaN speed
        gps("VIN004", "2025/09/16 00:00:00"),  # wrong format
        gps("VIN004", "2025-02-30 00:00:00"),  # no such date
        gps("VIN004", "2025-09-16T00:00:00"),  # ISO 'T' is not the seed's format
        gps("VIN004", None),  # NULL time
    ]
    pipeline.land(rows)
    pipeline.scan()
    kept = pipeline.sql("select vin, event_time, speed from iov.dwd_vehicle_gps order by vin")
    assert [(r["vin"], str(r["event_time"])) for r in kept] == [
        ("VIN001", "2025-09-16 00:00:00"),
        ("VIN002", "2025-09-16 00:30:00"),
    ]
    rejected = pipeline.sql(
        "select reject_reason, count(*) as n from iov.dwd_vehicle_gps_rejected "
        "where dt = '2025-09-17' and hh = '23' group by 1"
    )
    expected: dict[str, int] = {}
    for row in rows:
        reason = reference.reject_reason(row)
        if reason:
            expected[reason] = expected.get(reason, 0) + 1
    assert {r["reject_reason"]: r["n"] for r in rejected} == expected
    # rejected rows keep the raw value and the file they came from
    raw = pipeline.sql(
        "select report_time, _source_file from iov.dwd_vehicle_gps_rejected "
        "where reject_reason like 'report_time%' order by report_time nulls first"
    )
    assert raw[1]["report_time"] == "2025-02-30 00:00:00"
    assert raw[1]["_source_file"] == "iov/ods_vehicle_gps_raw/dt=2025-09-17/hh=23/part-0.parquet"


@pytest.mark.parametrize(
    ("lng", "lat", "valid"),
    [
        (70.0, 10.0, True),
        (140.0, 60.0, True),
        (120.0, 30.0, True),
        (69.999, 30.0, False),
        (140.001, 30.0, False),
        (120.0, 9.999, False),
        (120.0, 60.001, False),
        (None, 30.0, False),
        (120.0, None, False),
        (None, None, False),
    ],
)
def test_loc_valid_bounds_are_inclusive_and_null_is_invalid(
    tmp_path, instance, table_format, lng, lat, valid
) -> None:
    from lakehouse.core.settings import LakehouseSettings

    p = Pipeline(LakehouseSettings.for_home(tmp_path / "lh", table_format=table_format), instance)
    p.land([gps(lng=lng, lat=lat)])
    p.scan()
    assert p.sql("select loc_valid from iov.dwd_vehicle_gps") == [{"loc_valid": valid}]
    assert reference.loc_valid(gps(lng=lng, lat=lat)) is valid


def test_ods_rows_equal_dwd_plus_rejected_and_the_check_says_so(pipeline: Pipeline) -> None:
    pipeline.land([gps(), gps(None), gps(speed=-3.0), gps("VIN009", "garbage")])
    pipeline.scan()
    counts = pipeline.sql("""select (select count(*) from iov.ods_vehicle_gps_raw) as ods,
                                    (select count(*) from iov.dwd_vehicle_gps) as dwd,
                                    (select count(*) from iov.dwd_vehicle_gps_rejected) as rej""")[0]
    assert counts == {"ods": 4, "dwd": 1, "rej": 3}
    check = pipeline.instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [
            __import__("dagster").AssetCheckKey(
                __import__("dagster").AssetKey(["iov", "dwd_vehicle_gps"]), "rows_reconcile"
            )
        ]
    )
    assert list(check.values())[0].status.value == "SUCCEEDED"


@pytest.mark.parametrize("method", ["haversine", "planar"])
def test_ads_matches_the_reference_on_unordered_points(tmp_path, instance, table_format, method) -> None:
    from lakehouse.core.settings import LakehouseSettings

    rows = [
        # VIN001's points arrive out of order; the distance follows event_time, not file order
        gps("VIN001", "2025-09-16 00:20:00", 120.2, 30.0, 60.0),
        gps("VIN001", "2025-09-16 00:00:00", 120.0, 30.0, 40.0),
        gps("VIN001", "2025-09-16 00:10:00", 120.1, 30.1, 50.0),
        gps("VIN001", "2025-09-16 00:15:00", 0.0, 0.0, 99.0),  # invalid location: not counted at all
        gps("VIN002", "2025-09-16 00:00:00", 121.0, 31.0, 70.0),  # a single point: distance 0
        gps("VIN003", "2025-09-16 00:00:00", None, None, 10.0),  # no valid location: no row
        gps("VIN004", "2025-09-16 00:00:00", 121.0, 31.0, -5.0),  # rejected in DWD: no row
    ]
    settings = LakehouseSettings.for_home(tmp_path / "lh", table_format=table_format, distance_method=method)
    p = Pipeline(settings, instance)
    p.land(rows)
    p.scan()
    got = p.ads()
    want = reference.ads(rows, method)
    assert set(got) == {(vin, STAT_HOUR) for vin in want} == {("VIN001", STAT_HOUR), ("VIN002", STAT_HOUR)}
    for vin, (distance, speed) in want.items():
        assert got[(vin, STAT_HOUR)][0] == pytest.approx(distance, rel=1e-12)
        assert got[(vin, STAT_HOUR)][1] == pytest.approx(speed, rel=1e-12)
    assert got[("VIN002", STAT_HOUR)] == (0.0, 70.0)
    if method == "planar":  # two steps of sqrt(11.1^2 + 11.1^2) and 11.1 (+/- float noise)
        assert got[("VIN001", STAT_HOUR)][0] == pytest.approx(
            math.hypot(11.1, 11.1) + math.hypot(11.1, 11.1), rel=1e-9
        )


def test_ads_partition_columns_and_stat_hour_follow_the_landing_folder(pipeline: Pipeline) -> None:
    # report_time says the 16th; the partition is the upload hour, as in the seed's sample
    pipeline.land([gps("VIN001", "2025-09-16 19:30:00")], dt="2025-09-17", hh="05")
    pipeline.scan()
    assert pipeline.sql("select vin, stat_hour, dt, hh from iov.ads_vehicle_hourly_stat") == [
        {"vin": "VIN001", "stat_hour": "2025-09-17 05", "dt": "2025-09-17", "hh": "05"}
    ]


def test_rerun_gives_bit_identical_results_and_no_duplicates(pipeline: Pipeline) -> None:
    from lakehouse.models.parser import load_models
    from lakehouse.models.run import run_model

    rows = [
        gps(f"VIN{v:03d}", f"2025-09-16 00:{m:02d}:00", 120 + v / 100 + m / 1000, 30 + m / 1000, 40.0 + m)
        for v in range(20)
        for m in range(60)
    ]
    rows += [gps("VIN001", "2025-09-16 00:30:00", 120.5, 30.5, 10.0)]  # a tie on event_time
    pipeline.land(rows)
    pipeline.scan()
    before = pipeline.sql("select * from iov.ads_vehicle_hourly_stat order by vin")
    for model in load_models():
        if model.table.namespace == "iov":
            run_model(pipeline.lh, model, "2025-09-17-23")
    after = pipeline.sql("select * from iov.ads_vehicle_hourly_stat order by vin")
    assert after == before  # exact equality, floats included
    assert pipeline.sql("select count(*) as n from iov.dwd_vehicle_gps")[0]["n"] == len(rows)
