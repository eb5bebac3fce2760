"""The game-analytics pipeline (seed 004): every clarification of its semantics, by hand-made rows.

Each test lands raw files in the seed's raw types (user_id integer, the rest UTF-8 bytes), lets the
real sensors and automation run until they are done (`catch_up`), and checks the tables. The
late-data invariant, with arrivals in several orders, is in test_game_late_data.py.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from lakehouse.core.settings import LakehouseSettings
from tests.helpers.game import GameLake, event, profile

# --- dwd_user_details ------------------------------------------------------------------------


def test_user_details_decoded_cast_and_latest_login_wins(game: GameLake) -> None:
    game.land_profiles(
        [
            profile(1, "2025-08-01", location="Shanghai", current_level="5"),
            profile(1, "2025-09-03", location="Beijing", current_level=" 7 ", game_hours="12.5"),
            profile(1, None, location="Sichuan-Chengdu"),  # NULL dates sort last
            profile(2, None, device_type="PC", current_level="abc"),  # text that does not cast -> NULL
            profile(3, "2025-09-01", registration_date="2024-01-31", total_deaths="42"),
        ]
    )
    game.catch_up()
    details = {r["user_id"]: r for r in game.lh.sql("select * from game_db.dwd_user_details").to_pylist()}
    assert sorted(details) == [1, 2, 3]  # one row per user
    assert details[1]["location"] == "Beijing" and details[1]["current_level"] == 7
    assert details[1]["game_hours"] == 12.5 and str(details[1]["last_login_date"]) == "2025-09-03"
    assert details[2]["current_level"] is None and details[2]["device_type"] == "PC"
    assert str(details[3]["registration_date"]) == "2024-01-31" and details[3]["total_deaths"] == 42


# --- dwd_user_event --------------------------------------------------------------------------


def test_timestamps_in_three_formats_and_unparseable_rows_rejected_with_reason(
    game: GameLake,
) -> None:
    game.land_profiles([profile(1)])
    game.land_events(
        [
            event(1, "1756771200000", "LOGIN"),  # 13 digits: ms -> 2025-09-02 00:00:00 UTC
            event(1, "1756771201", "Battle"),  # 10 digits: s
            event(1, "  2025-09-02 10:11:12 ", "Purchase"),  # text with spaces
            event(1, "2025-09-02T10:11:12"),  # not one of the three formats
            event(1, "17567712000"),  # 11 digits
            event(1, "yesterday"),
            event(1, None),
        ],
        dt="2025-09-02",
    )
    game.catch_up()
    kept = game.lh.sql(
        "select event_ts, event_date, event_type from game_db.dwd_user_event order by event_ts"
    ).to_pylist()
    assert [(str(r["event_ts"]), str(r["event_date"]), r["event_type"]) for r in kept] == [
        ("2025-09-02 00:00:00", "2025-09-02", "login"),
        ("2025-09-02 00:00:01", "2025-09-02", "battle"),
        ("2025-09-02 10:11:12", "2025-09-02", "purchase"),
    ]
    rejected = game.lh.sql(
        "select raw_timestamp, reject_reason, _source_file from game_db.dwd_user_event_rejected order by 1"
    ).to_pylist()
    assert len(rejected) == 4
    reasons = {r["raw_timestamp"]: r["reject_reason"] for r in rejected}
    assert reasons[None] == "timestamp is missing"
    assert "13-digit epoch ms" in reasons["yesterday"] and "13-digit epoch ms" in reasons["17567712000"]
    assert all(r["_source_file"].endswith("hh=00/e.parquet") for r in rejected)


def test_epochs_become_local_time_in_the_configured_zone(
    tmp_path: Path, instance: dg.DagsterInstance, table_format: str
) -> None:
    settings = LakehouseSettings.for_home(
        tmp_path / "lakehouse", timezone="Asia/Shanghai", table_format=table_format
    )
    game = GameLake(settings, instance)
    game.land_profiles([profile(1)])
    # 2025-09-01 20:00:00 UTC is 2025-09-02 04:00:00 in Shanghai; text is already local time.
    game.land_events([event(1, "1756756800000"), event(2, "2025-09-01 20:00:00")], dt="2025-09-01", hh="20")
    game.catch_up()
    got = game.lh.sql(
        "select user_id, event_ts, event_date from game_db.dwd_user_event order by 1"
    ).to_pylist()
    assert [(r["user_id"], str(r["event_ts"]), str(r["event_date"])) for r in got] == [
        (1, "2025-09-02 04:00:00", "2025-09-02"),
        (2, "2025-09-01 20:00:00", "2025-09-01"),
    ]
    assert [r["dt"] for r in game.table("ads_retention_daily")] == ["2025-09-01", "2025-09-02"]


def test_location_amount_and_profile_columns(game: GameLake) -> None:
    game.land_profiles([profile(1, location="Beijing", gender="male", device_type="Android")])
    ts = "2025-09-02 08:00:00"
    game.land_events(
        [
            event(1, ts, "purchase", '{"amount": 12.5}', "Shanghai"),
            event(1, ts, "purchase", '{"amount": "7.25"}', ""),  # empty -> profile's
            event(1, ts, "purchase", '{"item": "sword"}', None),  # NULL -> profile's; no amount -> 0.0
            event(1, ts, "purchase", '{"amount": 3', "  "),  # malformed JSON -> 0.0; blanks are kept
            event(1, ts, "purchase", '{"amount": "lots"}'),  # not numeric -> 0.0
            event(9, ts, "login", "{}", "Beijing"),  # no profile: gender and device NULL
        ],
        dt="2025-09-02",
    )
    game.catch_up()
    got = game.lh.sql(
        "select user_id, location, amount, gender, device_type from game_db.dwd_user_event order by user_id, amount desc, location"
    ).to_pylist()
    assert [(r["location"], r["amount"]) for r in got if r["user_id"] == 1] == [
        ("Shanghai", 12.5),
        ("Beijing", 7.25),
        ("  ", 0.0),
        ("Beijing", 0.0),
        ("Beijing", 0.0),
    ]
    assert {(r["gender"], r["device_type"]) for r in got if r["user_id"] == 1} == {("male", "Android")}
    assert [(r["gender"], r["device_type"]) for r in got if r["user_id"] == 9] == [(None, None)]


# --- ADS ---------------------------------------------------------------------------------------


def test_purchase_trends(game: GameLake) -> None:
    game.land_profiles([profile(1), profile(2), profile(3)])
    game.land_events(
        [
            event(1, "2025-09-01 10:00:00", "PURCHASE", '{"amount": 10}'),
            event(1, "2025-09-01 11:00:00", "purchase", '{"amount": "5.5"}'),
            event(2, "2025-09-01 12:00:00", "purchase", '{"amount": 0}'),  # in gmv, not paying, not an order
            event(3, "2025-09-01 12:00:00", "login", '{"amount": 99}'),  # not a purchase
            event(3, "2025-09-02 12:00:00", "login"),  # a day with events but no purchase
        ],
        dt="2025-09-01",
    )
    game.catch_up()
    assert game.table("ads_purchase_trends_daily") == [
        {"gmv": 15.5, "paying_users": 1, "orders": 2, "arppu": 15.5, "dt": "2025-09-01"},
        {"gmv": 0.0, "paying_users": 0, "orders": 0, "arppu": None, "dt": "2025-09-02"},
    ]


def test_arppu_rounds_the_exact_quotient_half_away_from_zero(game: GameLake) -> None:
    """65.07 / 2 = 32.535 exactly: 32.54, as Spark's ROUND gives (rounding the double gave 32.53)."""
    game.land_profiles([profile(1), profile(2)])
    game.land_events(
        [
            event(1, "2025-09-01 10:00:00", "purchase", '{"amount": 32.53}'),
            event(2, "2025-09-01 11:00:00", "purchase", '{"amount": 32.54}'),
        ],
        dt="2025-09-01",
    )
    game.catch_up()
    [day] = game.table("ads_purchase_trends_daily")
    assert (day["gmv"], day["paying_users"], day["arppu"]) == (65.07, 2, 32.54)
    game.assert_matches_full_recompute()


