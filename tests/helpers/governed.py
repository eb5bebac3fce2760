"""A small governed lakehouse for the governance tests: three vehicles with 17-character VINs landed,
scanned through ODS -> DWD -> ADS, and the seed's policy file applied (per table format, per module)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest

from lakehouse.core.settings import LakehouseSettings
from lakehouse.facade import Lakehouse
from lakehouse.governance.policy_apply import apply_policy
from tests.helpers.paths import REPO
from tests.helpers.pipeline import Pipeline, gps

ROOT = REPO
SEED_POLICY = ROOT / "policies" / "iov_thirdparty.sql"
VINS = ["LSVAU2180N2183294", "LFV3A23C5J3031337", "WVWZZZ1KZAW000077"]
MASKED = {
    "LSVAU2180N2183294": "L***************4",
    "LFV3A23C5J3031337": "L***************7",
    "WVWZZZ1KZAW000077": "W***************7",
}
ALICE = "RAM$alice"
ADS = "iov.ads_vehicle_hourly_stat"


def land_vehicles(pipeline: Pipeline) -> None:
    rows = [
        gps(
            vin,
            f"2025-09-17 23:{minute:02d}:00",
            lng=120.0 + i / 100 + minute / 1000,
            lat=30.0,
            speed=40.0 + i,
        )
        for (i, vin), minute in itertools.product(enumerate(VINS), range(0, 60, 10))
    ]
    pipeline.land(rows)


@pytest.fixture(scope="module", params=["iceberg", "delta"])
def governed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lakehouse]:
    settings = LakehouseSettings.for_home(
        tmp_path_factory.mktemp(f"gov-{request.param}") / "lh", table_format=request.param
    )
    with dg.instance_for_test() as instance:
        pipeline = Pipeline(settings, instance)
        land_vehicles(pipeline)
        pipeline.scan()
    lh = Lakehouse(settings)
    apply_policy(lh, SEED_POLICY.read_text(), "iov", str(SEED_POLICY))
    yield lh


def values(rows: list[dict[str, Any]]) -> list[str]:
    """Every value of the rows as text, nested values flattened (structs, lists)."""
    out: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                out.append(str(k))  # column names too (PIVOT turns values into names)
                walk(v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v)
        else:
            out.append(str(value))

    walk(rows)
    return out


def assert_no_raw_vin(rows: list[dict[str, Any]]) -> None:
    """No raw VIN, and not even its hidden middle, appears anywhere in the result."""
    text = "\n".join(values(rows))
    for vin in VINS:
        assert vin not in text
        assert vin[1:-1] not in text
        assert vin[1:6] not in text
