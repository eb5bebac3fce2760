"""The randomized crash sweep: `lakehouse scan` SIGKILLed at random instants of the late-data batch
(the scenario of test_crash.py), recovered by another scan; every table must equal the uninterrupted
run row for row. Long, so not in `make test`: `make bench-crash` runs it
(LAKEHOUSE_CRASH_SWEEP=<kills>, default 30 there), and prints how many kills landed mid-work.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest

from lakehouse.facade import Lakehouse
from tests.helpers.paths import REPO
from tests.integration.test_crash import LAKEHOUSE, scenario, table_rows

KILLS = int(os.environ.get("LAKEHOUSE_CRASH_SWEEP", "0"))
pytestmark = [
    pytest.mark.sweep,
    pytest.mark.skipif(not KILLS, reason="the randomized sweep runs in `make bench-crash`"),
]


@pytest.mark.parametrize("table_format", ["iceberg", "delta"])
def test_random_sigkills_then_recovery(tmp_path_factory: pytest.TempPathFactory, table_format: str) -> None:
    case = scenario(tmp_path_factory, table_format)
    case.restore()
    started = time.monotonic()
    assert case.scan().returncode == 0
    uninterrupted = time.monotonic() - started
    rng = random.Random(int(os.environ.get("LAKEHOUSE_CRASH_SEED", "1")))
    mid_work = 0
    for i in range(KILLS):
        case.restore()
        proc = subprocess.Popen(
            [str(LAKEHOUSE), "scan"],
            cwd=REPO,
            env=case.env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(rng.uniform(0.5, uninterrupted))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            mid_work += 1
        proc.wait()
        recovered = case.scan()
        assert recovered.returncode == 0, f"kill {i}: {recovered.stderr[-2000:]}"
        assert table_rows(Lakehouse(case.settings())) == case.expected, f"kill {i}: tables differ"
    print(
        f"\n{table_format}: {KILLS} random kills, {mid_work} mid-work (uninterrupted scan {uninterrupted:.1f}s)"
    )
