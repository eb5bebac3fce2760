"""End to end with the real `dagster-daemon`: files land, the daemon's DataScan ticks launch runs,
and the ADS table converges to what the seed's SQL says about the files - then again after a
daemon restart, a late file and a replaced file. The test starts the daemon and stops it by PID."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest

from lakehouse.core.settings import LakehouseSettings
from lakehouse.demo.iov import generate_iov
from lakehouse.facade import Lakehouse
from tests.helpers import reference
from tests.helpers.daemon import run_count, running_daemon
from tests.helpers.pipeline import Pipeline, gps

pytestmark = pytest.mark.e2e


def expected_ads(lh: Lakehouse) -> dict[tuple[str, str], tuple[float, float]]:
    """The seed's semantics applied straight to the raw files in the landing folder now, read with
    pyarrow alone (nothing of the project's own path rules or readers)."""
    import pyarrow as pa
    import pyarrow.orc as orc
    import pyarrow.parquet as pq

    root = Path(lh.settings.landing_uri)
    by_partition: dict[tuple[str, str], list[dict]] = {}
    for path in sorted(root.glob("iov/ods_vehicle_gps_raw/dt=*/hh=*/*")):
        if path.name.startswith((".", "_")) or path.suffix not in (".parquet", ".orc"):
            continue  # junk: hidden, system and in-progress files
        if path.stat().st_size == 0 or path.name == "corrupt.parquet":
            continue  # the generator's empty and corrupt samples, which DataScan rejects
        table = pq.read_table(path) if path.suffix == ".parquet" else orc.read_table(path)
        key = (path.parent.parent.name.removeprefix("dt="), path.parent.name.removeprefix("hh="))
        by_partition.setdefault(key, []).extend(pa.Table.to_pylist(table))
    out = {}
    for (dt_value, hh_value), rows in by_partition.items():
        for vin, values in reference.ads(rows).items():
            out[(vin, f"{dt_value} {hh_value}")] = values
    return out


def wait_for_ads(p: Pipeline, lh: Lakehouse, log: Path, timeout: float = 240) -> None:
    want = expected_ads(lh)
    deadline = time.monotonic() + timeout
    got: dict = {}
    while time.monotonic() < deadline:
        try:
            got = p.ads()
        except Exception:  # noqa: BLE001 - the table does not exist until the first run commits
            got = {}
        if set(got) == set(want) and all(got[k] == pytest.approx(want[k], rel=1e-9) for k in want):
            return
        time.sleep(1)
    tail = log.read_text(errors="replace")[-4000:]
    pytest.fail(
        f"ADS did not converge in {timeout}s: {len(got)} rows, want {len(want)}.\nDaemon log tail:\n{tail}"
    )


def test_daemon_processes_new_late_and_replaced_files(tmp_path: Path, table_format: str) -> None:
    home, dagster_home, log = tmp_path / "lh", tmp_path / "dagster_home", tmp_path / "daemon.log"
    dagster_home.mkdir()  # fresh and empty: no dagster.yaml
    env = {
        **os.environ,
        "LAKEHOUSE_HOME": str(home),
        "DAGSTER_HOME": str(dagster_home),
        "LAKEHOUSE_TABLE_FORMAT": table_format,
        "LAKEHOUSE_SCAN_INTERVAL_SECONDS": "2",
    }
    settings = LakehouseSettings.from_env(env)
    lh = Lakehouse(settings)
    p = Pipeline(settings, instance=None)  # type: ignore[arg-type] - only used to land files and query

    generate_iov(lh.landing, hours=2, vehicles=6, start=dt.datetime(2025, 9, 17, 22), interval_seconds=120)
    with running_daemon(env, log):
        wait_for_ads(p, lh, log)
    runs_before = run_count(dagster_home)
    assert runs_before == 1  # one reconcile run for the namespace's two hours

    with running_daemon(env, log):  # a restart: nothing is reprocessed...
        time.sleep(12)
        assert run_count(dagster_home) == runs_before
        # ...and nothing is missed: a late file in a processed partition, a file replaced in place
        p.land(
            [gps("VIN001", "2025-09-17 22:59:00", 120.9, 30.9, 33.0), gps("VIN999", "2025-09-17 22:10:00")],
            dt="2025-09-17",
            hh="22",
            name="late.parquet",
        )
        p.land(
            [
                gps("VIN001", "2025-09-17 23:00:00", 120.0, 30.0, 10.0),
                gps("VIN001", "2025-09-17 23:30:00", 120.1, 30.0, 20.0),
            ],
            dt="2025-09-17",
            hh="23",
            name="part-00000.orc",
        )
        wait_for_ads(p, lh, log)
        converged = run_count(dagster_home)
        assert converged >= runs_before + 1  # the changed partitions were loaded again
        time.sleep(8)  # four more ticks: the late and replaced files are not processed twice
        assert run_count(dagster_home) == converged
    assert ("VIN999", "2025-09-17 22") in p.ads()
    assert p.ads()[("VIN001", "2025-09-17 23")][1] == 15.0  # only the replacement's rows remain
