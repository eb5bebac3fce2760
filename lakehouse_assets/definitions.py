"""Assemble the code location: nothing here but wiring (see factory.py, models.py, sensors/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg

from lakehouse_assets.factory import (
    asset_key,
    build_model_asset,
    build_ods_asset,
    daily_partitions,
    datascan_ingest_job,
    hourly_partitions,
)
from lakehouse_assets.models import MODELS_ROOT, ModelGraph, SqlModel, load_models
from lakehouse_assets.oneshot import AUTOMATION_SENSOR
from resources.catalog import CatalogDB
from resources.lakehouse import LakehouseResource
from resources.object_store import open_object_store
from resources.settings import LakehouseSettings
from resources.table_store import TableId
from sensors.layout import IDENTIFIER
from sensors.propagate import build_propagate_sensor, job_for
from sensors.sensor import build_datascan_sensor, pipeline_job_name


def discovered_tables(settings: LakehouseSettings) -> set[TableId]:
    """Tables DataScan registered before, plus table folders already in the landing zone."""
    found = {
        TableId(r.namespace, r.name)
        for r in CatalogDB(settings.catalog_uri).list_tables()
        if r.origin == "datascan"
    }
    landing = open_object_store(settings.landing_uri, settings.s3)
    for namespace in landing.list_dirs():
        if IDENTIFIER.match(namespace):
            found |= {TableId(namespace, t) for t in landing.list_dirs(namespace) if IDENTIFIER.match(t)}
    return found


def build_definitions(
    settings: LakehouseSettings | None = None, models_root: Path = MODELS_ROOT
) -> dg.Definitions:
    explicit = settings is not None
    settings = settings or LakehouseSettings.from_env()
    models = load_models(models_root)
    graph = ModelGraph(models)
    model_tables = {m.table for m in models}
    sources = {d for m in models for d in m.deps if d not in model_tables}
    ods_tables = sorted(sources | (discovered_tables(settings) - model_tables), key=str)
    namespaces = sorted({t.namespace for t in [*ods_tables, *model_tables]})
    hourly = {ns: hourly_partitions(ns) for ns in namespaces}
    daily = daily_partitions(settings.daily_start_date)

    def partitions_def(model: SqlModel) -> dg.PartitionsDefinition | None:
        return {"hourly": hourly[model.table.namespace], "daily": daily, "none": None}[model.partitioning]

    assets = [build_ods_asset(t, hourly[t.namespace], settings.table_format, graph) for t in ods_tables]
    assets += [build_model_asset(m, partitions_def(m), settings.table_format, graph) for m in models]

    def keys(ns: str, kind: str) -> list[dg.AssetKey]:
        return [asset_key(t) for t in ods_tables if t.namespace == ns and kind == "hourly"] + [
            asset_key(m.table) for m in models if m.table.namespace == ns and m.partitioning == kind
        ]

    jobs = []
    for ns in namespaces:
        jobs.append(
            dg.define_asset_job(
                pipeline_job_name(ns),
                selection=dg.AssetSelection.keys(*keys(ns, "hourly")),
                partitions_def=hourly[ns],
                description=f"Load and rebuild one hourly partition of namespace {ns}.",
            )
        )
        if keys(ns, "daily"):
            jobs.append(
                dg.define_asset_job(
                    job_for(ns, "daily"),
                    selection=dg.AssetSelection.keys(*keys(ns, "daily")),
                    partitions_def=daily,
                    description=f"Rebuild days of namespace {ns} (e.g. event dates late data touched).",
                )
            )
        if keys(ns, "none"):
            jobs.append(
                dg.define_asset_job(
                    job_for(ns, "none"),
                    selection=dg.AssetSelection.keys(*keys(ns, "none")),
                    description=f"Rebuild the unpartitioned tables of namespace {ns}.",
                )
            )
    datascan = build_datascan_sensor(
        interval_seconds=settings.scan_interval_seconds,
        known_tables={t: asset_key(t) for t in ods_tables},
        downstream={t: [asset_key(m.table) for m in graph.datascan_closure(t)] for t in ods_tables},
        partitions_defs=hourly,
        jobs=[j for j in jobs if j.name.endswith("_pipeline")],
        ingest_job=datascan_ingest_job,
    )
    propagate = build_propagate_sensor(
        interval_seconds=settings.scan_interval_seconds,
        partitioning=graph.partitioning,
        rebuilds=lambda t: [asset_key(t), *[asset_key(m.table) for m in graph.hourly_closure(t)]],
        hourly_defs=hourly,
        daily_start=settings.daily_start_date,
        jobs=jobs,
    )
    sensors: list[Any] = [datascan, propagate]
    automated = [asset_key(m.table) for m in models if graph.automated(m)]
    if automated:
        sensors.append(
            dg.AutomationConditionSensorDefinition(
                AUTOMATION_SENSOR,
                target=dg.AssetSelection.keys(*automated),
                default_status=dg.DefaultSensorStatus.RUNNING,
                minimum_interval_seconds=min(settings.scan_interval_seconds, 30),
                description="Rebuilds days whose input days changed (retention reads d, d+1, d+7).",
            )
        )
    resource = LakehouseResource.from_settings(settings) if explicit else LakehouseResource()
    return dg.Definitions(
        assets=assets,
        jobs=[*jobs, datascan_ingest_job],
        sensors=sensors,
        resources={"lakehouse": resource},
        executor=dg.in_process_executor,  # one process per run: a partition's steps share it (STACK notes)
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
