"""`make bench-spark`: the same models on DuckDB and on Spark (2 workers), in one run.

A local cluster (standalone master, 2 workers of 1 core, Spark Connect) is started by
`lakehouse spark start --workers 2` and stopped at the end. Two workloads, each landed once and
loaded to ODS once (DuckDB builds the first version of every table), then rebuilt model by model,
partition by partition, on each engine in turn (rounds alternate the engines to share the noise):

1. one hour of GPS data, 10,000 vehicles x one report every 10 s = 3.6M rows: dwd_vehicle_gps and
   ads_vehicle_hourly_stat of the hour;
2. 30 days of game history (default 5,000 users, 50,000 events a day): every game model over
   every partition, as a backfill builds them (DuckDB computes a range of days and commits it once;
   Spark computes and commits 8 partitions at a time).

Where Spark's time goes: session start (a new Spark Connect session, once per process), planning
(translation, binding the planned files, analysis), execute (Spark jobs; of it, shuffle: stage
shuffle-write time plus fetch wait, from the driver's REST API), commit (the table store adding
the written files). Results go to bench-results/spark.json and are printed as a table.

    python -m benchmarks.spark [--days 30] [--users 5000] [--events-per-day 50000] [--rounds 1]
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
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LAKEHOUSE = Path(sys.executable).parent / "lakehouse"
HOUR = dt.datetime(2025, 9, 17, 23)
GAME_START = dt.date(2025, 9, 1)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _child(*args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.spark", *args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def _settings(home: str, engine: str = "duckdb", remote: str | None = None) -> Any:
    from lakehouse.core.settings import LakehouseSettings

    extra = {"engine": engine, "spark_remote": remote} if engine == "spark" else {}
    return LakehouseSettings.for_home(home, **extra)


# --- steps, each in its own process --------------------------------------------------------------
def prepare(home: str, workload: str, days: int, users: int, events_per_day: int) -> dict[str, Any]:
    """Land the workload and build every table once on DuckDB (the ODS both engines read)."""
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore")
    from lakehouse.facade import Lakehouse
    from lakehouse_assets.definitions import build_definitions
    from sensors.run_once import catch_up

    settings = _settings(home)
    lh = Lakehouse(settings)
    started = time.perf_counter()
    if workload == "iov":
        from lakehouse.demo.iov import generate_iov

        generate_iov(
            lh.landing,
            hours=1,
            vehicles=10_000,
            start=HOUR,
            interval_seconds=10,
            junk=False,
            file_format="parquet",
        )
    else:
        from lakehouse.demo.game import event_path, events, profile_path, profiles

        lh.landing.write_arrow(profile_path(GAME_START, 0, "profiles"), profiles(users, GAME_START, seed=5))
        for d in range(days):
            day = GAME_START + dt.timedelta(days=d)
            table = events(dt.datetime.combine(day, dt.time(0)), events_per_day, users, seed=d, hours=24)
            lh.landing.write_arrow(event_path(day, 0, f"events_{day:%Y%m%d}"), table)
    landed = time.perf_counter() - started
    with dg.instance_for_test() as instance:
        result = catch_up(build_definitions(settings), instance, log_level="ERROR", max_rounds=50)
    assert result.failed == 0, f"{result.failed} run(s) failed"
    return {"landed_seconds": landed, "built_seconds": time.perf_counter() - started - landed}


def _stage_totals(driver_ui: str) -> dict[str, float]:
    """Sums over the driver's completed stages: executor run time, shuffle time, shuffle bytes."""
    if not driver_ui:
        return {}
    with urllib.request.urlopen(f"{driver_ui}/api/v1/applications", timeout=5) as r:  # noqa: S310
        app = json.load(r)[0]["id"]
    with urllib.request.urlopen(
        f"{driver_ui}/api/v1/applications/{app}/stages?status=complete", timeout=30
    ) as r:  # noqa: S310
        stages = json.load(r)
    return {
        "executor_run_seconds": sum(s.get("executorRunTime", 0) for s in stages) / 1000,
        "shuffle_seconds": sum(
            s.get("shuffleWriteTime", 0) / 1e9 + s.get("shuffleFetchWaitTime", 0) / 1000 for s in stages
        ),
        "shuffle_mb": sum(s.get("shuffleWriteBytes", 0) for s in stages) / 2**20,
        "stages": float(len(stages)),
    }


