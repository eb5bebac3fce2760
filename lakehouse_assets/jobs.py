"""Jobs: per namespace one job per partitioning, and the loader for tables found after load.

Job names are made here and nowhere else; sensors ask for them by (namespace, partitioning).
"""

from typing import Any

import dagster as dg

from lakehouse.core.ids import TableId
from lakehouse.core.partitioning import Partitioning
from lakehouse.landing.ods import ingest_partition
from lakehouse_assets.assets import asset_key
from lakehouse_assets.metadata import ingest_metadata
from resources.lakehouse import LakehouseResource

_SUFFIX = {Partitioning.HOURLY: "pipeline", Partitioning.DAILY: "daily", Partitioning.NONE: "tables"}
_DESCRIPTION = {
    Partitioning.HOURLY: "Load and rebuild one hourly partition of namespace {ns}.",
    Partitioning.DAILY: "Rebuild days of namespace {ns} (e.g. event dates late data touched).",
    Partitioning.NONE: "Rebuild the unpartitioned tables of namespace {ns}.",
}


def job_name(namespace: str, partitioning: Partitioning) -> str:
    """`<ns>_pipeline` (hourly: DataScan's loads), `<ns>_daily`, `<ns>_tables` (unpartitioned)."""
    return f"{namespace}_{_SUFFIX[partitioning]}"


def namespace_job(
    namespace: str,
    partitioning: Partitioning,
    keys: list[dg.AssetKey],
    partitions_def: dg.PartitionsDefinition | None,
) -> Any:
    return dg.define_asset_job(
        job_name(namespace, partitioning),
        selection=dg.AssetSelection.keys(*keys),
        partitions_def=partitions_def,
        description=_DESCRIPTION[partitioning].format(ns=namespace),
    )


class IngestConfig(dg.Config):
    """Which table partition to load (for tables DataScan found after the definitions were loaded)."""

    namespace: str
    """Catalog namespace (the landing folder's first level)."""
    table: str
    """Table name (the landing folder's second level)."""
    partition_key: str
    """YYYY-MM-DD-HH."""


@dg.op(description="Load one partition of a newly discovered landing table into its ODS table.")
def ingest_new_table_partition(
    context: dg.OpExecutionContext, config: IngestConfig, lakehouse: LakehouseResource
) -> None:
    table = TableId(config.namespace, config.table)
    report = ingest_partition(lakehouse.open(), table, config.partition_key)
    context.log_event(
        dg.AssetMaterialization(
            asset_key=asset_key(table), partition=config.partition_key, metadata=ingest_metadata(report)
        )
    )


@dg.job(
    description="DataScan's loader for tables that appeared after the code location was loaded; "
    "they get their own asset on the next reload."
)
def datascan_ingest_job() -> None:
    ingest_new_table_partition()
