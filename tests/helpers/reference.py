"""The seed's DWD and ADS semantics written out in plain Python, independently of the SQL models.

Tests compare what the pipeline produces with what this says."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import defaultdict
from typing import Any

TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def reject_reason(row: dict[str, Any]) -> str | None:
    vin, speed = row.get("vin"), row.get("speed")
    if vin is None or vin.strip() == "":
        return "vin is NULL or blank"
    if speed is None:
        return "speed is NULL"
    if math.isnan(speed):
        return "speed is NaN"
    if speed < 0:
        return "speed is negative"
    if parse_time(row.get("report_time")) is None:
        return "report_time is not YYYY-MM-DD HH:MM:SS"
    return None


def parse_time(text: str | None) -> dt.datetime | None:
    if text is None or not TIME.match(text.strip()):
        return None
    try:
        return dt.datetime.strptime(text.strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None


def loc_valid(row: dict[str, Any]) -> bool:
    lng, lat = row.get("lng"), row.get("lat")
    return lng is not None and lat is not None and 70 <= lng <= 140 and 10 <= lat <= 60


def distance(a: tuple[float, float], b: tuple[float, float], method: str) -> float:
    (lng1, lat1), (lng2, lat2) = a, b
    if method == "planar":
        return math.sqrt((abs(lng2 - lng1) * 111) ** 2 + (abs(lat2 - lat1) * 111) ** 2)
    p1, p2 = math.radians(lat1), math.radians(lat2)
    h = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(math.sqrt(h))


def ads(rows: list[dict[str, Any]], method: str = "haversine") -> dict[str, tuple[float, float]]:
    """vin -> (total_distance, avg_speed) for one partition's raw rows."""
    by_vin: dict[str, list[tuple[dt.datetime, float, float, float]]] = defaultdict(list)
    for row in rows:
        if reject_reason(row) is None and loc_valid(row):
            by_vin[row["vin"]].append((parse_time(row["report_time"]), row["lng"], row["lat"], row["speed"]))
    out = {}
    for vin, points in by_vin.items():
        points.sort()
        total = sum(distance(points[i - 1][1:3], points[i][1:3], method) for i in range(1, len(points)))
        out[vin] = (total, sum(p[3] for p in points) / len(points))
    return out
