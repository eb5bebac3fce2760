"""The configuration contract: every knob is an environment variable, read when asked, never at import.

Names (keep them, users depend on them):
    LAKEHOUSE_HOME, LAKEHOUSE_LANDING_URI, LAKEHOUSE_WAREHOUSE_URI, LAKEHOUSE_CATALOG_URI,
    LAKEHOUSE_TABLE_FORMAT, LAKEHOUSE_SCAN_INTERVAL_SECONDS, LAKEHOUSE_DISTANCE_METHOD,
    LAKEHOUSE_TIMEZONE, LAKEHOUSE_DAILY_START_DATE,
    LAKEHOUSE_QUERY_TIMEOUT_SECONDS, LAKEHOUSE_QUERY_MEMORY_LIMIT (governed queries),
    LAKEHOUSE_ENGINE, LAKEHOUSE_SPARK_REMOTE (the engine models run on),
    LAKEHOUSE_MASKING_SALT, LAKEHOUSE_AUDIT_KEY (secrets: read where used, never kept here),
    AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

TableFormat = Literal["iceberg", "delta"]
DistanceMethod = Literal["haversine", "planar"]

TABLE_FORMATS: tuple[str, ...] = ("iceberg", "delta")
DISTANCE_METHODS: tuple[str, ...] = ("haversine", "planar")
ENGINES: tuple[str, ...] = ("duckdb", "spark")


MEMORY_SIZE = re.compile(r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


def default_query_memory_limit() -> str:
    """A quarter of this machine's memory, in MB (the engine's own default is 80%)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "2GB"
    return f"{max(total // 4 // 2**20, 64)}MB"


