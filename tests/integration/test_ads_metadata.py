"""What an ADS materialization shows in the Dagster UI: rows, the model's partition metrics (header
`metrics:`, plotted per partition) and a preview of the first rows, from a reconcile run (the real
sensor and run, in process) and from a hand materialization, equal to what SQL over the table says."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from lakehouse.core.settings import LakehouseSettings
from lakehouse.models.parser import MODELS_ROOT
from lakehouse.models.spec import ModelError
from lakehouse_assets.definitions import build_definitions
from tests.helpers.game import GameLake, event, profile
from tests.helpers.pipeline import Pipeline, gps

ADS = dg.AssetKey(["iov", "ads_vehicle_hourly_stat"])


def materializations(instance: dg.DagsterInstance, key: dg.AssetKey) -> list[dg.AssetMaterialization]:
    """Every materialization of the asset, oldest first."""
    records = instance.fetch_materializations(key, limit=1000, ascending=True).records
    found = [r.asset_materialization for r in records]
    assert all(m is not None for m in found)
    return [m for m in found if m is not None]


def latest_by_partition(instance: dg.DagsterInstance, key: dg.AssetKey) -> dict[str, dict[str, Any]]:
    return {m.partition or "": dict(m.metadata) for m in materializations(instance, key)}


def preview_rows(value: Any) -> list[dict[str, Any]]:
    assert isinstance(value, dg.TableMetadataValue)
    return [dict(record.data) for record in value.records]


def drive(vin: str, hour: str, points: int, day: str = "2025-09-17", step: float = 0.01) -> list[dict]:
    """A vehicle moving east along a parallel, one report a minute."""
    return [gps(vin, f"{day} {hour}:{m:02d}:00", lng=120.0 + m * step, speed=40.0 + m) for m in range(points)]


def test_reconcile_materializations_carry_rows_metrics_and_a_preview(pipeline: Pipeline) -> None:
    # two hours in one scan (built together in memory), then a late file for one of them (streamed)
    pipeline.land([row for i in range(7) for row in drive(f"VIN{i:03d}", "23", 3 + i)])
    pipeline.land(drive("VIN100", "00", 4, day="2025-09-18"), dt="2025-09-18", hh="00")
    pipeline.scan()
    pipeline.land(
        drive("VIN200", "00", 6, day="2025-09-18", step=0.02), dt="2025-09-18", hh="00", name="late.parquet"
    )
    pipeline.scan()

    seen = latest_by_partition(pipeline.instance, ADS)
    assert sorted(seen) == ["2025-09-17-23", "2025-09-18-00"]
    for key, metadata in seen.items():
        day, hour = key[:10], key[11:]
        where = f"where dt = '{day}' and hh = '{hour}'"
        [want] = pipeline.sql(
            f"select count(*) as n, sum(total_distance) as km from iov.ads_vehicle_hourly_stat {where}"
        )
        assert metadata["dagster/row_count"].value == want["n"]
        fleet_km = metadata["fleet_km"]
        assert isinstance(fleet_km, dg.FloatMetadataValue)  # a number: the Plots tab charts it
        assert fleet_km.value == pytest.approx(want["km"], rel=1e-12) and want["km"] > 0
        # the preview: the first rows as written, real values (the owner's view), declared columns
        rows = pipeline.sql(
            f"select vin, stat_hour, total_distance, avg_speed from iov.ads_vehicle_hourly_stat {where}"
        )
        preview = preview_rows(metadata["preview"])
        assert len(preview) == min(5, want["n"])
        assert all(r in rows for r in preview)
        schema = metadata["preview"].schema
        assert [(c.name, c.type) for c in schema.columns] == [
            ("vin", "string"),
            ("stat_hour", "string"),
            ("total_distance", "double"),
            ("avg_speed", "double"),
        ]
        assert "metrics_error" not in metadata
    # 7 vehicles in the first hour: the preview stops at 5 rows; the late file's rebuild saw both
    assert seen["2025-09-17-23"]["dagster/row_count"].value == 7
    assert len(preview_rows(seen["2025-09-17-23"]["preview"])) == 5
    assert {r["vin"] for r in preview_rows(seen["2025-09-18-00"]["preview"])} == {"VIN100", "VIN200"}
    # every materialization of the hour carried them, the first and the rebuild
    hour = [m for m in materializations(pipeline.instance, ADS) if m.partition == "2025-09-18-00"]
    assert len(hour) == 2 and all("fleet_km" in m.metadata and "preview" in m.metadata for m in hour)


def test_a_dwd_materialization_has_no_preview_unless_its_header_asks(pipeline: Pipeline) -> None:
    pipeline.land(drive("VIN001", "23", 2))
    pipeline.scan()
    [dwd] = materializations(pipeline.instance, dg.AssetKey(["iov", "dwd_vehicle_gps"]))
    assert "preview" not in dwd.metadata and dwd.metadata["dagster/row_count"].value == 2


START = dt.date(2025, 9, 1)


def land_game_days(game: GameLake) -> None:
    game.land_profiles([profile(u) for u in range(1, 6)])
    for day in range(3):
        date = START + dt.timedelta(days=day)
        users = range(1, 6 - day)  # 5, 4, 3 users
        game.land_events(
            [event(u, f"{date} 10:00:00", "login", location="Zhejiang-Hangzhou") for u in users]
            + [event(u, f"{date} 11:00:00", "purchase", '{"amount": 2.5}') for u in users if u % 2]
            + [event(1, f"{date} 12:00:00", "login", location="Shanghai")],
            dt=str(date),
        )


def test_every_game_ads_table_reports_its_metrics(game: GameLake, instance: dg.DagsterInstance) -> None:
    land_game_days(game)
    game.catch_up()
    expected = {
        "ads_retention_daily": {
            "dau": "coalesce(sum(dau), 0)",
            "d1_retention_rate": "max(d1_retention_rate)",
        },
        "ads_purchase_trends_daily": {"gmv": "coalesce(sum(gmv), 0)", "orders": "coalesce(sum(orders), 0)"},
        "ads_region_distribution_daily": {"regions": "count(*)", "top_region_dau": "max(dau)"},
        "ads_device_preference_daily": {"device_types": "count(*)", "top_device_share": "max(share)"},
    }
    for table, metrics in expected.items():
        seen = latest_by_partition(instance, dg.AssetKey(["game_db", table]))
        for day in (str(START + dt.timedelta(days=d)) for d in range(3)):
            metadata = seen[day]
            select = ", ".join(f"{sql} as {name}" for name, sql in metrics.items())
            [want] = game.lh.sql(f"select {select} from game_db.{table} where dt = '{day}'").to_pylist()
            for name, value in want.items():
                got = metadata[name]
                assert isinstance(got, dg.IntMetadataValue | dg.FloatMetadataValue), (table, name)
                assert got.value == pytest.approx(float(value)), (table, day, name)
            rows = game.lh.sql(f"select * exclude (dt) from game_db.{table} where dt = '{day}'").to_pylist()
            preview = preview_rows(metadata["preview"])
            assert len(preview) == min(5, len(rows)) and all(r in rows for r in preview), (table, day)
    dau = latest_by_partition(instance, dg.AssetKey(["game_db", "ads_retention_daily"]))
    assert [dau[str(START + dt.timedelta(days=d))]["dau"].value for d in range(3)] == [5, 4, 3]


def test_a_hand_materialized_range_of_days_carries_each_days_metrics(
    game: GameLake, instance: dg.DagsterInstance
) -> None:
    land_game_days(game)
    game.catch_up()
    key = dg.AssetKey(["game_db", "ads_purchase_trends_daily"])
    days = [str(START + dt.timedelta(days=d)) for d in range(3)]
    job = build_definitions(game.settings).resolve_job_def("game_db_daily")
    outcome = job.execute_in_process(
        instance=instance,
        asset_selection=[key],
        tags={
            "dagster/asset_partition_range_start": days[0],
            "dagster/asset_partition_range_end": days[-1],
        },
    )
    assert outcome.success
    events = {e.partition: e.materialization.metadata for e in outcome.get_asset_materialization_events()}
    assert sorted(k for k in events if k) == days
    for day in days:
        [want] = game.lh.sql(
            f"select gmv, paying_users, orders, arppu from game_db.ads_purchase_trends_daily where dt = '{day}'"
        ).to_pylist()
        metadata = events[day]
        assert metadata["gmv"].value == pytest.approx(want["gmv"])
        assert metadata["paying_users"].value == want["paying_users"]
        assert metadata["dagster/row_count"].value == 1  # the day's own rows, not the range's sum
        assert preview_rows(metadata["preview"]) == [want]
        assert metadata["partitions"].value == 3  # and the range's summary


# --- header validation, and a metric that fails at run time ---------------------------------------

METRIC_MODEL = """\
/* ---
columns:
  vin:     string
  reports: bigint
metrics:
  {metrics}
--- */

