"""`make bench-discovery`: what the flat layout costs against the partitioned one, same files.

The game seed, DAYS days of events (one file a day) and the profiles, built from scratch and then
after one late file, in three layouts, each in a fresh lakehouse in this process (the reconcile
pass the daemon's run makes, without Dagster around it):

- partitioned: `game_db/ods_user_event/dt=DAY/hh=00/<file>` (the default task);
- flat, files that arrived over time: `user_event/<file>` of a named task with --table-prefix ods_,
  each file last written in its own hour (its arrival hour), the late file now;
- flat, copied in bulk: the same files all written in one hour, and the late file in that hour too
  (every file of the hour is read again).

Results: bench-results/discovery.json.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.run import ROOT

DAYS = int(os.environ.get("BENCH_DISCOVERY_DAYS", "14"))
EVENTS_PER_DAY = int(os.environ.get("BENCH_DISCOVERY_EVENTS", "20000"))
USERS = int(os.environ.get("BENCH_DISCOVERY_USERS", "2000"))
START = dt.date(2025, 9, 1)


def _reconcile(lh: Any) -> dict[str, Any]:
    from lakehouse.models.graph import ModelGraph
    from lakehouse.models.parser import load_models
    from lakehouse.models.reconcile import Reconciler

    models = load_models()
    graph = ModelGraph(models)
    declared = frozenset({m.table for m in models} | {d for m in models for d in m.deps})
    started = time.perf_counter()
    result = Reconciler(lh, graph, declared).reconcile("game_db")
    seconds = time.perf_counter() - started
    assert not result.failures, result.failures
    ods = [r for b in result.built for r in b.reports]
    return {
        "seconds": round(seconds, 3),
        "ods_partitions": len(ods),
        "ods_rows_read": sum(r.rows for r in ods),
        "model_partitions": sum(len(b.runs) for b in result.built),
    }


def scenario(root: Path, layout: str) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from lakehouse.core.settings import LakehouseSettings
    from lakehouse.demo.game import event_path, events, profile_path, profiles
    from lakehouse.facade import Lakehouse
    from lakehouse.storage.discovery import TaskRecord

    lh = Lakehouse(LakehouseSettings.for_home(root))
    flat_root = root / "openlake"
    now = time.time()

    def write(name: str, table: Any, day: dt.date, hour: int, kind: str, arrived: float) -> None:
        if layout == "partitioned":
            path = (profile_path if kind == "profile" else event_path)(day, hour, name)
            lh.landing.write_arrow(path, table)
            return
        target = flat_root / f"user_{kind}" / f"{name}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target)
        os.utime(target, (arrived, arrived))

    bulk = layout == "flat_bulk"
    write(
        "profiles",
        profiles(USERS, START, seed=1),
        START,
        0,
        "profile",
        now if bulk else now - 3600 * (DAYS + 2),
    )
    for day in range(DAYS):
        date = START + dt.timedelta(days=day)
        batch = events(dt.datetime.combine(date, dt.time(0)), EVENTS_PER_DAY, USERS, seed=day, hours=24)
        write(f"events_{day}", batch, date, 0, "event", now if bulk else now - 3600 * (DAYS + 1 - day))
    if layout != "partitioned":
        lh.catalog.add_task(TaskRecord("openlake", str(flat_root), "game_db", None, 300, "ods_"))
    first = _reconcile(lh)
    late = events(
        dt.datetime.combine(START, dt.time(0)), EVENTS_PER_DAY // 10, USERS, seed=77, hours=24, cohort=5
    )
    write("late", late, START, 1, "event", now)
    second = _reconcile(lh)
    ads = {
        t: lh.sql(f"select * from game_db.{t} order by all").to_pylist()
        for t in ("ads_retention_daily", "ads_purchase_trends_daily", "ads_device_preference_daily")
    }
    return {"first_load": first, "late_file": second, "ads": ads}


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="lakehouse-bench-discovery-"))
    results: dict[str, Any] = {}
    for layout in ("partitioned", "flat_over_time", "flat_bulk"):
        print(f"{layout}: {DAYS} days x {EVENTS_PER_DAY} events ...", flush=True)
        results[layout] = scenario(work / layout, layout)
    shutil.rmtree(work, ignore_errors=True)
    same = all(results[k]["ads"] == results["partitioned"]["ads"] for k in ("flat_over_time", "flat_bulk"))
    for r in results.values():
        del r["ads"]
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    record = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "days": DAYS,
        "events_per_day": EVENTS_PER_DAY,
        "users": USERS,
        "ads_equal": same,
        **results,
    }
    (out / "discovery.json").write_text(json.dumps(record, indent=2))
    base = results["partitioned"]["late_file"]["seconds"]
    print(
        "\n| layout | first load | late file | ODS rows read for the late file | ratio late file / partitioned |"
    )
    print("|---|---|---|---|---|")
    for layout, r in results.items():
        print(
            f"| {layout} | {r['first_load']['seconds']:.1f} s | {r['late_file']['seconds']:.1f} s | "
            f"{r['late_file']['ods_rows_read']:,} | {r['late_file']['seconds'] / base:.2f} |"
        )
    print(f"ADS tables equal in the three layouts: {same}")
    print(f"written to {out / 'discovery.json'}")


if __name__ == "__main__":
    main()
