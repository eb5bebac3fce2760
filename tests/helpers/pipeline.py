"""The lakehouse as a user drives it in tests: land raw GPS files, run the real DataScan sensor and
the runs it asks for in-process, query the tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from lakehouse.core.settings import LakehouseSettings
from lakehouse.facade import Lakehouse
from lakehouse_assets.definitions import build_definitions
from sensors.run_once import OneShotResult, run_datascan_once

GPS_SCHEMA = pa.schema(
    [
        ("vin", pa.string()),
        ("device_id", pa.string()),
        ("report_time", pa.string()),
        ("lng", pa.float64()),
        ("lat", pa.float64()),
        ("speed", pa.float64()),
        ("raw_payload", pa.string()),
    ]
)


def gps(
    vin: str | None = "VIN001",
    report_time: str | None = "2025-09-17 23:00:00",
    lng: float | None = 120.0,
    lat: float | None = 30.0,
    speed: float | None = 50.0,
    **extra: Any,
) -> dict[str, Any]:
    """One raw GPS report in the seed's ODS schema."""
    return {
        "vin": vin,
        "device_id": "DEV" + (vin or "")[3:],
        "report_time": report_time,
        "lng": lng,
        "lat": lat,
        "speed": speed,
        "raw_payload": "mock_payload",
        **extra,
    }


class Pipeline:
    """The lakehouse as a user drives it: land files, run DataScan (and what it asks for), query."""

    def __init__(
        self, settings: LakehouseSettings, instance: dg.DagsterInstance, models_root: Path | None = None
    ):
        self.settings = settings
        self.instance = instance
        self.lh = Lakehouse(settings)
        self.models_root = models_root

    def defs(self) -> dg.Definitions:
        if self.models_root:
            return build_definitions(self.settings, self.models_root)
        return build_definitions(self.settings)

    def land(
        self,
        rows: list[dict[str, Any]] | pa.Table,
        dt: str = "2025-09-17",
        hh: str = "23",
        name: str = "part-0.parquet",
        table: str = "ods_vehicle_gps_raw",
        namespace: str = "iov",
    ) -> str:
        data = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(rows, schema=GPS_SCHEMA)
        path = f"{namespace}/{table}/dt={dt}/hh={hh}/{name}"
        self.lh.landing.write_arrow(path, data)
        return path

    def scan(self, execute: bool = True) -> OneShotResult:
        result = run_datascan_once(self.defs(), self.instance, execute=execute, log_level="ERROR")
        assert result.succeeded == (result.requested if execute else 0), "a requested run failed"
        return result

    def sql(self, query: str) -> list[dict[str, Any]]:
        return self.lh.sql(query).to_pylist()

    def ads(self) -> dict[tuple[str, str], tuple[float, float]]:
        rows = self.sql("select vin, stat_hour, total_distance, avg_speed from iov.ads_vehicle_hourly_stat")
        return {(r["vin"], r["stat_hour"]): (r["total_distance"], r["avg_speed"]) for r in rows}
