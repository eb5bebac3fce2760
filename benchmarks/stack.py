"""`make bench-stack`: one DataScan tick with 2,000 partitions registered, the catalog on a real
PostgreSQL server (Debian's, started here on 127.0.0.1 and stopped by PID) beside the embedded SQLite
catalog, in the same run: nothing new, and one new file. Each side runs in its own process
(benchmarks.run's `tick` measurement); results go to bench-results/stack.json."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.run import ROOT, _child
from tests.helpers.postgres import postgres_server

PARTITIONS = 2000


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="lakehouse-bench-stack-"))
    results: dict[str, dict] = {}
    with postgres_server() as server:
        url = server.create_database("bench")
        for side, extra in (("sqlite", []), ("postgres", [url]), ("sqlite_again", [])):
            print(f"tick with {PARTITIONS} partitions, catalog on {side} ...", flush=True)
            results[side] = _child("tick", str(work / side), str(PARTITIONS), *extra)
    shutil.rmtree(work, ignore_errors=True)
    sqlite = {
        k: min(results["sqlite"][k], results["sqlite_again"][k]) for k in ("idle_seconds", "new_file_seconds")
    }
    pg = results["postgres"]
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    record = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, **results}
    (out / "stack.json").write_text(json.dumps(record, indent=2))
    print(f"\n| DataScan tick, {PARTITIONS} partitions registered | nothing new | one new file | peak RSS |")
    print("|---|---|---|---|")
    for side in ("sqlite", "postgres", "sqlite_again"):
        r = results[side]
        print(
            f"| catalog on {side} | {r['idle_seconds'] * 1000:.0f} ms | {r['new_file_seconds'] * 1000:.0f} ms "
            f"({r['runs_requested']} run) | {r['peak_rss_mb']:.0f} MB |"
        )
    print(
        f"| ratio postgres / sqlite (best sqlite) | {pg['idle_seconds'] / sqlite['idle_seconds']:.2f}x | "
        f"{pg['new_file_seconds'] / sqlite['new_file_seconds']:.2f}x | |"
    )
    print(f"written to {out / 'stack.json'}")


if __name__ == "__main__":
    main()
