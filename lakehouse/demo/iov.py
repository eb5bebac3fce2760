"""Sample raw data in the seed's schema: vehicles driving around Hangzhou, reporting every N seconds.

Dirty rows (missing or blank vin, bad speeds, unparseable times, impossible coordinates) and junk
files (.DS_Store, _SUCCESS, uploads in progress, empty and corrupt files) are mixed in on purpose, so
the demo shows what DataScan and DWD do with them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.storage.object_store import ObjectStore

DIRTY_KINDS = (
    "vin_null",
    "vin_blank",
    "speed_negative",
    "speed_null",
    "time_bad",
    "coords_out",
    "coords_null",
)


@dataclass
class GenerateSummary:
    files: list[str] = field(default_factory=list)
    junk: list[str] = field(default_factory=list)
    rows: int = 0
    dirty_rows: int = 0


def gps_hour(
    start: dt.datetime,
    vehicles: int,
    interval_seconds: int,
    state: dict[str, Any],
    seed: int,
    dirty_fraction: float,
) -> tuple[pa.Table, int]:
    """One hour of reports for every vehicle; `state` carries positions from hour to hour."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    steps = 3600 // interval_seconds
    lng0 = state.get("lng", 120.0 + rng.random(vehicles) * 0.5)
    lat0 = state.get("lat", 30.0 + rng.random(vehicles) * 0.5)
    heading0 = state.get("heading", rng.random(vehicles) * 2 * np.pi)
    speed = np.clip(rng.normal(60, 15, (steps, vehicles)), 0, 140)
    heading = heading0 + np.cumsum(rng.normal(0, 0.2, (steps, vehicles)), axis=0)
    km = speed * interval_seconds / 3600.0
    lat = lat0 + np.cumsum(km * np.sin(heading) / 111.0, axis=0)
    lng = lng0 + np.cumsum(km * np.cos(heading) / (111.0 * np.cos(np.radians(lat))), axis=0)
    state.update(lng=lng[-1], lat=lat[-1], heading=heading[-1])

    width = max(3, len(str(vehicles)))
    ids = np.arange(1, vehicles + 1)
    times = [
        (start + dt.timedelta(seconds=int(k) * interval_seconds)).strftime("%Y-%m-%d %H:%M:%S")
        for k in range(steps)
    ]
    step = np.repeat(np.arange(steps), vehicles)
    frame = pl.DataFrame(
        {
            "report_time": pl.Series(times).gather(step),
            "vehicle": np.tile(ids, steps),
            "lng": lng.ravel(),
            "lat": lat.ravel(),
            "speed": speed.ravel(),
        }
    ).with_columns(
        vin=pl.format("VIN{}", pl.col("vehicle").cast(pl.String).str.zfill(width)),
        device_id=pl.format("DEV{}", pl.col("vehicle").cast(pl.String).str.zfill(width)),
        raw_payload=pl.lit("mock_payload"),
    )
    dirty = 0
    if dirty_fraction > 0:
        kind = np.where(
            rng.random(frame.height) < dirty_fraction, rng.integers(0, len(DIRTY_KINDS), frame.height), -1
        )
        dirty = int((kind >= 0).sum())
        k = pl.Series("kind", kind)
        frame = frame.with_columns(k).with_columns(
            vin=pl.when(pl.col("kind") == 0)
            .then(None)
            .when(pl.col("kind") == 1)
            .then(pl.lit("  "))
            .otherwise(pl.col("vin")),
            speed=pl.when(pl.col("kind") == 2)
            .then(-pl.col("speed") - 1)
            .when(pl.col("kind") == 3)
            .then(None)
            .otherwise(pl.col("speed")),
            report_time=pl.when(pl.col("kind") == 4)
            .then(pl.lit("2025/09/17 25:61"))
            .otherwise(pl.col("report_time")),
            lng=pl.when(pl.col("kind") == 5)
            .then(pl.lit(0.0))
            .when(pl.col("kind") == 6)
            .then(None)
            .otherwise(pl.col("lng")),
            lat=pl.when(pl.col("kind") == 5)
            .then(pl.lit(0.0))
            .when(pl.col("kind") == 6)
            .then(None)
            .otherwise(pl.col("lat")),
        )
    columns = ["vin", "device_id", "report_time", "lng", "lat", "speed", "raw_payload"]
    return frame.select(columns).to_arrow(), dirty


def generate_iov(
    landing: ObjectStore,
    *,
    hours: int,
    vehicles: int,
    start: dt.datetime,
    interval_seconds: int = 30,
    seed: int = 7,
    dirty_fraction: float = 0.02,
    junk: bool = True,
    file_format: str = "mixed",
    files_per_hour: int = 1,
    namespace: str = "iov",
    table: str = "ods_vehicle_gps_raw",
) -> GenerateSummary:
    """Write `hours` hourly partitions starting at `start` (rounded down to the hour)."""
    if interval_seconds < 1 or 3600 % interval_seconds:
        raise ValueError(f"--interval-seconds must divide 3600, got {interval_seconds}")
    start = start.replace(minute=0, second=0, microsecond=0)
    summary = GenerateSummary()
    state: dict[str, Any] = {}
    for h in range(hours):
        hour = start + dt.timedelta(hours=h)
        data, dirty = gps_hour(hour, vehicles, interval_seconds, state, seed + h, dirty_fraction)
        folder = f"{namespace}/{table}/dt={hour:%Y-%m-%d}/hh={hour:%H}"
        suffix = {"parquet": "parquet", "orc": "orc"}.get(file_format, "orc" if h % 2 else "parquet")
        chunk = -(-data.num_rows // files_per_hour)
        for part in range(files_per_hour):
            path = f"{folder}/part-{part:05d}.{suffix}"
            landing.write_arrow(path, data.slice(part * chunk, chunk))
            summary.files.append(path)
        summary.rows += data.num_rows
        summary.dirty_rows += dirty
    if junk and hours:
        first = f"{namespace}/{table}/dt={start:%Y-%m-%d}/hh={start:%H}"
        junk_files = {
            f"{namespace}/.DS_Store": b"\x00\x00\x00\x01Bud1",
            f"{first}/.DS_Store": b"\x00\x00\x00\x01Bud1",
            f"{first}/_SUCCESS": b"",
            f"{first}/part-99999.parquet.uploading": b"PAR1 half an upload",
            f"{first}/empty.parquet": b"",
            f"{first}/corrupt.parquet": b"PAR1 this is not really parquet PAR1",
        }
        for path, content in junk_files.items():
            landing.write_bytes(path, content)
            summary.junk.append(path)
    return summary
