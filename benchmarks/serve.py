"""`make bench` (serving part): dashboard-style queries through the SQL endpoint as the masked third
party, 8 concurrent MySQL clients, beside the same queries run directly in DuckDB on the same Arrow
data, in the same run.

Data, through the real pipeline (`lakehouse generate` + `lakehouse scan`): 24 hours x 10,000 vehicles
of GPS (one report per vehicle every 10 minutes), so 240,000 rows of iov.ads_vehicle_hourly_stat;
30 days of game events (20,000 users), so 30 days of every game ADS table. The third party
(RAM$alice, role thirdparty) has the seed's grants and vin mask plus SELECT on the game ADS tables.

Endpoint: `lakehouse serve` in its own process; 8 threads, each with its own PyMySQL connection, run
the query mix round-robin for --seconds; once as served (results remembered per snapshot and
principal), once with `--no-result-cache` (every query runs in DuckDB on the masked tables). Baseline: 8 threads, each with its own DuckDB cursor on one
connection holding the same tables as Arrow (read once, unmasked), run the same mix. Reported per
side: p50 / p95 / max latency and QPS; plus the server's peak RSS. Results: bench-results/serve.json.

    python -m benchmarks.serve [--seconds 20] [--clients 8] [--home DIR (kept, reused)]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.memory import MemorySampler

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password"
USER = "RAM$alice"

GRANTS = """
GRANT CreateInstance, List ON PROJECT game_db TO ROLE thirdparty;
GRANT SELECT ON TABLE ads_retention_daily TO ROLE thirdparty;
GRANT SELECT ON TABLE ads_purchase_trends_daily TO ROLE thirdparty;
GRANT SELECT ON TABLE ads_device_preference_daily TO ROLE thirdparty;
GRANT SELECT ON TABLE ads_region_distribution_daily TO ROLE thirdparty;
"""

# (name, query in MySQL / StarRocks SQL as a BI tool sends it)
QUERIES: list[tuple[str, str]] = [
    (
        "fleet km per hour",
        "SELECT stat_hour, SUM(total_distance) AS km, COUNT(*) AS vehicles "
        "FROM iov.ads_vehicle_hourly_stat GROUP BY stat_hour ORDER BY stat_hour",
    ),
    (
        "top 10 vehicles by km",
        "SELECT vin, SUM(total_distance) AS km, AVG(avg_speed) AS speed "
        "FROM iov.ads_vehicle_hourly_stat GROUP BY vin ORDER BY km DESC LIMIT 10",
    ),
    (
        "top 10 speeds in an hour",
        "SELECT vin, avg_speed FROM iov.ads_vehicle_hourly_stat "
        "WHERE stat_hour = '2025-09-17 12' ORDER BY avg_speed DESC LIMIT 10",
    ),
    (
        "retention",
        "SELECT dt, dau, d1_retention_rate, d7_retention_rate FROM game_db.ads_retention_daily "
        "WHERE dt BETWEEN '2025-06-01' AND '2025-06-30' ORDER BY dt",
    ),
    (
        "gmv and payers",
        "SELECT dt, gmv, paying_users FROM game_db.ads_purchase_trends_daily ORDER BY dt DESC LIMIT 30",
    ),
    (
        "device share",
        "SELECT device_type, AVG(share) AS share, SUM(users) AS users "
        "FROM game_db.ads_device_preference_daily GROUP BY device_type ORDER BY share DESC",
    ),
    (
        "top regions",
        "SELECT province, city, SUM(dau) AS dau FROM game_db.ads_region_distribution_daily "
        "GROUP BY province, city ORDER BY dau DESC LIMIT 10",
    ),
]


def _env(home: Path, checkout: Path = ROOT) -> dict[str, str]:
    """The environment of the lakehouse commands; `checkout` is the source tree they import (another
    checkout of the project: the endpoint as it was, measured in the same run)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKEHOUSE_", "AWS_"))}
    bin_dir = str(Path(sys.executable).parent)
    return {
        **env,
        "LAKEHOUSE_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster_home"),
        "PATH": f"{bin_dir}:{env.get('PATH', '')}",
        "PYTHONPATH": str(checkout),
    }


def _lakehouse(env: dict[str, str], *args: str, stdin: str | None = None) -> None:
    subprocess.run(["lakehouse", *args], env=env, input=stdin, text=True, check=True, capture_output=True)


