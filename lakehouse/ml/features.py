"""The training rows of the ml/ models (lakehouse/ml/train.py): each input table as a Frame of
features, target and split key, sorted so that any scan order gives the same rows, and the split of a
frame into train and test by a hash of each row's key and the seed."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

TEST_FRACTION = 0.25

VEHICLE_TABLE = TableId("iov", "ads_vehicle_hourly_stat")
GAME_TABLE = TableId("game_db", "dws_user_activity_daily")


class NotEnoughData(ValueError):
    """The inputs hold too few rows (or one class only) to train and evaluate a model."""


@dataclass(frozen=True)
class Frame:
    """A model's rows: features, target, and the key the split hashes (one per row, sorted)."""

    features: list[str]
    x: np.ndarray  # float64, rows x features
    y: np.ndarray  # float64
    keys: list[str]
    extra: dict[str, Any] = field(default_factory=dict)
    """Anything the feature spec must remember to rebuild features (e.g. a category vocabulary)."""


def _sorted_frame(features: list[str], rows: list[tuple[str, list[float], float]], **extra: Any) -> Frame:
    import numpy as np

    rows.sort(key=lambda r: (r[0], r[1], r[2]))  # one order whatever order the scan returned
    x = np.array([r[1] for r in rows], dtype=np.float64).reshape(len(rows), len(features))
    y = np.array([r[2] for r in rows], dtype=np.float64)
    return Frame(features, x, y, [r[0] for r in rows], extra)


def vehicle_frame(table: pa.Table) -> Frame:
    """avg_speed from total_distance and the hour of day. The (masked) vin only keys the split."""
    features = ["total_distance", "log1p_total_distance", "hour_sin", "hour_cos"]
    rows: list[tuple[str, list[float], float]] = []
    for r in table.select(["vin", "stat_hour", "total_distance", "avg_speed"]).to_pylist():
        if r["total_distance"] is None or r["avg_speed"] is None or r["stat_hour"] is None:
            continue
        distance, hour = float(r["total_distance"]), int(str(r["stat_hour"])[-2:])
        angle = 2 * math.pi * hour / 24
        key = f"{r['stat_hour']}|{r['vin']}|{distance!r}|{float(r['avg_speed'])!r}"
        rows.append(
            (
                key,
                [distance, math.log1p(max(distance, 0.0)), math.sin(angle), math.cos(angle)],
                r["avg_speed"],
            )
        )
    return _sorted_frame(features, rows)


def churn_frame(table: pa.Table, devices: list[str] | None = None) -> Frame:
    """One row per player and day d they were active on, for the days d with d+7 in the data:
    label 1 when the player is not active on d+7. Features: the day's events, purchases and paid
    orders, its devices (share of events), and the previous six days' activity."""
    import pyarrow.compute as pc

    day_text = pc.cast(table["dt"], "string") if "dt" in table.column_names else None
    if day_text is None:
        raise NotEnoughData(f"{GAME_TABLE} has no dt column")
    days = [dt.date.fromisoformat(d[:10]).toordinal() for d in day_text.to_pylist()]
    per: dict[tuple[int, int], dict[str, Any]] = {}
    for day, user, device, events, amount, paid in zip(
        days,
        table["user_id"].to_pylist(),
        table["device_type"].to_pylist(),
        table["events"].to_pylist(),
        table["purchase_amount"].to_pylist(),
        table["paid_orders"].to_pylist(),
        strict=True,
    ):
        if user is None:
            continue
        a = per.setdefault((user, day), {"events": 0, "amount": 0.0, "paid": 0, "devices": {}})
        a["events"] += int(events or 0)
        a["amount"] += float(amount or 0)
        a["paid"] += int(paid or 0)
        name = device or "unknown"
        a["devices"][name] = a["devices"].get(name, 0) + int(events or 0)
    if not per:
        raise NotEnoughData(f"{GAME_TABLE} is empty")
    first, last = min(d for _, d in per), max(d for _, d in per)
    if devices is None:
        devices = sorted({name for a in per.values() for name in a["devices"]})
    features = [
        "log1p_events",
        "log1p_purchase_amount",
        "log1p_paid_orders",
        "prev6_active_days",
        "prev6_days_observed",
        "log1p_prev6_events",
        "active_prev_day",
        *[f"device_share_{d}" for d in devices],
    ]
    rows: list[tuple[str, list[float], float]] = []
    for (user, day), a in per.items():
        if day + 7 > last:
            continue  # d+7 is not in the data yet: no label
        prev = [per.get((user, day - k)) for k in range(1, 7)]
        observed = min(6, day - first)
        total = max(a["events"], 1)
        values = [
            math.log1p(a["events"]),
            math.log1p(max(a["amount"], 0.0)),
            math.log1p(a["paid"]),
            float(sum(p is not None for p in prev[:observed])),
            float(observed),
            math.log1p(sum(p["events"] for p in prev if p is not None)),
            float(prev[0] is not None),
            *[a["devices"].get(d, 0) / total for d in devices],
        ]
        label = float((user, day + 7) not in per)
        rows.append((f"{user}|{dt.date.fromordinal(day).isoformat()}", values, label))
    return _sorted_frame(features, rows, devices=devices, split_by="user")


def _unit_hash(text: str) -> float:
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split(frame: Frame, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, test) from a hash of each row's key (the player for churn, so no
    player is in both) and the seed: the same rows and seed always split the same way."""
    import numpy as np

    by_user = frame.extra.get("split_by") == "user"
    test = np.array(
        [_unit_hash(f"{seed}:{k.split('|')[0] if by_user else k}") < TEST_FRACTION for k in frame.keys],
        dtype=bool,
    )
    return ~test, test