select vin, count(*) as reports from dwd_vehicle_gps where dt = $dt and hh = $hh group by vin
"""


def tree_with(tmp_path: Path, metrics: str) -> tuple[Path, Path]:
    tree = tmp_path / "models"
    shutil.copytree(MODELS_ROOT, tree)
    path = tree / "iov" / "ads_vehicle_reports.sql"
    path.write_text(METRIC_MODEL.format(metrics=metrics))
    return tree, path


@pytest.mark.parametrize(
    ("metrics", "message"),
    [
        ('total: "sum(report)"', "reads 'report', not a column of the table"),
        ('total: "reports"', "must aggregate the partition's rows"),
        ('total: "sum(reports) from dwd_vehicle_gps --"', "cannot parse SQL"),
        ('total: "(select count(*) from dwd_vehicle_gps)"', "no subqueries, tables"),
        ('rows: "count(*)"', "metric name 'rows'"),
    ],
)
def test_a_bad_metric_stops_the_code_location_naming_the_file(
    tmp_path: Path, metrics: str, message: str
) -> None:
    tree, path = tree_with(tmp_path, metrics)
    with pytest.raises(ModelError, match=re.escape(str(path)) + ".*" + re.escape(message)):
        build_definitions(LakehouseSettings.for_home(tmp_path / "lh"), models_root=tree)


def test_a_metric_failing_at_run_time_leaves_the_build_standing(
    settings: LakehouseSettings, instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    tree, _ = tree_with(tmp_path, 'vehicles: "count(distinct vin)"\n  total: "sum(vin)"')  # sum of text
    pipeline = Pipeline(settings, instance, models_root=tree)
    pipeline.land(drive("VIN001", "23", 2))
    pipeline.scan()
    assert pipeline.sql("select vin, reports from iov.ads_vehicle_reports") == [
        {"vin": "VIN001", "reports": 2}
    ]
    [done] = materializations(instance, dg.AssetKey(["iov", "ads_vehicle_reports"]))
    assert "sum" in done.metadata["metrics_error"].value.lower() and "total" not in done.metadata
    assert done.metadata["dagster/row_count"].value == 1
