"""Training reads: rows/s through `DataLoader(LakehouseDataset(...), num_workers=2, batch_size=None)`
beside pyarrow reading the same snapshot's files, in the same run.

Data: a GPS table written straight through the table store (`lh.tables.ensure_table` +
`overwrite_partitions`, one commit; quicker than `lakehouse generate` + `lakehouse scan`, and the
same files a model writes): `bench.gps` with the columns of iov.dwd_vehicle_gps (vin, event_time,
lng, lat, speed, loc_valid, partitioned by dt and hh), --rows rows over 24 hourly partitions. A
trainer user (RAM$trainer, role trainers) may SELECT it with the vin masked
(MASKED_STRING_UNMASKED_BA(1, 1)).

Cases (each the median of --repeat runs, every row read):
- pyarrow floor: `pyarrow.dataset.dataset(files).to_batches()` over the pinned snapshot's files
  (Arrow batches, no conversion), all columns and numeric columns only;
- the dataset as the owner: all columns (vin as list[str]) and numeric columns only (tensors);
- the dataset as the masked trainer: all columns.
The dataset cases go through a DataLoader with --workers workers; their rows/s are compared with the
pyarrow floor of the same columns. Results: bench-results/ml.json.

    python -m benchmarks.ml [--rows 4000000] [--format iceberg|delta] [--workers 2]
                            [--batch-size 1024,8192,65536] [--repeat 3] [--home DIR (kept, reused)]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TABLE = "bench.gps"
USER = "RAM$trainer"
NUMERIC = ["event_time", "lng", "lat", "speed", "loc_valid"]
HOURS = 24
POLICY = """
CREATE ROLE trainers;
ADD USER RAM$trainer;
GRANT trainers TO RAM$trainer;
GRANT CreateInstance, List ON PROJECT bench TO ROLE trainers;
GRANT SELECT ON TABLE gps TO ROLE trainers;
setproject odps.data.masking.policy.enable=true;
CREATE DATA MASKING POLICY IF NOT EXISTS mask_vin TO ROLE (trainers) USING MASKED_STRING_UNMASKED_BA(1, 1);
APPLY DATA MASKING POLICY mask_vin BIND TO TABLE gps COLUMN vin;
"""


def build(lh: Any, rows: int) -> float:
    """Write `rows` GPS rows into bench.gps (unless it holds them already); seconds spent (0: reused)."""
    import numpy as np
    import pyarrow as pa

    from lakehouse.core.ids import TableId

    ident = TableId.parse(TABLE)
    if lh.tables.exists(ident) and lh.tables.pinned(ident).dataset.count_rows() == rows:
        return 0.0
    started = time.perf_counter()
    rng = np.random.default_rng(7)
    per_hour = rows // HOURS
    vins = np.array([f"LSVAU2180N{i:07d}" for i in range(10_000)], dtype=object)
    parts = []
    for hour in range(HOURS):
        n = per_hour if hour < HOURS - 1 else rows - per_hour * (HOURS - 1)
        start = np.datetime64(f"2025-09-17T{hour:02d}:00:00", "us")
        parts.append(
            pa.table(
                {
                    "vin": pa.array(vins[rng.integers(0, len(vins), n)], pa.string()),
                    "event_time": pa.array(
                        start + rng.integers(0, 3_600_000_000, n).astype("timedelta64[us]")
                    ),
                    "lng": pa.array(rng.uniform(70, 140, n)),
                    "lat": pa.array(rng.uniform(10, 60, n)),
                    "speed": pa.array(rng.uniform(0, 120, n)),
                    "loc_valid": pa.array(rng.random(n) < 0.98),
                    "dt": pa.array(["2025-09-17"] * n, pa.string()),
                    "hh": pa.array([f"{hour:02d}"] * n, pa.string()),
                }
            )
        )
    schema = parts[0].schema
    lh.tables.ensure_table(ident, schema, ["dt", "hh"], origin="user")
    partitions = [{"dt": "2025-09-17", "hh": f"{h:02d}"} for h in range(HOURS)]
    lh.tables.overwrite_partitions(ident, lambda: parts, partitions)
    lh.apply_policy(POLICY, "bench", "<benchmarks/ml.py>")
    return time.perf_counter() - started


def timed(run: Callable[[], int], repeat: int) -> dict[str, Any]:
    seconds, rows = [], 0
    for _ in range(repeat):
        started = time.perf_counter()
        rows = run()
        seconds.append(time.perf_counter() - started)
    median = statistics.median(seconds)
    return {
        "rows": rows,
        "seconds": [round(s, 3) for s in seconds],
        "median_s": round(median, 3),
        "rows_per_s": round(rows / median),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=4_000_000)
    parser.add_argument("--format", choices=["iceberg", "delta"], default="iceberg")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--batch-size", default="1024,8192,65536", help="LakehouseDataset batch sizes, comma-separated"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--home", type=Path, help="Build (or reuse) the benchmark lakehouse here.")
    args = parser.parse_args()

    import pyarrow.dataset as pads
    from torch.utils.data import DataLoader

    from lakehouse.core.settings import LakehouseSettings
    from lakehouse.facade import Lakehouse
    from lakehouse.ml import LakehouseDataset
    from lakehouse.storage.tables.base import arrow_paths

    scratch = None
    home = args.home
    if home is None:
        scratch = tempfile.mkdtemp(prefix="lakehouse-ml-bench-")
        home = Path(scratch) / "lh"
    try:
        settings = LakehouseSettings.for_home(home, table_format=args.format)
        lh = Lakehouse(settings)
        built = build(lh, args.rows)
        if built:
            print(f"built {TABLE} ({args.rows:,} rows, {args.format}) in {built:.1f} s", flush=True)

        probe = LakehouseDataset(TABLE, lakehouse=lh)
        filesystem, paths = arrow_paths([uri for uri, _ in probe.plan.files], settings)
        files = pads.dataset(paths, format="parquet", filesystem=filesystem)
        size_mb = sum(filesystem.get_file_info(p).size for p in paths) / 1e6

        def arrow(columns: list[str] | None) -> Callable[[], int]:
            return lambda: sum(b.num_rows for b in files.to_batches(columns=columns))

        def loader(columns: list[str] | None, user: str | None, size: int) -> Callable[[], int]:
            ds = LakehouseDataset(TABLE, columns=columns, user=user, batch_size=size, lakehouse=lh)

            def run() -> int:
                rows = 0
                for batch in DataLoader(ds, batch_size=None, num_workers=args.workers):
                    rows += len(next(iter(batch.values())))
                return rows

            return run

        sizes = [int(n) for n in str(args.batch_size).split(",")]
        cases: list[tuple[str, str | None, Callable[[], int]]] = [
            ("pyarrow floor, all columns", None, arrow(None)),
            ("pyarrow floor, numeric columns", None, arrow(NUMERIC)),
        ]
        for size in sizes:
            cases += [
                (
                    f"dataset owner, all columns, batch {size}",
                    "pyarrow floor, all columns",
                    loader(None, None, size),
                ),
                (
                    f"dataset owner, numeric columns, batch {size}",
                    "pyarrow floor, numeric columns",
                    loader(NUMERIC, None, size),
                ),
                (
                    f"dataset masked user, all columns, batch {size}",
                    "pyarrow floor, all columns",
                    loader(None, USER, size),
                ),
            ]
        results: dict[str, Any] = {
            "table": TABLE,
            "format": args.format,
            "rows": args.rows,
            "files": len(paths),
            "data_mb": round(size_mb, 1),
            "workers": args.workers,
            "batch_sizes": sizes,
            "repeat": args.repeat,
            "cases": {},
        }
        for name, floor, run in cases:
            result = timed(run, args.repeat)
            if result["rows"] != args.rows:
                raise SystemExit(f"{name}: read {result['rows']:,} rows, expected {args.rows:,}")
            if floor is not None:
                result["vs_floor"] = round(result["rows_per_s"] / results["cases"][floor]["rows_per_s"], 2)
            results["cases"][name] = result
            print(f"  {name}: {result['median_s']} s", flush=True)

        out = ROOT / "bench-results" / "ml.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(
            f"\n{args.rows:,} rows of {TABLE} ({args.format}, {len(paths)} files, {size_mb:.0f} MB), "
            f"{args.workers} workers (DataLoader batch_size=None), median of {args.repeat}"
        )
        print(f"{'case':48s} {'median s':>9s} {'rows/s':>13s} {'vs floor':>9s}")
        for name, result in results["cases"].items():
            ratio = f"{result['vs_floor']:.2f}" if "vs_floor" in result else "-"
            print(f"{name:48s} {result['median_s']:9.3f} {result['rows_per_s']:13,d} {ratio:>9s}")
        print(f"results in {out}")
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
