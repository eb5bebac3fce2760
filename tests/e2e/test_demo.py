"""The README's first command: `make demo`'s script, run as a user would (in a temporary home)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

pytestmark = pytest.mark.e2e


def test_demo_prints_the_seed_style_table_for_one_vehicle(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LAKEHOUSE_HOME": str(tmp_path / "lh"),
        "DAGSTER_HOME": str(tmp_path / "dh"),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    done = subprocess.run(
        ["bash", "scripts/demo.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "DataScan: 1/1 reconcile run(s) succeeded, 18 partition(s) built" in out
    assert "corrupt.parquet" in out  # the rejected file is shown with its reason
    # the seed's final query: vehicle_id | stat_time | mileage | avg_speed, six hours of VIN001
    rows = re.findall(r"\| VIN001\s+\| (2025-09-17 \d\d)\s+\| ([\d.]+) km\s+\| ([\d.]+) km/h", out)
    assert [r[0] for r in rows] == [f"2025-09-17 {h}" for h in ("23", "22", "21", "20", "19", "18")]
    assert all(float(km) > 0 and 0 < float(kmh) < 140 for _, km, kmh in rows)
    # Game analytics: retention and purchase trends of the first days, then again after a late file.
    retention = re.findall(
        r"\| (2025-09-0[1-4]) \| (\d+)\s+\| (\d+)\s+\| ([\d.]+)\s+\| (\d+)\s+\| ([\d.]+)\s+\|", out
    )
    assert [r[0] for r in retention] == [f"2025-09-0{d}" for d in (1, 2, 3, 4)] * 2
    before, after = retention[:4], retention[4:]
    assert all(0 < int(r[2]) <= int(r[1]) and 0 <= float(r[3]) <= 1 for r in retention)
    assert int(after[1][1]) > int(before[1][1])  # the late file's players joined 2025-09-02's dau
    assert after[2:] == before[2:]  # days the late file did not touch are unchanged
    trends = re.findall(r"\| (2025-09-0[1-4]) \| ([\d.]+)\s+\| (\d+)\s+\| (\d+)\s+\| ([\d.]+)\s+\|", out)
    assert [t[0] for t in trends] == [f"2025-09-0{d}" for d in (1, 2, 3, 4)]
    assert all(float(gmv) > 0 and int(orders) >= int(payers) > 0 for _, gmv, payers, orders, _ in trends)
