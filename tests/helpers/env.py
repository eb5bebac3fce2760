"""The environment a test starts from."""

from __future__ import annotations

UNSET = [
    "LAKEHOUSE_HOME",
    "LAKEHOUSE_DEBUG",
    "LAKEHOUSE_LANDING_URI",
    "LAKEHOUSE_WAREHOUSE_URI",
    "LAKEHOUSE_CATALOG_URI",
    "LAKEHOUSE_TABLE_FORMAT",
    "LAKEHOUSE_SCAN_INTERVAL_SECONDS",
    "LAKEHOUSE_DISTANCE_METHOD",
    "LAKEHOUSE_TIMEZONE",
    "LAKEHOUSE_DAILY_START_DATE",
    "LAKEHOUSE_MASKING_SALT",
    "LAKEHOUSE_FAILPOINT",
    "LAKEHOUSE_ENGINE",
    "LAKEHOUSE_SPARK_REMOTE",
    "AWS_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
]
"""Variables from the developer's shell that would change what the lakehouse does; unset for every test."""


def clean_env(base: dict[str, str], **overrides: str) -> dict[str, str]:
    """`base` (e.g. os.environ) without UNSET, plus overrides: for processes a test starts."""
    env = {k: v for k, v in base.items() if k not in UNSET}
    env.update(overrides)
    return env
