"""The lakehouse as a Dagster resource: settings in, the `Lakehouse` facade out."""

from __future__ import annotations

import dagster as dg

from lakehouse.core.settings import LakehouseSettings
from lakehouse.facade import Lakehouse


class LakehouseResource(dg.ConfigurableResource):
    """The lakehouse for Dagster. Unset fields come from the LAKEHOUSE_* environment at run time.

    S3 credentials are always read from the standard AWS_* variables when a run starts, so they
    never enter run config, metadata or logs."""

    home: str | None = None
    """Overrides LAKEHOUSE_HOME."""
    landing_uri: str | None = None
    """Overrides LAKEHOUSE_LANDING_URI."""
    warehouse_uri: str | None = None
    """Overrides LAKEHOUSE_WAREHOUSE_URI."""
    catalog_uri: str | None = None
    """Overrides LAKEHOUSE_CATALOG_URI."""
    table_format: str | None = None
    """Overrides LAKEHOUSE_TABLE_FORMAT (iceberg | delta)."""
    distance_method: str | None = None
    """Overrides LAKEHOUSE_DISTANCE_METHOD (haversine | planar)."""
    timezone: str | None = None
    """Overrides LAKEHOUSE_TIMEZONE (IANA zone of event times)."""
    daily_start_date: str | None = None
    """Overrides LAKEHOUSE_DAILY_START_DATE."""
    engine: str | None = None
    """Overrides LAKEHOUSE_ENGINE (duckdb | spark): the engine SQL models run on."""
    spark_remote: str | None = None
    """Overrides LAKEHOUSE_SPARK_REMOTE (sc://host:port) for engine spark."""

    def settings(self) -> LakehouseSettings:
        import os

        env = dict(os.environ)
        overrides = {
            "LAKEHOUSE_HOME": self.home,
            "LAKEHOUSE_LANDING_URI": self.landing_uri,
            "LAKEHOUSE_WAREHOUSE_URI": self.warehouse_uri,
            "LAKEHOUSE_CATALOG_URI": self.catalog_uri,
            "LAKEHOUSE_TABLE_FORMAT": self.table_format,
            "LAKEHOUSE_DISTANCE_METHOD": self.distance_method,
            "LAKEHOUSE_TIMEZONE": self.timezone,
            "LAKEHOUSE_DAILY_START_DATE": self.daily_start_date,
            "LAKEHOUSE_ENGINE": self.engine,
            "LAKEHOUSE_SPARK_REMOTE": self.spark_remote,
        }
        env.update({name: value for name, value in overrides.items() if value})
        return LakehouseSettings.from_env(env)  # the same validation as the environment gets

    def open(self) -> Lakehouse:
        return Lakehouse(self.settings())

    @classmethod
    def from_settings(cls, settings: LakehouseSettings) -> LakehouseResource:
        return cls(
            home=settings.home,
            landing_uri=settings.landing_uri,
            warehouse_uri=settings.warehouse_uri,
            catalog_uri=settings.catalog_uri,
            table_format=settings.table_format,
            distance_method=settings.distance_method,
            timezone=settings.timezone,
            daily_start_date=settings.daily_start_date,
            engine=settings.engine,
            spark_remote=settings.spark_remote,
        )