def test_a_day_without_known_users_has_null_rates_not_nan(game: GameLake) -> None:
    """A day whose only events have no user_id has dau 0: its rates and shares are NULL (0/0 in
    Spark), not NaN, and its checks pass (NaN failed the range checks and the run)."""
    game.land_profiles([profile(1)])
    game.land_events([event(1, "2025-09-01 10:00:00")], dt="2025-09-01")
    game.land_events([event(None, "2025-09-02 10:00:00", "purchase", '{"amount": 5}')], dt="2025-09-02")
    result = game.catch_up()
    assert result.failed == 0
    retention = {r["dt"]: r for r in game.table("ads_retention_daily")}
    assert retention["2025-09-02"]["dau"] == 0
    assert retention["2025-09-02"]["d1_retention_rate"] is None
    assert retention["2025-09-02"]["d7_retention_rate"] is None
    assert all(
        r["share"] is None for r in game.table("ads_device_preference_daily", "where dt = '2025-09-02'")
    )
    game.assert_matches_full_recompute()


def test_device_preference_and_region_distribution(game: GameLake) -> None:
    game.land_profiles(
        [
            profile(1, device_type="iOS", location="Zhejiang-Hangzhou"),
            profile(2, device_type=None, location="Shanghai"),
            profile(3, device_type="iOS", location=""),
        ]
    )
    ts = "2025-09-01 10:00:00"
    game.land_events(
        [
            event(1, ts),
            event(1, ts, location=" Jiangsu-Nanjing "),
            event(2, ts),
            event(3, ts),
            event(4, ts, location="Guangdong-"),
        ],
        dt="2025-09-01",
    )
    game.catch_up()
    assert game.table("ads_device_preference_daily", order="device_type") == [
        {"device_type": "iOS", "users": 2, "share": 0.5, "dt": "2025-09-01"},
        {"device_type": "unknown", "users": 2, "share": 0.5, "dt": "2025-09-01"},
    ]
    assert game.table("ads_region_distribution_daily", order="province, city") == [
        {"province": "Guangdong", "city": "unknown", "dau": 1, "dt": "2025-09-01"},
        {"province": "Jiangsu", "city": "Nanjing", "dau": 1, "dt": "2025-09-01"},
        {"province": "Shanghai", "city": "unknown", "dau": 1, "dt": "2025-09-01"},
        {"province": "Zhejiang", "city": "Hangzhou", "dau": 1, "dt": "2025-09-01"},
        {"province": "unknown", "city": "unknown", "dau": 1, "dt": "2025-09-01"},
    ]