def build(home: Path) -> float:
    """The benchmark's lakehouse (seconds it took); reused when `home` already holds it."""
    if (home / ".serve-bench-ready").exists():
        return 0.0
    shutil.rmtree(home, ignore_errors=True)
    (home / "dagster_home").mkdir(parents=True)
    (home / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = _env(home)
    started = time.perf_counter()
    _lakehouse(env, "generate", "iov", "--hours", "24", "--vehicles", "10000", "--interval-seconds", "600",
               "--start", "2025-09-17T00", "--no-junk")  # fmt: skip
    _lakehouse(env, "generate", "game", "--days", "30", "--users", "20000", "--events-per-day", "40000",
               "--start", "2025-06-01")  # fmt: skip
    _lakehouse(env, "scan")
    _lakehouse(env, "policy", "apply", str(ROOT / "policies" / "iov_thirdparty.sql"), "--project", "iov")
    grants = home / "bench_grants.sql"
    grants.write_text(GRANTS)
    _lakehouse(env, "policy", "apply", str(grants), "--project", "game_db")
    _lakehouse(env, "user", "password", USER, "--password-stdin", stdin=PASSWORD + "\n")
    (home / ".serve-bench-ready").write_text("")
    return time.perf_counter() - started


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[Any], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"lakehouse serve exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"lakehouse serve did not listen on {port}")


def _drive(clients: int, seconds: float, run_query: Any, open_client: Any) -> dict[str, Any]:
    """`clients` threads run the query mix round-robin for `seconds`; latencies per query."""
    latencies: list[float] = []
    by_query: dict[str, list[float]] = {name: [] for name, _ in QUERIES}
    errors: list[str] = []
    lock = threading.Lock()
    start_line = threading.Barrier(clients + 1)
    go = threading.Event()
    stop_at = [0.0]

    def worker(index: int) -> None:
        try:
            client = open_client()
            # warm: each query once (connection set-up, first scan), not measured
            for _, q in QUERIES:
                run_query(client, q)
        except Exception as exc:
            with lock:
                errors.append(f"warm-up: {exc}")
            start_line.abort()
            return
        start_line.wait()
        go.wait()
        i = index
        while time.perf_counter() < stop_at[0]:
            name, q = QUERIES[i % len(QUERIES)]
            i += 1
            t0 = time.perf_counter()
            try:
                run_query(client, q)
            except Exception as exc:
                with lock:
                    errors.append(f"{name}: {exc}")
                continue
            took = time.perf_counter() - t0
            with lock:
                latencies.append(took)
                by_query[name].append(took)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    start_line.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    go.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    return {**_stats(latencies, wall), "errors": errors[:5], "error_count": len(errors),
            "per_query_p95_ms": {n: _pct(v, 95) for n, v in by_query.items()}}  # fmt: skip


def _pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))], 2)


def _stats(latencies: list[float], wall: float) -> dict[str, Any]:
    return {
        "queries": len(latencies),
        "p50_ms": round(1000 * statistics.median(latencies), 2) if latencies else None,
        "p95_ms": _pct(latencies, 95),
        "max_ms": round(1000 * max(latencies), 2) if latencies else None,
        "qps": round(len(latencies) / wall, 1) if wall else None,
    }


def endpoint(home: Path, clients: int, seconds: float, *flags: str, checkout: Path = ROOT) -> dict[str, Any]:
    import pymysql

    port = _free_port()
    env = _env(home, checkout)
    log = open(home / "serve-bench.log", "w")  # noqa: SIM115 - closed below
    command = ["lakehouse", "serve", "--port", str(port), *flags]
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    try:
        _wait_port(port, proc)

        def open_client() -> Any:
            return pymysql.connect(host="127.0.0.1", port=port, user=USER, password=PASSWORD)

        def run_query(client: Any, q: str) -> Any:
            with client.cursor() as cur:
                cur.execute(q)
                return cur.fetchall()

        with MemorySampler(proc.pid) as sampler:
            result = _drive(clients, seconds, run_query, open_client)
        result["server_peak_rss_mb"] = round(sampler.process_peak, 1)
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def direct(home: Path, clients: int, seconds: float) -> dict[str, Any]:
    """The same queries on one DuckDB connection holding the same tables as Arrow (unmasked)."""
    import duckdb
    import sqlglot

    from lakehouse.core.ids import TableId
    from lakehouse.core.settings import LakehouseSettings
    from lakehouse.facade import Lakehouse

    lh = Lakehouse(LakehouseSettings.for_home(home))
    con = duckdb.connect(":memory:")
    names = {t for _, q in QUERIES for t in sqlglot.parse_one(q, read="mysql").find_all(sqlglot.exp.Table)}
    for table in names:
        arrow = lh.tables.dataset(TableId(table.db, table.name)).to_table()
        con.execute(f'create schema if not exists "{table.db}"')
        con.register("incoming", arrow)  # connection-local: copied into a table every cursor sees
        con.execute(f'create table "{table.db}"."{table.name}" as select * from incoming')
        con.unregister("incoming")
    translated = {q: sqlglot.transpile(q, read="mysql", write="duckdb")[0] for _, q in QUERIES}

    def run_query(cursor: Any, q: str) -> Any:
        return cursor.execute(translated[q]).fetchall()

    return _drive(clients, seconds, run_query, con.cursor)


