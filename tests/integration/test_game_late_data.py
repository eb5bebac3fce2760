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
from dataclasses import dataclass

import dagster as dg
import pyarrow as pa

from lakehouse.demo.game import events, profiles
from tests.helpers.game import GameLake

START = dt.date(2025, 9, 1)
USERS = 150


@dataclass(frozen=True)
class Arrival:
    name: str
    path: str
    table: pa.Table


def arrivals() -> list[Arrival]:
    found = [
        Arrival(
            "profiles",
            f"game_db/ods_user_profile/dt={START}/hh=00/profiles.parquet",
            profiles(USERS, START, seed=3),
        )
    ]
    for day in range(4):
        date = START + dt.timedelta(days=day)
        for hour in (3, 15):
            begin = dt.datetime.combine(date, dt.time(hour))
            found.append(
                Arrival(
                    f"events {date} {hour:02d}",
                    f"game_db/ods_user_event/dt={date}/hh={hour:02d}/events.parquet",
                    events(
                        begin, 400, USERS, seed=day * 100 + hour, late_fraction=0.15, late_days=3, hours=12
                    ),
                )
            )
    update = profiles(USERS, START + dt.timedelta(days=20), seed=4).slice(0, 40)  # newer logins win
    found.append(
        Arrival(
            "profile update",
            f"game_db/ods_user_profile/dt={START + dt.timedelta(days=3)}/hh=09/update.parquet",
            update,
        )
    )
    return found


def replacement() -> Arrival:
    """The producer rewrites the 2025-09-02 03h file in place: other users, other days."""
    begin = dt.datetime.combine(START + dt.timedelta(days=1), dt.time(3))
    return Arrival(
        "events 2025-09-02 03 (replaced)",
        "game_db/ods_user_event/dt=2025-09-02/hh=03/events.parquet",
        events(begin, 250, USERS, seed=999, late_fraction=0.5, late_days=3, hours=12),
    )


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