def test_retention_d1_d7_and_checks(game: GameLake) -> None:
    game.land_profiles([profile(u) for u in range(1, 5)])
    day1 = [event(u, "2025-09-01 09:00:00") for u in (1, 2, 3, 4)]
    day2 = [event(u, "2025-09-02 09:00:00") for u in (1, 2)] + [event(1, "2025-09-02 10:00:00")]
    day8 = [event(u, "2025-09-08 09:00:00") for u in (2, 3, 4)]
    game.land_events(day1, dt="2025-09-01")
    game.land_events(day2, dt="2025-09-02")
    game.land_events(day8, dt="2025-09-08")
    game.catch_up()
    got = {r["dt"]: r for r in game.table("ads_retention_daily")}
    assert got["2025-09-01"] == {
        "dau": 4,
        "d1_retained": 2,
        "d1_retention_rate": 0.5,
        "d7_retained": 3,
        "d7_retention_rate": 0.75,
        "dt": "2025-09-01",
    }
    assert got["2025-09-02"]["d1_retained"] == 0 and got["2025-09-02"]["d7_retained"] == 0
    assert sorted(got) == ["2025-09-01", "2025-09-02", "2025-09-08"]
    for check in ("range_d1_retention_rate", "range_d7_retention_rate", "retained_le_dau"):
        key = dg.AssetCheckKey(dg.AssetKey(["game_db", "ads_retention_daily"]), check)
        record = game.instance.event_log_storage.get_latest_asset_check_execution_by_key([key]).get(key)
        assert record is not None, f"ads_retention_daily.{check} never ran"
        evaluation = record.event.dagster_event.event_specific_data  # type: ignore[union-attr]
        assert evaluation.passed, f"ads_retention_daily.{check} failed: {evaluation.metadata}"
    game.assert_matches_full_recompute()


