"""Jobs to materialize by hand: per namespace one job per partitioning (the UI's launchpad, backfills).

The sensors launch none of them: they launch the reconcile job (sensors/reconcile.py).
"""

from typing import Any

import dagster as dg

from lakehouse.core.partitioning import Partitioning

_SUFFIX = {Partitioning.HOURLY: "pipeline", Partitioning.DAILY: "daily", Partitioning.NONE: "tables"}
_DESCRIPTION = {
    Partitioning.HOURLY: "Load and rebuild hourly partitions of namespace {ns} by hand.",
    Partitioning.DAILY: "Rebuild days of namespace {ns} (e.g. event dates late data touched).",
    Partitioning.NONE: "Rebuild the unpartitioned tables of namespace {ns}.",
}


def job_name(namespace: str, partitioning: Partitioning) -> str:
    """`<ns>_pipeline` (hourly), `<ns>_daily`, `<ns>_tables` (unpartitioned)."""
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
