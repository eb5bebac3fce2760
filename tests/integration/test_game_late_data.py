"""The late-data invariant: after any sequence of arrivals, once the lakehouse has caught up, every
game ADS table (and dwd_user_details) equals the seed's SQL computed over all data received so far
(tests/helpers/game_reference.py, the seed recomputed in plain Python from the raw files).

Arrivals: profiles, event files whose events reach 1..10 days back, a later profile update that moves
users to other cities and devices, and an event file replaced in place by its producer. They arrive
in several orders; nothing is ever recomputed by hand.
"""

from __future__ import annotations

import datetime as dt
import random

import dagster as dg

from tests.helpers.game import START, Arrival, GameLake, arrivals, replacement


def land(game: GameLake, arrival: Arrival) -> None:
    game.lh.landing.write_arrow(arrival.path, arrival.table)


def run_order(game: GameLake, order: list[Arrival], batch: int) -> None:
    for i in range(0, len(order), batch):
        for arrival in order[i : i + batch]:
            land(game, arrival)
        game.catch_up()
        game.assert_matches_full_recompute()


def test_arrivals_in_time_order(game: GameLake, instance: dg.DagsterInstance) -> None:
    run_order(game, arrivals(), batch=3)


def test_arrivals_newest_first_profiles_last(game: GameLake, instance: dg.DagsterInstance) -> None:
    """Events before any profile: dwd_user_event has no profile columns until the profiles land,
    then exactly the hours of the changed users are rebuilt."""
    order = arrivals()
    run_order(game, [*reversed(order[1:-1]), order[0], order[-1]], batch=4)


def test_arrivals_shuffled_with_a_replaced_file(game: GameLake) -> None:
    order = arrivals()
    random.Random(7).shuffle(order)
    run_order(game, [*order, replacement()], batch=4)


def test_a_new_hour_rebuilds_only_the_days_it_touched(game: GameLake, instance: dg.DagsterInstance) -> None:
    """The cost of an hour does not grow with history: only its event days (and the retention days
    that read them) are rebuilt, never the other days."""
    for arrival in arrivals()[:-1]:
        land(game, arrival)
    game.catch_up()
    before = instance.get_event_records(
        dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION), limit=1, ascending=False
    )[0].storage_id
    late_day = START + dt.timedelta(days=2)
    new = [
        {
            "user_id": 1,
            "event_type": "purchase",
            "timestamp": f"{late_day} 10:00:00",
            "event_details": '{"amount": 5}',
            "location": None,
        },
        {
            "user_id": 2,
            "event_type": "login",
            "timestamp": f"{START + dt.timedelta(days=5)} 01:00:00",
            "event_details": "{}",
            "location": "Beijing",
        },
    ]
    game.land_events(new, dt=str(START + dt.timedelta(days=5)), hh="01", name="late")
    game.catch_up()
    rebuilt: dict[str, set[str]] = {}
    for record in instance.get_event_records(
        dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION, after_cursor=before)
    ):
        materialization = record.asset_materialization
        assert materialization is not None
        rebuilt.setdefault(materialization.asset_key.path[-1], set()).add(materialization.partition or "")
    days = {str(late_day), str(START + dt.timedelta(days=5))}
    hour = {f"{START + dt.timedelta(days=5)}-01"}
    assert rebuilt["ods_user_event"] == rebuilt["dwd_user_event"] == rebuilt["dws_user_event_hourly"] == hour
    for name in ("dws_user_activity_daily", "ads_purchase_trends_daily", "ads_region_distribution_daily"):
        assert rebuilt[name] == days, name
    # the automation (retention reads d, d+1, d+7; devices read d) runs the span of the days it was
    # asked for: at most the 8 days up to each touched day, never older history
    window = {
        str(d - dt.timedelta(days=k)) for d in (late_day, START + dt.timedelta(days=5)) for k in range(8)
    }
    assert days <= rebuilt["ads_retention_daily"] <= window
    assert days <= rebuilt["ads_device_preference_daily"] <= window
    assert "dwd_user_details" not in rebuilt
    game.assert_matches_full_recompute()