def _before(home: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The endpoint of `args.before` against this one, cached and uncached, alternating (before,
    now, before, now) so both see the same machine; medians of the two rounds each."""
    rounds: dict[str, Any] = {}
    for mode, flags in (("result cache", ()), ("no result cache", ("--no-result-cache",))):
        runs: dict[str, list[dict[str, Any]]] = {"before": [], "now": []}
        for _ in range(2):
            runs["before"].append(endpoint(home, args.clients, args.seconds, *flags, checkout=args.before))
            runs["now"].append(endpoint(home, args.clients, args.seconds, *flags))
        p95 = {k: statistics.median(r["p95_ms"] for r in v) for k, v in runs.items()}
        qps = {k: statistics.median(r["qps"] for r in v) for k, v in runs.items()}
        rounds[mode] = {
            "before_p95_ms": p95["before"],
            "now_p95_ms": p95["now"],
            "p95_ratio": round(p95["now"] / p95["before"], 3),
            "before_qps": qps["before"],
            "now_qps": qps["now"],
            "qps_ratio": round(qps["now"] / qps["before"], 3),
            "errors": {k: sum(r["error_count"] for r in v) for k, v in runs.items()},
        }
    return {"checkout": str(args.before), "rounds": rounds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--home", type=Path, help="Build (or reuse) the benchmark lakehouse here.")
    parser.add_argument(
        "--before",
        type=Path,
        help="Another checkout of the project (e.g. `git worktree add /tmp/before main`): its endpoint is "
        "measured in the same run, alternating with this one's, and the ratio printed.",
    )
    args = parser.parse_args()
    scratch = None
    home = args.home
    if home is None:
        scratch = tempfile.mkdtemp(prefix="lakehouse-serve-bench-")
        home = Path(scratch) / "lh"
    try:
        built = build(home)
        if built:
            print(f"built the benchmark lakehouse in {built:.0f} s", flush=True)
        served = endpoint(home, args.clients, args.seconds)
        uncached = endpoint(home, args.clients, args.seconds, "--no-result-cache")
        baseline = direct(home, args.clients, args.seconds)
        before = _before(home, args) if args.before else None
        results: dict[str, Any] = {
            "clients": args.clients,
            "seconds": args.seconds,
            "endpoint_masked_third_party": served,
            "endpoint_no_result_cache": uncached,
            "duckdb_direct_same_arrow": baseline,
            "p95_ratio": round(served["p95_ms"] / baseline["p95_ms"], 1)
            if served["p95_ms"] and baseline["p95_ms"]
            else None,
        }
        if before:
            results["before"] = before
        out = ROOT / "bench-results" / "serve.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        for side in ("endpoint_masked_third_party", "endpoint_no_result_cache", "duckdb_direct_same_arrow"):
            r = results[side]
            print(f"{side:30s} p50 {r['p50_ms']} ms  p95 {r['p95_ms']} ms  max {r['max_ms']} ms  "
                  f"{r['qps']} q/s  ({r['queries']} queries, {r['error_count']} errors)")  # fmt: skip
        print(f"endpoint per-query p95 (ms): {served['per_query_p95_ms']}")
        print(f"without the result cache, per-query p95 (ms): {uncached['per_query_p95_ms']}")
        if before:
            for mode, r in before["rounds"].items():
                print(f"before vs now, {mode}: p95 {r['before_p95_ms']} -> {r['now_p95_ms']} ms "
                      f"(x{r['p95_ratio']}), {r['before_qps']} -> {r['now_qps']} q/s (x{r['qps_ratio']})")  # fmt: skip
        print(f"server peak RSS {served['server_peak_rss_mb']} MB; results in {out}")
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
