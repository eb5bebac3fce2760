"""`make bench` (freshness): landing -> ADS right, under the real `dagster-daemon` (scan interval 5 s).

1. Game: a batch of small game files (profiles + 20 days of events, about 21 files) landed at
   once, then a late batch (files for older days and other players). Each is timed from the moment
   its files are in the landing folder until all four ADS tables (and dwd_user_details) equal the
   independent reference (tests/helpers/game_reference.py) over every file landed so far.
2. Vehicles: one hour of 3.6M GPS rows (4 Parquet files), until ads_vehicle_hourly_stat holds the
   rows DuckDB computes straight from the raw files.

Beside each: the in-process floor, the same landing reconciled by `catch_up` in one process with no
daemon, no sensor interval and no run process start. Peak memory is sampled from /proc for the whole
process tree (daemon, code server, run workers) every 0.2 s, and the largest single process too.
The daemon runs with a fresh DAGSTER_HOME whose dagster.yaml only disables telemetry.
Results: bench-results/freshness.json.

    python -m benchmarks.freshness [--skip-iov]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.memory import MemorySampler

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCAN_INTERVAL = 5
TIMEOUT = 600.0


# --- the daemon -------------------------------------------------------------------------------------
class Daemon:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.dagster_home = home / "dagster_home"
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        (self.dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        self.env = {
            **os.environ,
            "LAKEHOUSE_HOME": str(home),
            "DAGSTER_HOME": str(self.dagster_home),
            "LAKEHOUSE_SCAN_INTERVAL_SECONDS": str(SCAN_INTERVAL),
            "PYTHONPATH": str(ROOT),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Daemon:
        log = (self.home / "daemon.log").open("ab")
        self.proc = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def wait_ticking(self) -> None:
        """Until the datascan sensor has ticked once (the daemon and its code server are up)."""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            text = (self.home / "daemon.log").read_text(errors="replace")
            if "DataScan:" in text or "Sensor datascan skipped" in text or "nothing stale" in text:
                return
            time.sleep(0.5)
        raise TimeoutError("the daemon's datascan sensor never ticked")


def _copy_in(files: list[tuple[Path, str]], landing: Path) -> None:
    """Land files as a producer does: write elsewhere, then rename into place (atomic)."""
    for source, relative in files:
        target = landing / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.tmp"
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)


def _files(root: Path) -> list[tuple[Path, str]]:
    return sorted((p, p.relative_to(root).as_posix()) for p in root.rglob("*") if p.is_file())


def _wait_until(home: Path, check: Any, timeout: float = TIMEOUT) -> float:
    """Seconds until `check()` holds. The tables are read again only when a build was recorded
    since the last look (one small query of the catalog), so the benchmark does not compete with
    the daemon's run for the 2 cores while it works."""
    from lakehouse.core.settings import LakehouseSettings
    from lakehouse.storage.catalog import CatalogDB

    catalog = CatalogDB(LakehouseSettings.for_home(home).catalog_uri)
    started = time.perf_counter()
    seen: Any = None
    while time.perf_counter() - started < timeout:
        try:
            state = [catalog.builds_summary(ns) for ns in ("game_db", "iov")]
        except Exception:  # noqa: BLE001 - the catalog is being created
            state = None
        if state is not None and state != seen:
            seen = state
            try:
                if check():
                    return time.perf_counter() - started
            except Exception:  # noqa: BLE001 - tables mid-creation: look again
                seen = None
        time.sleep(0.2)
    raise TimeoutError(f"not right after {timeout:.0f}s")


# --- game -------------------------------------------------------------------------------------------
def _game_batches(work: Path) -> tuple[Path, Path]:
    from lakehouse.demo.game import generate_game
    from lakehouse.storage.object_store import LocalObjectStore

    first, late = work / "game-batch-1", work / "game-batch-2"
    generate_game(
        LocalObjectStore(str(first)), days=20, users=300, events_per_day=600, start=dt.date(2025, 9, 1)
    )
    generate_game(
        LocalObjectStore(str(late)),
        days=6,
        users=300,
        events_per_day=300,
        start=dt.date(2025, 9, 5),
        with_profiles=False,
        tag="late",
        cohort=1,
    )
    return first, late


def _game_right(home: Path, landed: Path) -> Any:
    """A check: do the tables at `home` equal the reference over the files under `landed`?
    (computed here, before the files land, so the clock does not include it)"""
    from lakehouse.core.settings import LakehouseSettings
    from lakehouse.facade import Lakehouse
    from lakehouse.storage.catalog import CatalogDB
    from tests.helpers import game

    settings = LakehouseSettings.for_home(home)
    want = game.game_reference.compute(landed, settings.timezone, first_day=settings.daily_start_date)

    def check() -> bool:
        CatalogDB.dispose_all()
        lh = Lakehouse(settings)
        return all(
            game.game_reference.difference(name, game.pipeline_rows(lh, name), want[name]) is None
            for name in game.game_reference.COMPARED_TABLES
        )

    return check


def _floor(home: Path) -> dict[str, Any]:
    """In a fresh process: catch_up once; its wall time and peak RSS."""
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.freshness", "--floor", str(home)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "LAKEHOUSE_HOME": str(home)},
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_floor(home: str) -> dict[str, Any]:
    import resource
    import warnings

    import dagster as dg

    warnings.filterwarnings("ignore")
    from lakehouse.core.settings import LakehouseSettings
    from lakehouse_assets.definitions import build_definitions
    from sensors.run_once import catch_up

    settings = LakehouseSettings.for_home(Path(home))
    with dg.instance_for_test() as instance:
        defs = build_definitions(settings)
        started = time.perf_counter()
        result = catch_up(defs, instance, log_level="ERROR")
        seconds = time.perf_counter() - started
    assert result.failed == 0, result
    return {
        "seconds": seconds,
        "runs": result.requested,
        "partitions": sum(result.built.values()),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
    }