def test_asset_checks_report_violations(game: GameLake) -> None:
    """The checks can fail: a duplicated user in dwd_user_details fails `unique_user_id`."""
    from lakehouse.models.graph import ModelGraph
    from lakehouse.models.parser import load_models
    from lakehouse.models.run import run_model

    game.land_profiles([profile(1), profile(1, "2025-08-01"), profile(2)])
    game.land_events([event(1, "2025-09-01 09:00:00", "purchase", '{"amount": 2}')], dt="2025-09-01")
    game.catch_up()
    graph = ModelGraph(load_models())
    models = {t.name: m for t, m in graph.models.items() if t.namespace == "game_db"}
    details = models["dwd_user_details"]
    broken = type(details)(**{**details.__dict__, "sql": details.sql.replace("where rn = 1", "")})
    outcome = {c.check.name: c for c in run_model(game.lh, broken, None, graph).checks}
    assert not outcome["unique_user_id"].passed and outcome["unique_user_id"].failing_rows == 1
    purchases = models["ads_purchase_trends_daily"]
    doubled = type(purchases)(
        **{
            **purchases.__dict__,
            "sql": purchases.sql.replace("gmv,\n    paying", "gmv * 2 as gmv,\n    paying"),
        }
    )
    outcome = {c.check.name: c for c in run_model(game.lh, doubled, "2025-09-01", graph).checks}
    assert not outcome["gmv_reconciles_with_dwd"].passed
    retention = models["ads_retention_daily"]
    inflated = type(retention)(
        **{
            **retention.__dict__,
            "sql": retention.sql.replace(
                "coalesce(d1.d1_retained, 0) as d1_retained", "base.dau + 1 as d1_retained"
            ),
        }
    )
    outcome = {c.check.name: c for c in run_model(game.lh, inflated, "2025-09-01", graph).checks}
    assert not outcome["retained_le_dau"].passed


def test_checks_pass_and_show_in_dagster(game: GameLake) -> None:
    game.land_profiles([profile(1), profile(2)])
    game.land_events(
        [event(1, "2025-09-01 09:00:00", "purchase", '{"amount": 2}'), event(2, "2025-09-02 09:00:00")],
        dt="2025-09-01",
    )
    game.catch_up()
    for asset, check in [
        ("dwd_user_details", "unique_user_id"),
        ("ads_retention_daily", "range_d1_retention_rate"),
        ("ads_retention_daily", "retained_le_dau"),
        ("ads_purchase_trends_daily", "gmv_reconciles_with_dwd"),
    ]:
        key = dg.AssetCheckKey(dg.AssetKey(["game_db", asset]), check)
        record = game.instance.event_log_storage.get_latest_asset_check_execution_by_key([key]).get(key)
        assert record is not None, f"{asset}.{check} never ran"
        evaluation = record.event.dagster_event.event_specific_data  # type: ignore[union-attr]
        assert evaluation.passed, f"{asset}.{check} failed"


def test_shares_and_rates_round_exact_ties_half_away_from_zero(game: GameLake) -> None:
    """81 / 160 = 0.50625 exactly, but the double quotient is 0.506249999...: rounding it gave 0.5062.
    Spark's ROUND (HALF_UP on the decimal value) and the reference say 0.5063 (found by the
    freshness benchmark's reference check)."""
    game.land_profiles([profile(u, device_type="iOS" if u <= 81 else "PC") for u in range(1, 161)])
    day1 = [event(u, "2025-09-01 09:00:00") for u in range(1, 161)]
    day2 = [event(u, "2025-09-02 09:00:00") for u in range(1, 82)]
    game.land_events(day1, dt="2025-09-01")
    game.land_events(day2, dt="2025-09-02")
    game.catch_up()
    shares = {
        r["device_type"]: r["share"]
        for r in game.table("ads_device_preference_daily", "where dt = '2025-09-01'")
    }
    assert shares == {"iOS": 0.5063, "PC": 0.4938}
    [first] = game.table("ads_retention_daily", "where dt = '2025-09-01'")
    assert first["d1_retained"] == 81 and first["d1_retention_rate"] == 0.5063
    game.assert_matches_full_recompute()