def rebuild(home: str, workload: str, engine: str, remote: str, driver_ui: str) -> dict[str, Any]:
    """Rebuild the workload's model partitions on one engine, in dependency order."""
    import warnings

    warnings.filterwarnings("ignore")
    from lakehouse.facade import Lakehouse
    from lakehouse.models.graph import ModelGraph
    from lakehouse.models.parser import load_models
    from lakehouse.models.run import run_models

    lh = Lakehouse(_settings(home, engine, remote))
    models = load_models()
    graph = ModelGraph(models)
    namespace = "iov" if workload == "iov" else "game_db"
    ordered = [m for m in models if m.table.namespace == namespace]  # in dependency order
    session = 0.0
    if engine == "spark":
        started = time.perf_counter()
        lh.engine.spark  # type: ignore[attr-defined]  # noqa: B018 - session start, timed on its own
        session = time.perf_counter() - started
    before = _stage_totals(driver_ui) if engine == "spark" else {}
    started = time.perf_counter()
    partitions = rows = 0
    for model in ordered:
        built = lh.catalog.builds(model.table.namespace, model.table.name)
        keys = sorted({key for (_, key) in built})
        if not keys:
            continue
        runs = run_models(lh, model, keys, graph)
        partitions += len(runs)
        rows += sum(r.rows for r in runs)
    seconds = time.perf_counter() - started
    out: dict[str, Any] = {
        "seconds": seconds,
        "partitions": partitions,
        "rows": rows,
        "peak_rss_mb": _peak_rss_mb(),
    }
    if engine == "spark":
        timings = dict(lh.engine.timings)  # type: ignore[attr-defined]
        after = _stage_totals(driver_ui)
        out["phases"] = {
            "session_start": session,
            "planning": timings.get("planning", 0.0),
            "execute": timings.get("execute", 0.0),
            "commit": timings.get("commit", 0.0),
            "checks_and_bookkeeping": seconds
            - timings.get("planning", 0.0)
            - timings.get("execute", 0.0)
            - timings.get("commit", 0.0),
            **{k: after[k] - before.get(k, 0.0) for k in after},
        }
    return out


def verify(duck_home: str, spark_home: str) -> dict[str, Any]:
    """The two rebuilt homes hold the same model tables (doubles within 1e-9 relative)."""
    from lakehouse.facade import Lakehouse
    from tests.e2e.test_spark import differences

    wrong = differences(Lakehouse(_settings(duck_home)), Lakehouse(_settings(spark_home)))
    return {"differences": len(wrong), "first": wrong[:5]}