def game_freshness(work: Path) -> dict[str, Any]:
    first, late = _game_batches(work)
    batch1, batch2 = _files(first), _files(late)
    result: dict[str, Any] = {
        "batch_files": len(batch1),
        "batch_kb": round(sum(p.stat().st_size for p, _ in batch1) / 1024),
        "late_files": len(batch2),
        "late_kb": round(sum(p.stat().st_size for p, _ in batch2) / 1024),
    }
    floor_home = work / "game-floor"
    _copy_in(batch1, floor_home / "landing")
    result["floor_batch"] = _floor(floor_home)
    _copy_in(batch2, floor_home / "landing")
    result["floor_late"] = _floor(floor_home)

    home = work / "game-daemon"
    (home / "landing").mkdir(parents=True)
    both = work / "game-both"
    _copy_in([*batch1, *batch2], both)
    first_right, both_right = _game_right(home, first), _game_right(home, both)
    with Daemon(home) as daemon, MemorySampler(daemon.proc.pid if daemon.proc else 0) as memory:
        daemon.wait_ticking()
        _copy_in(batch1, home / "landing")
        result["daemon_batch_seconds"] = _wait_until(home, first_right)
        _copy_in(batch2, home / "landing")
        result["daemon_late_seconds"] = _wait_until(home, both_right)
        _wait_idle(home)  # stopping the daemon would interrupt a run still in flight
    result["daemon_tree_peak_mb"] = round(memory.tree_peak)
    result["daemon_process_peak_mb"] = round(memory.process_peak)
    result["daemon_runs"] = _runs(home)
    return result


def _wait_idle(home: Path, timeout: float = 120) -> None:
    import dagster as dg

    from tests.helpers.daemon import instance_at

    busy = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with instance_at(home / "dagster_home") as instance:
            if not instance.get_runs_count(dg.RunsFilter(statuses=busy)):
                return
        time.sleep(0.5)


def _runs(home: Path) -> dict[str, int]:
    from tests.helpers.daemon import instance_at

    with instance_at(home / "dagster_home") as instance:
        records = instance.get_run_records()
    counts: dict[str, int] = {}
    for record in records:
        key = f"{record.dagster_run.job_name}:{record.dagster_run.status.value}"
        counts[key] = counts.get(key, 0) + 1
    return counts


# --- vehicles ---------------------------------------------------------------------------------------
def iov_freshness(work: Path) -> dict[str, Any]:
    from benchmarks.run import generate_hour, measure_duckdb

    raw = work / "iov-raw"
    generate_hour(raw)
    files = _files(raw)
    expected_rows = measure_duckdb(str(raw))["ads_rows"]
    result: dict[str, Any] = {"rows": 3_600_000, "files": len(files), "ads_rows": expected_rows}
    floor_home = work / "iov-floor"
    _copy_in(files, floor_home / "landing")
    result["floor"] = _floor(floor_home)

    home = work / "iov-daemon"
    (home / "landing").mkdir(parents=True)

    def right() -> bool:
        from lakehouse.core.settings import LakehouseSettings
        from lakehouse.facade import Lakehouse
        from lakehouse.storage.catalog import CatalogDB

        CatalogDB.dispose_all()
        lh = Lakehouse(LakehouseSettings.for_home(home))
        n = lh.sql("select count(*) as n from iov.ads_vehicle_hourly_stat").column(0)[0].as_py()
        return bool(n == expected_rows)

    with Daemon(home) as daemon, MemorySampler(daemon.proc.pid if daemon.proc else 0) as memory:
        daemon.wait_ticking()
        _copy_in(files, home / "landing")
        result["daemon_seconds"] = _wait_until(home, right)
        _wait_idle(home)
    result["daemon_tree_peak_mb"] = round(memory.tree_peak)
    result["daemon_process_peak_mb"] = round(memory.process_peak)
    result["daemon_runs"] = _runs(home)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--floor", help=argparse.SUPPRESS)
    parser.add_argument("--skip-iov", action="store_true")
    args = parser.parse_args()
    if args.floor:
        print(json.dumps(measure_floor(args.floor)))
        return
    work = Path(tempfile.mkdtemp(prefix="lakehouse-freshness-"))
    results: dict[str, Any] = {"scan_interval_seconds": SCAN_INTERVAL, "game": game_freshness(work)}
    if not args.skip_iov:
        results["iov"] = iov_freshness(work)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "freshness.json").write_text(json.dumps(results, indent=2))
    g = results["game"]
    print(
        f"game batch ({g['batch_files']} files, {g['batch_kb']} KB): daemon {g['daemon_batch_seconds']:.1f}s, "
        f"in-process floor {g['floor_batch']['seconds']:.1f}s"
    )
    print(
        f"game late batch ({g['late_files']} files): daemon {g['daemon_late_seconds']:.1f}s, "
        f"in-process floor {g['floor_late']['seconds']:.1f}s"
    )
    print(
        f"game daemon peak memory: tree {g['daemon_tree_peak_mb']} MB, largest process {g['daemon_process_peak_mb']} MB; runs {g['daemon_runs']}"
    )
    if "iov" in results:
        v = results["iov"]
        print(
            f"iov hour (3.6M rows): daemon {v['daemon_seconds']:.1f}s, in-process floor {v['floor']['seconds']:.1f}s"
        )
        print(
            f"iov daemon peak memory: tree {v['daemon_tree_peak_mb']} MB, largest process {v['daemon_process_peak_mb']} MB; runs {v['daemon_runs']}"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
