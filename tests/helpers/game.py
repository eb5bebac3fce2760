"""The game pipeline as a user drives it in tests: land raw files in the seed's raw types, let the
lakehouse catch up like the daemon, read tables and compare them with the independent reference
(tests/helpers/game_reference.py, the seed recomputed in plain Python from the raw files)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from lakehouse.core.ids import TableId
from lakehouse.core.settings import LakehouseSettings
from lakehouse.demo.game import PROFILE_COLUMNS, _binary, events, profiles
from lakehouse.facade import Lakehouse
from lakehouse_assets.definitions import build_definitions
from sensors.run_once import CatchUpResult, catch_up
from tests.helpers import game_reference

EVENT_COLUMNS = ["user_id", "event_type", "timestamp", "event_details", "location"]


def event(
    user_id: int | None,
    ts: str | None,
    event_type: str = "login",
    details: str = "{}",
    location: str | None = None,
):
    return {
        "user_id": user_id,
        "event_type": event_type,
        "timestamp": ts,
        "event_details": details,
        "location": location,
    }


def profile(user_id: int, last_login: str | None = "2025-09-01", **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c: None for c in PROFILE_COLUMNS}
    row.update(
        user_id=user_id,
        gender="female",
        device_type="iOS",
        location="Zhejiang-Hangzhou",
        current_level="10",
        last_login_date=last_login,
    )
    row.update(values)
    return row


def raw_table(records: list[dict[str, Any]], columns: list[str]) -> pa.Table:
    schema = pa.schema([("user_id", pa.int64()), *[(c, pa.string()) for c in columns if c != "user_id"]])
    return _binary(pa.Table.from_pylist(records, schema=schema))


class GameLake:
    """Land game files like a producer, let the lakehouse catch up like the daemon, read tables."""

    def __init__(self, settings: LakehouseSettings, instance: dg.DagsterInstance) -> None:
        self.settings = settings
        self.instance = instance
        self.lh = Lakehouse(settings)
        self._defs: dg.Definitions | None = None

    def land_events(self, records: list[dict[str, Any]], dt: str, hh: str = "00", name: str = "e") -> str:
        path = f"game_db/ods_user_event/dt={dt}/hh={hh}/{name}.parquet"
        self.lh.landing.write_arrow(path, raw_table(records, EVENT_COLUMNS))
        return path

    def land_profiles(
        self, records: list[dict[str, Any]], dt: str = "2025-09-01", hh: str = "00", name: str = "p"
    ) -> str:
        path = f"game_db/ods_user_profile/dt={dt}/hh={hh}/{name}.parquet"
        self.lh.landing.write_arrow(path, raw_table(records, ["user_id", *PROFILE_COLUMNS]))
        return path

    def remove(self, path: str) -> None:
        Path(self.settings.landing_uri, path).unlink()

    def catch_up(self) -> CatchUpResult:
        if self._defs is None:
            self._defs = build_definitions(self.settings)
        result = catch_up(self._defs, self.instance, log_level="ERROR")
        assert result.failed == 0, f"{result.failed} run(s) failed"
        return result

    def table(self, name: str, where: str = "", order: str = "dt") -> list[dict[str, Any]]:
        query = (
            f"select * exclude (hh) from game_db.{name}"
            if "hh" in self.columns(name)
            else f"select * from game_db.{name}"
        )
        return self.lh.sql(f"{query} {where} order by {order}").to_pylist()

    def columns(self, name: str) -> list[str]:
        return self.lh.tables.schema(TableId("game_db", name)).names

    def pipeline_rows(self, name: str) -> list[dict[str, Any]]:
        """The rows of game_db.<name> as the pipeline stored them ([] before it exists)."""
        return pipeline_rows(self.lh, name)

    def assert_matches_full_recompute(self) -> None:
        """The invariant: dwd_user_details and every ADS table equal the independent reference over
        all raw files received so far."""
        wrong = differences(self.lh)
        assert not wrong, "game tables differ from the reference:\n" + "\n".join(wrong)


def pipeline_rows(lh: Lakehouse, name: str) -> list[dict[str, Any]]:
    ident = TableId("game_db", name)
    return lh.tables.read(ident).to_pylist() if lh.tables.exists(ident) else []


def reference(settings: LakehouseSettings) -> dict[str, list[dict[str, Any]]]:
    """The reference over the settings' landing folder, in its zone and daily partitions."""
    return game_reference.compute(
        settings.landing_uri, settings.timezone, first_day=settings.daily_start_date
    )


def differences(lh: Lakehouse, tables: tuple[str, ...] = game_reference.COMPARED_TABLES) -> list[str]:
    """For each table that differs from the reference: its name, row counts and first differing rows."""
    want = reference(lh.settings)
    found = (game_reference.difference(name, pipeline_rows(lh, name), want[name]) for name in tables)
    return [d for d in found if d is not None]


# --- arrivals: the late-data scenario (test_game_late_data.py, test_crash.py) --------------------

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
