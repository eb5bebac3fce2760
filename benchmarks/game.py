"""`make bench` (game part): bringing the game ADS tables up to date after one new hour of events,
next to a full recompute of the same ADS tables by DuckDB straight from the raw files, measured in
the same run; then the same again after the history has doubled.

History: 50,000 users, about 500,000 events a day, landed as one file per day (hh=00), loaded through
the real pipeline (DataScan and its reconcile runs, in process). Each "new hour" is 1/24 of a
day's events at the next hour; 1% of its events are late (1..10 days old), as the generator makes
them. The update is the wall time of `catch_up`: the DataScan tick and every run it leads to, until
nothing is stale (ODS + DWD of the hour, the days it touched, the retention days that read them).
Each measurement runs in its own process, so its peak RSS is its own. Results: bench-results/game.json.

    python -m benchmarks.game [--days 30] [--users 50000] [--events-per-day 500000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START = dt.date(2025, 6, 1)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.game", *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _lakehouse(home: str):  # type: ignore[no-untyped-def]
    import warnings

    import dagster as dg

    from lakehouse.core.settings import LakehouseSettings
    from lakehouse_assets.definitions import build_definitions
    from sensors.run_once import dagster_instance

    warnings.filterwarnings("ignore")
    settings = LakehouseSettings.for_home(home)
    os.environ["DAGSTER_HOME"] = f"{home}/dagster_home"
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    (Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = dagster_instance(settings)
    assert isinstance(instance, dg.DagsterInstance)
    return settings, build_definitions(settings), instance


# --- steps, each in its own process -----------------------------------------------------------
def land_days(home: str, first: int, days: int, users: int, events_per_day: int) -> dict:
    """Generate and land days [first, first + days) as daily drops, plus profiles once."""
    from lakehouse.demo.game import event_path, events, profile_path, profiles
    from lakehouse.storage.object_store import LocalObjectStore

    landing = LocalObjectStore(f"{home}/landing")
    started = time.perf_counter()
    if first == 0:
        landing.write_arrow(profile_path(START, 0, "profiles"), profiles(users, START, seed=5))
    for d in range(first, first + days):
        day = START + dt.timedelta(days=d)
        table = events(dt.datetime.combine(day, dt.time(0)), events_per_day, users, seed=d, hours=24)
        landing.write_arrow(event_path(day, 0, f"events_{day:%Y%m%d}"), table)
    return {"seconds": time.perf_counter() - started}


def catch_up_now(home: str) -> dict:
    from sensors.run_once import catch_up

    _, defs, instance = _lakehouse(home)
    started = time.perf_counter()
    result = catch_up(defs, instance, log_level="ERROR", max_rounds=50)
    seconds = time.perf_counter() - started
    assert result.failed == 0, f"{result.failed} run(s) failed"
    return {"seconds": seconds, "runs": result.requested, "peak_rss_mb": _peak_rss_mb()}


def new_hour(home: str, day_index: int, hour: int, users: int, events_per_day: int) -> dict:
    """Land one hour of events, then time catch_up: the update a user waits for."""
    from lakehouse.demo.game import event_path, events
    from lakehouse.storage.object_store import LocalObjectStore
    from sensors.run_once import catch_up

    _, defs, instance = _lakehouse(home)
    day = START + dt.timedelta(days=day_index)
    table = events(dt.datetime.combine(day, dt.time(hour)), events_per_day // 24, users, seed=10_000 + hour)
    LocalObjectStore(f"{home}/landing").write_arrow(
        event_path(day, hour, f"events_{day:%Y%m%d}_{hour:02d}"), table
    )
    stamps = [t.decode().strip() for t in table["timestamp"].to_pylist() if t]
    event_days = {
        dt.datetime.fromtimestamp(int(t[:10]), dt.UTC).date()
        for t in stamps
        if t.isdigit() and len(t) in (10, 13)
    }
    started = time.perf_counter()
    result = catch_up(defs, instance, log_level="ERROR", max_rounds=50)
    seconds = time.perf_counter() - started
    assert result.failed == 0, f"{result.failed} run(s) failed"
    return {
        "seconds": seconds,
        "runs": result.requested,
        "events": table.num_rows,
        "event_days_in_hour": len(event_days),
        "peak_rss_mb": _peak_rss_mb(),
    }


def full_recompute(home: str) -> dict:
    from benchmarks.game_recompute import ADS_TABLES, recompute

    started = time.perf_counter()
    tables = recompute(f"{home}/landing", export=ADS_TABLES)  # the least work that gives the answer
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "ads_rows": {t: tables[t].num_rows for t in ADS_TABLES},
        "peak_rss_mb": _peak_rss_mb(),
    }


def verify(home: str) -> dict:
    """The incremental tables equal the full recompute (the bench measures a correct pipeline)."""
    from benchmarks.game_recompute import ADS_TABLES, recompute, rows
    from lakehouse.core.ids import TableId
    from lakehouse.core.settings import LakehouseSettings
    from lakehouse.facade import Lakehouse

    settings = LakehouseSettings.for_home(home)
    lh = Lakehouse(settings)
    reference = recompute(settings.landing_uri, export=ADS_TABLES)
    equal = {t: rows(lh.tables.read(TableId("game_db", t))) == rows(reference[t]) for t in ADS_TABLES}
    return {"equal": equal}


# --- the run --------------------------------------------------------------------------------------
def measure(home: str, history_days: int, rounds: int, users: int, events_per_day: int, hour0: int) -> dict:
    updates, fulls = [], []
    for r in range(rounds):  # alternate, so both share the machine's noise
        updates.append(
            _child("new-hour", home, str(history_days), str(hour0 + r), str(users), str(events_per_day))
        )
        fulls.append(_child("full", home))
        print(
            f"  history {history_days} d, round {r + 1}: update {updates[-1]['seconds']:.2f}s "
            f"({updates[-1]['runs']} runs, {updates[-1]['event_days_in_hour']} event days in the hour), "
            f"full recompute {fulls[-1]['seconds']:.2f}s",
            flush=True,
        )
    u = statistics.median(x["seconds"] for x in updates)
    f = statistics.median(x["seconds"] for x in fulls)
    return {
        "history_days": history_days,
        "update": {
            "median_seconds": u,
            "runs": updates,
            "max_peak_rss_mb": max(x["peak_rss_mb"] for x in updates),
        },
        "full_recompute": {
            "median_seconds": f,
            "runs": fulls,
            "max_peak_rss_mb": max(x["peak_rss_mb"] for x in fulls),
        },
        "ratio_update_to_full": u / f,
    }


def main(days: int, users: int, events_per_day: int, rounds: int, home: str | None) -> None:
    work = Path(home or tempfile.mkdtemp(prefix="lakehouse-game-bench-"))
    lake = str(work / "lakehouse")
    print(
        f"game bench under {lake}: {days} + {days} days, {users:,} users, {events_per_day:,} events/day",
        flush=True,
    )
    results: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "users": users}
    results["events_per_day"] = events_per_day
    phases = []
    for phase, first in enumerate((0, days)):
        landed = _child("land", lake, str(first), str(days), str(users), str(events_per_day))
        loaded = _child("catch-up", lake)
        print(
            f"history to {first + days} days: landed in {landed['seconds']:.0f}s, "
            f"loaded through the pipeline in {loaded['seconds']:.0f}s ({loaded['runs']} runs)",
            flush=True,
        )
        m = measure(lake, first + days, rounds, users, events_per_day, hour0=1 + phase * rounds)
        m["history_load_seconds"] = loaded["seconds"]
        phases.append(m)
    results["phases"] = phases
    results["verify"] = _child("verify", lake)
    results["growth_update_when_history_doubles"] = (
        phases[1]["update"]["median_seconds"] / phases[0]["update"]["median_seconds"]
    )
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "game.json").write_text(json.dumps(results, indent=2))
    print("\n| measurement | value |\n|---|---|")
    for p in phases:
        d = p["history_days"]
        print(
            f"| update after one new hour, {d} days of history (median of {rounds}) | {p['update']['median_seconds']:.2f} s |"
        )
        print(
            f"| full recompute of the ADS by DuckDB from the raw files, {d} days | {p['full_recompute']['median_seconds']:.2f} s |"
        )
        print(f"| ratio update / full, {d} days | {p['ratio_update_to_full']:.2f} (target < 0.5) |")
        print(
            f"| peak RSS update / full, {d} days | {p['update']['max_peak_rss_mb']:.0f} MB / {p['full_recompute']['max_peak_rss_mb']:.0f} MB |"
        )
    print(
        f"| update time growth when the history doubles | {results['growth_update_when_history_doubles']:.2f}x |"
    )
    print(f"| incremental ADS == full recompute | {results['verify']['equal']} |")
    print(f"written to {out / 'game.json'}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "land":
        print(json.dumps(land_days(args[1], int(args[2]), int(args[3]), int(args[4]), int(args[5]))))
    elif args and args[0] == "catch-up":
        print(json.dumps(catch_up_now(args[1])))
    elif args and args[0] == "new-hour":
        print(json.dumps(new_hour(args[1], int(args[2]), int(args[3]), int(args[4]), int(args[5]))))
    elif args and args[0] == "full":
        print(json.dumps(full_recompute(args[1])))
    elif args and args[0] == "verify":
        print(json.dumps(verify(args[1])))
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--users", type=int, default=50_000)
        parser.add_argument("--events-per-day", type=int, default=500_000)
        parser.add_argument("--rounds", type=int, default=3)
        parser.add_argument("--home", help="work folder (default: a new temporary one)")
        a = parser.parse_args(args)
        main(a.days, a.users, a.events_per_day, a.rounds, a.home)
