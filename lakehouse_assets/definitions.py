"""Assemble the code location: nothing here but wiring (see factory.py, models.py, sensors/)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import dagster as dg

from lakehouse_assets.factory import (
    asset_key,
    build_model_asset,
    build_ods_asset,
    datascan_ingest_job,
    hourly_partitions,
)
from lakehouse_assets.models import MODELS_ROOT, SqlModel, load_models
from resources.catalog import CatalogDB
from resources.lakehouse import LakehouseResource
from resources.object_store import open_object_store
from resources.settings import LakehouseSettings
from resources.table_store import TableId
from sensors.layout import IDENTIFIER
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


def downstream_models(models: list[SqlModel]) -> dict[TableId, list[dg.AssetKey]]:
    """table -> every model that reads it, directly or not, in build order."""
    readers: dict[TableId, list[SqlModel]] = defaultdict(list)
    for model in models:
        for dep in model.deps:
            readers[dep].append(model)
    closure: dict[TableId, list[dg.AssetKey]] = {}
    for table in list(readers):
        seen: set[TableId] = set()
        stack = [table]
        while stack:
            for reader in readers.get(stack.pop(), []):
                if reader.table not in seen:
                    seen.add(reader.table)
                    stack.append(reader.table)
        closure[table] = [asset_key(m.table) for m in models if m.table in seen]
    return closure


def build_definitions(
    settings: LakehouseSettings | None = None, models_root: Path = MODELS_ROOT
) -> dg.Definitions:
    explicit = settings is not None
    settings = settings or LakehouseSettings.from_env()
    models = load_models(models_root)
    model_tables = {m.table for m in models}
    sources = {d for m in models for d in m.deps if d not in model_tables}
    ods_tables = sorted(sources | (discovered_tables(settings) - model_tables), key=str)
    namespaces = sorted({t.namespace for t in [*ods_tables, *model_tables]})
    partitions = {ns: hourly_partitions(ns) for ns in namespaces}

    assets = [build_ods_asset(t, partitions[t.namespace], settings.table_format) for t in ods_tables]
    assets += [build_model_asset(m, partitions[m.table.namespace], settings.table_format) for m in models]
    jobs = [
        dg.define_asset_job(
            pipeline_job_name(ns),
            selection=dg.AssetSelection.keys(*[a.key for a in assets if a.key.path[0] == ns]),
            partitions_def=partitions[ns],
            description=f"Load and rebuild one hourly partition of namespace {ns}.",
        )
        for ns in namespaces
    ]
    sensor = build_datascan_sensor(
        interval_seconds=settings.scan_interval_seconds,
        known_tables={t: asset_key(t) for t in ods_tables},
        downstream=downstream_models(models),
        partitions_defs=partitions,
        jobs=jobs,
        ingest_job=datascan_ingest_job,
    )
    resource = LakehouseResource.from_settings(settings) if explicit else LakehouseResource()
    return dg.Definitions(
        assets=assets,
        jobs=[*jobs, datascan_ingest_job],
        sensors=[sensor],
        resources={"lakehouse": resource},
        executor=dg.in_process_executor,  # one process per run: a partition's steps share it (STACK notes)
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