def cluster_peak_mb(pids: list[int]) -> float:
    """Sum of the peak resident memory (VmHWM) of the cluster's processes and their children (the
    executors the workers run)."""
    family = set(pids)
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                parent = int((proc / "stat").read_text().rsplit(") ", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent in pids:
                family.add(int(proc.name))
    total = 0.0
    for pid in family:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            continue
    return total


# --- orchestration ----------------------------------------------------------------------------
def _copy(src: str, dst: str) -> None:
    subprocess.run(["cp", "-a", src, dst], check=True)  # noqa: S607


def main(days: int, users: int, events_per_day: int, rounds: int, home: str | None) -> None:
    work = Path(home or tempfile.mkdtemp(prefix="lakehouse-bench-spark-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "LAKEHOUSE_HOME": str(work / "cluster")}
    print(f"spark bench under {work}", flush=True)
    started = time.perf_counter()
    up = subprocess.run(
        [str(LAKEHOUSE), "spark", "start", "--workers", "2"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    cluster_seconds = time.perf_counter() - started
    remote = up.stdout.strip().splitlines()[-1]
    state = json.loads((work / "cluster" / "spark" / "cluster.json").read_text())
    print(f"cluster up in {cluster_seconds:.0f}s at {remote}", flush=True)
    results: dict[str, Any] = {"cluster_start_seconds": cluster_seconds, "workers": 2, "workloads": {}}
    try:
        for workload in ("iov", "game"):
            # The lakehouse records absolute paths: each engine gets its own copy of the prepared home,
            # prepared once per engine from the same generator seeds.
            homes = {engine: str(work / f"{workload}-{engine}") for engine in ("duckdb", "spark")}
            prepared = {
                e: _child("prepare", h, workload, str(days), str(users), str(events_per_day))
                for e, h in homes.items()
            }
            print(f"{workload}: prepared ({prepared['duckdb']})", flush=True)
            runs: dict[str, list[dict[str, Any]]] = {"duckdb": [], "spark": []}
            for r in range(rounds):
                for engine in ("duckdb", "spark") if r % 2 == 0 else ("spark", "duckdb"):
                    m = _child("rebuild", homes[engine], workload, engine, remote, state.get("driver_ui", ""))
                    runs[engine].append(m)
                    print(
                        f"  {workload} round {r + 1} {engine}: {m['seconds']:.1f}s, {m['partitions']} partitions",
                        flush=True,
                    )
            check = _child("verify", homes["duckdb"], homes["spark"])
            cluster_mb = cluster_peak_mb(list(state["pids"].values()))
            duck = statistics.median(m["seconds"] for m in runs["duckdb"])
            spark = statistics.median(m["seconds"] for m in runs["spark"])
            last = runs["spark"][-1]["phases"]
            results["workloads"][workload] = {
                "duckdb_seconds": duck,
                "spark_seconds": spark,
                "ratio_spark_to_duckdb": spark / duck,
                "partitions": runs["spark"][-1]["partitions"],
                "rows": runs["spark"][-1]["rows"],
                "spark_phases_last_round": last,
                "peak_rss_mb": {e: max(m["peak_rss_mb"] for m in runs[e]) for e in runs},
                "spark_cluster_peak_mb": cluster_mb,
                "equal": check["differences"] == 0,
                "differences": check,
                "rounds": runs,
            }
    finally:
        subprocess.run([str(LAKEHOUSE), "spark", "stop"], env=env, check=False, capture_output=True)
    out = ROOT / "bench-results" / "spark.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\n| measure | iov hour (3.6M rows) | game, {days} days |\n|---|---|---|")
    w = results["workloads"]
    print(
        f"| DuckDB (median of {rounds}) | {w['iov']['duckdb_seconds']:.1f} s | {w['game']['duckdb_seconds']:.1f} s |"
    )
    print(
        f"| Spark, 2 workers (median of {rounds}) | {w['iov']['spark_seconds']:.1f} s | {w['game']['spark_seconds']:.1f} s |"
    )
    print(
        f"| ratio Spark / DuckDB | {w['iov']['ratio_spark_to_duckdb']:.2f} | {w['game']['ratio_spark_to_duckdb']:.2f} |"
    )
    print(f"| partitions built | {w['iov']['partitions']} | {w['game']['partitions']} |")
    for phase in (
        "session_start",
        "planning",
        "execute",
        "shuffle_seconds",
        "commit",
        "checks_and_bookkeeping",
    ):
        a, b = w["iov"]["spark_phases_last_round"].get(phase), w["game"]["spark_phases_last_round"].get(phase)
        if a is not None and b is not None:
            print(f"| Spark {phase.replace('_seconds', '')} | {a:.2f} s | {b:.2f} s |")
    for workload in ("iov", "game"):
        rss = w[workload]["peak_rss_mb"]
        print(
            f"| peak RSS, {workload}: DuckDB process / Spark client / Spark JVMs (sum of peaks) | "
            f"{rss['duckdb']:.0f} / {rss['spark']:.0f} / {w[workload]['spark_cluster_peak_mb']:.0f} MB | |"
        )
    print(f"| results equal | {w['iov']['equal']} | {w['game']['equal']} |")
    print(f"| cluster start (master + 2 workers + Connect) | {cluster_seconds:.0f} s | |")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "prepare":
        print(json.dumps(prepare(args[1], args[2], int(args[3]), int(args[4]), int(args[5]))))
    elif args and args[0] == "rebuild":
        print(json.dumps(rebuild(args[1], args[2], args[3], args[4], args[5])))
    elif args and args[0] == "verify":
        print(json.dumps(verify(args[1], args[2])))
    else:
        parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument("--users", type=int, default=5_000)
        parser.add_argument("--events-per-day", type=int, default=50_000)
        parser.add_argument("--rounds", type=int, default=1)
        parser.add_argument("--home", help="work folder (default: a new temporary one)")
        a = parser.parse_args(args)
        main(a.days, a.users, a.events_per_day, a.rounds, a.home)