_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_UNITS.update({"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40})


def size_bytes(text: str) -> int:
    """A MEMORY_SIZE text (512MB, 4GiB, 100 B) as bytes."""
    found = re.match(r"^(\d+(?:\.\d+)?)\s*([a-z]+)$", text.strip().lower())
    if not found or found.group(2) not in _UNITS:
        raise ValueError(f"not a size such as 512MB or 4GB: {text!r}")
    return int(float(found.group(1)) * _UNITS[found.group(2)])


class ConfigError(ValueError):
    """A setting has a value the lakehouse cannot use; the message names the variable."""


@dataclass(frozen=True)
class S3Credentials:
    """The seed's CONNECTION: how to reach S3. The secret never appears in repr, logs or metadata."""

    endpoint_url: str | None = None
    """Custom endpoint (MinIO, moto, OSS's S3 API); None means AWS itself."""
    access_key_id: str | None = None
    """Access key id; None lets botocore find credentials itself."""
    secret_access_key: str | None = field(default=None, repr=False)
    """Secret key. Kept out of repr on purpose."""
    region: str | None = None
    """Region name, e.g. us-east-1."""
    session_token: str | None = field(default=None, repr=False)
    """Session token of temporary credentials (a connection's assumed role). Kept out of repr."""

    def options(self, names: Mapping[str, str]) -> dict[str, str]:
        """The credentials under a library's own option names ({field: option}); unset ones left out."""
        return {option: value for name, option in names.items() if (value := getattr(self, name))}

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> S3Credentials:
        return cls(
            endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
        )


def redacted_url(url: str) -> str:
    """A database URL fit to print: its password, if any, shown as ***."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: show only its scheme
        return url.split("://", 1)[0] + "://***" if "://" in url else "***"


def as_uri(location: str) -> str:
    """A local path becomes an absolute path; URIs with a scheme are kept."""
    if "://" in location:
        if location.startswith("file://"):
            return str(Path(location.removeprefix("file://")).resolve())
        return location.rstrip("/")
    return str(Path(location).expanduser().resolve())


@dataclass(frozen=True)
class LakehouseSettings:
    """Where the lakehouse lives and how it behaves."""

    home: str
    """Root for the embedded defaults (landing, warehouse, catalog). Env: LAKEHOUSE_HOME."""
    landing_uri: str
    """Where raw files land: a local path or s3://bucket/prefix. Env: LAKEHOUSE_LANDING_URI."""
    warehouse_uri: str
    """Where table data and metadata are written. Env: LAKEHOUSE_WAREHOUSE_URI."""
    catalog_uri: str
    """SQLAlchemy URL of the catalog database. Env: LAKEHOUSE_CATALOG_URI."""
    table_format: TableFormat = "iceberg"
    """Open table format of every table. Env: LAKEHOUSE_TABLE_FORMAT."""
    scan_interval_seconds: int = 300
    """How often the DataScan sensor runs. Env: LAKEHOUSE_SCAN_INTERVAL_SECONDS."""
    distance_method: DistanceMethod = "haversine"
    """How ADS mileage is computed between consecutive points. Env: LAKEHOUSE_DISTANCE_METHOD."""
    timezone: str = "UTC"
    """IANA zone in which epoch timestamps become local times and dates (game events). Env: LAKEHOUSE_TIMEZONE."""
    daily_start_date: str = "2020-01-01"
    """First day of the daily (event-date) partitions. Env: LAKEHOUSE_DAILY_START_DATE."""
    query_timeout_seconds: float = 60.0
    """Wall-time limit of one governed query. Env: LAKEHOUSE_QUERY_TIMEOUT_SECONDS."""
    query_memory_limit: str = field(default_factory=default_query_memory_limit)
    """Engine memory limit of one governed query, e.g. 4GB. Env: LAKEHOUSE_QUERY_MEMORY_LIMIT."""
    query_max_rows: int = 1_000_000
    """Most rows one governed query may return (then it stops with an error). Env: LAKEHOUSE_QUERY_MAX_ROWS."""
    query_max_bytes: int = 256 * 2**20
    """Most bytes (Arrow) one governed query may return, e.g. 256MiB. Env: LAKEHOUSE_QUERY_MAX_BYTES."""
    s3: S3Credentials = field(default_factory=S3Credentials)
    """Credentials for s3:// locations."""
    engine: str = "duckdb"
    """The engine every SQL model runs on: duckdb (embedded) or spark. Env: LAKEHOUSE_ENGINE."""
    spark_remote: str | None = None
    """Spark Connect URL sc://host:port for engine spark. Env: LAKEHOUSE_SPARK_REMOTE."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LakehouseSettings:
        env = os.environ if env is None else env
        home = as_uri(env.get("LAKEHOUSE_HOME") or "./.lakehouse")
        if "://" in home:
            raise ConfigError(f"LAKEHOUSE_HOME must be a local folder, got {home!r}")
        table_format = (env.get("LAKEHOUSE_TABLE_FORMAT") or "iceberg").lower()
        if table_format not in TABLE_FORMATS:
            raise ConfigError(f"LAKEHOUSE_TABLE_FORMAT must be one of {TABLE_FORMATS}, got {table_format!r}")
        method = (env.get("LAKEHOUSE_DISTANCE_METHOD") or "haversine").lower()
        if method not in DISTANCE_METHODS:
            raise ConfigError(f"LAKEHOUSE_DISTANCE_METHOD must be one of {DISTANCE_METHODS}, got {method!r}")
        raw_interval = env.get("LAKEHOUSE_SCAN_INTERVAL_SECONDS") or "300"
        try:
            interval = int(raw_interval)
        except ValueError:
            raise ConfigError(
                f"LAKEHOUSE_SCAN_INTERVAL_SECONDS must be a whole number of seconds, got {raw_interval!r}"
            ) from None
        if interval < 1:
            raise ConfigError(f"LAKEHOUSE_SCAN_INTERVAL_SECONDS must be at least 1, got {interval}")
        catalog = env.get("LAKEHOUSE_CATALOG_URI") or f"sqlite:///{home}/catalog.db"
        timezone = env.get("LAKEHOUSE_TIMEZONE") or "UTC"
        try:
            import zoneinfo

            zoneinfo.ZoneInfo(timezone)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            raise ConfigError(
                f"LAKEHOUSE_TIMEZONE must be an IANA time zone such as UTC or Asia/Shanghai, got {timezone!r}"
            ) from None
        start = env.get("LAKEHOUSE_DAILY_START_DATE") or "2020-01-01"
        try:
            import datetime

            start = datetime.date.fromisoformat(start).isoformat()
        except ValueError:
            raise ConfigError(
                f"LAKEHOUSE_DAILY_START_DATE must be a date YYYY-MM-DD, got {start!r}"
            ) from None
        raw_timeout = env.get("LAKEHOUSE_QUERY_TIMEOUT_SECONDS") or "60"
        try:
            timeout = float(raw_timeout)
        except ValueError:
            timeout = -1.0
        if not 0 < timeout < float("inf"):
            raise ConfigError(
                f"LAKEHOUSE_QUERY_TIMEOUT_SECONDS must be a positive number of seconds, got {raw_timeout!r}"
            )
        memory = (env.get("LAKEHOUSE_QUERY_MEMORY_LIMIT") or default_query_memory_limit()).strip()
        if not MEMORY_SIZE.match(memory):
            raise ConfigError(
                f"LAKEHOUSE_QUERY_MEMORY_LIMIT must be a size such as 512MB or 4GB, got {memory!r}"
            )
        raw_rows = (env.get("LAKEHOUSE_QUERY_MAX_ROWS") or "1000000").strip().replace("_", "")
        if not raw_rows.isdigit() or int(raw_rows) < 1:
            raise ConfigError(f"LAKEHOUSE_QUERY_MAX_ROWS must be a positive whole number, got {raw_rows!r}")
        raw_bytes = (env.get("LAKEHOUSE_QUERY_MAX_BYTES") or "256MiB").strip()
        try:
            max_bytes = size_bytes(raw_bytes)
        except ValueError:
            max_bytes = 0
        if max_bytes < 1:
            raise ConfigError(
                f"LAKEHOUSE_QUERY_MAX_BYTES must be a size such as 256MB or 1GB, got {raw_bytes!r}"
            )
        engine = (env.get("LAKEHOUSE_ENGINE") or "duckdb").strip().lower()
        if engine not in ENGINES:
            raise ConfigError(f"LAKEHOUSE_ENGINE must be one of {ENGINES}, got {engine!r}")
        remote = (env.get("LAKEHOUSE_SPARK_REMOTE") or "").strip() or None
        if remote is not None and not re.match(r"^sc://[^/\s:]+:\d+(/.*)?$", remote):
            raise ConfigError(
                f"LAKEHOUSE_SPARK_REMOTE must be a Spark Connect URL sc://host:port, got {remote!r}"
            )
        if engine == "spark" and remote is None:
            raise ConfigError(
                "LAKEHOUSE_ENGINE=spark needs LAKEHOUSE_SPARK_REMOTE=sc://host:port "
                "(`lakehouse spark start` prints one)"
            )
        return cls(
            home=home,
            landing_uri=as_uri(env.get("LAKEHOUSE_LANDING_URI") or f"{home}/landing"),
            warehouse_uri=as_uri(env.get("LAKEHOUSE_WAREHOUSE_URI") or f"{home}/warehouse"),
            catalog_uri=catalog,
            table_format=table_format,  # type: ignore[arg-type]
            scan_interval_seconds=interval,
            distance_method=method,  # type: ignore[arg-type]
            timezone=timezone,
            daily_start_date=start,
            query_timeout_seconds=timeout,
            query_memory_limit=memory,
            query_max_rows=int(raw_rows),
            query_max_bytes=max_bytes,
            s3=S3Credentials.from_env(env),
            engine=engine,
            spark_remote=remote,
        )

    @classmethod
    def for_home(cls, home: str | Path, **overrides: object) -> LakehouseSettings:
        """Embedded defaults under one folder (tests, demos), other env settings ignored."""
        base = cls.from_env({"LAKEHOUSE_HOME": str(home)})
        return replace(base, **overrides)  # type: ignore[arg-type]
