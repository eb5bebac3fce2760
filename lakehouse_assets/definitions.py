"""Assemble the code location: nothing here but wiring (see assets.py, jobs.py, sensors/)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from lakehouse.core.ids import TableId
from lakehouse.core.partitioning import Partitioning
from lakehouse.core.settings import LakehouseSettings
from lakehouse.facade import Lakehouse
from lakehouse.landing.layout import IDENTIFIER
from lakehouse.landing.scan import case_conflicts
from lakehouse.models.graph import ModelGraph
from lakehouse.models.parser import MODELS_ROOT, load_models
from lakehouse_assets.assets import asset_key, build_model_asset, build_ods_asset
from lakehouse_assets.jobs import namespace_job
from lakehouse_assets.maintenance import build_maintenance_job, build_maintenance_schedule
from lakehouse_assets.ml import build_ml_assets
from lakehouse_assets.partitions import LakehousePartitions
from resources.lakehouse import LakehouseResource
from sensors.datascan import build_datascan_sensor
from sensors.reconcile import NO_REJECTED_FILES, build_reconcile_job


def discovered_tables(settings: LakehouseSettings, declared: set[TableId]) -> set[TableId]:
    """Tables DataScan registered before, plus table folders already in the landing zone.

    Names are case-insensitive: a folder spelled like a declared or catalogued table (or namespace)
    in another case, or two new folders that differ only in case, are no tables of their own
    (DataScan reports them as conflicts)."""
    lh = Lakehouse(settings)
    registered = {TableId(r.namespace, r.name) for r in lh.table_records() if r.origin == "datascan"}
    folders = {
        TableId(namespace, t)
        for namespace in lh.landing.list_dirs()
        if IDENTIFIER.match(namespace)
        for t in lh.landing.list_dirs(namespace)
        if IDENTIFIER.match(t)
    }
    twins = case_conflicts(lh, folders, declared)
    return registered | {t for t in folders if t not in twins}


def build_definitions(
    settings: LakehouseSettings | None = None, models_root: Path = MODELS_ROOT
) -> dg.Definitions:
    """The code location for these settings (the LAKEHOUSE_* environment when none are given)."""
    explicit = settings is not None
    settings = settings or LakehouseSettings.from_env()
    models = load_models(models_root)
    graph = ModelGraph(models)
    model_tables = {m.table for m in models}
    sources = {d for m in models for d in m.deps if d not in model_tables}
    ods_tables = sorted(
        sources | (discovered_tables(settings, model_tables | sources) - model_tables), key=str
    )
    namespaces = sorted({t.namespace for t in [*ods_tables, *model_tables]})
    partitions = LakehousePartitions(namespaces, settings.daily_start_date)

    assets = [build_ods_asset(t, partitions.hourly[t.namespace], settings, graph) for t in ods_tables]
    assets += [
        build_model_asset(m, partitions.of(m.partitioning, m.table.namespace), settings, graph)
        for m in models
    ]
    assets += build_ml_assets()  # ml/: models trained on the tables, each with its beats_baseline check

    def keys(ns: str, kind: Partitioning) -> list[dg.AssetKey]:
        ods = [asset_key(t) for t in ods_tables if t.namespace == ns] if kind is Partitioning.HOURLY else []
        return ods + [
            asset_key(m.table) for m in models if m.table.namespace == ns and m.partitioning is kind
        ]

    jobs = {
        (ns, kind): namespace_job(ns, kind, keys(ns, kind), partitions.of(kind, ns))
        for ns in namespaces
        for kind in Partitioning
        if kind is Partitioning.HOURLY or keys(ns, kind)
    }
    declared = frozenset(model_tables | sources)
    checks = {t: {NO_REJECTED_FILES} for t in ods_tables} | {
        m.table: {c.name for c in m.checks} for m in models
    }
    hourly_names = {ns: d.name for ns, d in partitions.hourly.items() if d.name}
    reconcile = build_reconcile_job(graph, declared, checks, hourly_names)
    datascan = build_datascan_sensor(
        interval_seconds=settings.scan_interval_seconds,
        graph=graph,
        declared=declared,
        partitions_defs=partitions.hourly,
        job=reconcile,
    )
    maintenance = build_maintenance_job([asset_key(t) for t in [*ods_tables, *model_tables]])
    resource = LakehouseResource.from_settings(settings) if explicit else LakehouseResource()
    return dg.Definitions(
        assets=assets,
        jobs=[*jobs.values(), reconcile, maintenance],
        schedules=[build_maintenance_schedule(maintenance)],  # daily table maintenance, on by default
        sensors=[datascan],
        resources={"lakehouse": resource},
        executor=dg.in_process_executor,  # one process per run: a partition's steps share it (STACK notes)
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
