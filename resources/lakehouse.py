"""The lakehouse as a Dagster resource: settings in, the `Lakehouse` facade out.

Where the lakehouse is (its home, landing zone, warehouse, catalog database, Spark cluster) and how
it builds (table format, distance method, time zone, first day, engine) is the deployment's: the
LAKEHOUSE_* environment of the code location, or what the code location's own code passes
(`LakehouseResource.from_settings`, tests and embedded use). None of it is Dagster config: a run
launched from the webserver (its launchpad, or a `launchRun` GraphQL mutation anyone who reaches the
webserver can send) that sets any of it is refused before the run exists, with Dagster's error
naming the field (`Received unexpected config entry "catalog_uri" at path
root:resources:lakehouse:config`). Otherwise run config could point the catalog at another server
and libpq would hand that server PGPASSWORD.
"""

# No `from __future__ import annotations`: Dagster reads the resource field's annotation at definition.
import os
from dataclasses import asdict, dataclass, fields
from typing import Any

import dagster as dg

from lakehouse.core.settings import LakehouseSettings
from lakehouse.facade import Lakehouse


@dataclass(frozen=True)
class Deployment:
    """What the code location fixes, over its LAKEHOUSE_* environment (None: the environment's)."""

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

    def variables(self) -> dict[str, str]:
        """The LAKEHOUSE_* variables this deployment sets."""
        return {f"LAKEHOUSE_{name.upper()}": value for name, value in asdict(self).items() if value}


DEPLOYMENT_FIELDS = frozenset(f.name for f in fields(Deployment))


class LakehouseResource(dg.ConfigurableResource):
    """The lakehouse. Its settings come from the code location (its LAKEHOUSE_* environment, or the
    code that builds it), never from run config: a run that sets any of them is refused.

    S3 credentials are always read from the standard AWS_* variables when a run starts, so they
    never enter run config, metadata or logs."""

    deployment: dg.ResourceDependency[Deployment]
    """A nested value, not config: Dagster gives the resource an empty config schema."""

    def __init__(self, deployment: "Deployment | None" = None, **values: Any) -> None:
        """`LakehouseResource(home=..., catalog_uri=...)`: the deployment's values, by field name."""
        unknown = sorted(set(values) - DEPLOYMENT_FIELDS)
        if unknown:
            raise TypeError(f"LakehouseResource has no setting {', '.join(unknown)}")
        if deployment is not None and values:
            raise TypeError("pass either a Deployment or its fields, not both")
        fixed: dict[str, Any] = {"deployment": deployment or Deployment(**values)}
        super().__init__(**fixed)

    def settings(self) -> LakehouseSettings:
        env = {**os.environ, **self.deployment.variables()}
        return LakehouseSettings.from_env(env)  # the same validation as the environment gets

    def open(self) -> Lakehouse:
        return Lakehouse(self.settings())

    @classmethod
    def from_settings(cls, settings: LakehouseSettings) -> "LakehouseResource":
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
