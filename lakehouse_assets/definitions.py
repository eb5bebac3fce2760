"""Assemble the code location: nothing here but wiring (see assets.py, jobs.py, sensors/)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from lakehouse.core.ids import TableId
from lakehouse.core.partitioning import Partitioning
from lakehouse.core.settings import LakehouseSettings
from lakehouse.facade import Lakehouse
from lakehouse.landing.layout import IDENTIFIER, Layout
from lakehouse.landing.scan import case_conflicts
from lakehouse.landing.tasks import ScanTask, all_tasks, task_store
from lakehouse.models.graph import ModelGraph
from lakehouse.models.parser import MODELS_ROOT, load_models
from lakehouse.storage.object_store import ObjectStore
from lakehouse_assets.assets import asset_key, build_model_asset, build_ods_asset
from lakehouse_assets.jobs import namespace_job
from lakehouse_assets.maintenance import (
    DEFAULT_FLOOR,
    HistoryFloor,
    build_maintenance_job,
    build_maintenance_schedule,
)
from lakehouse_assets.ml import build_ml_assets
from lakehouse_assets.partitions import LakehousePartitions
from resources.lakehouse import LakehouseResource
from sensors.datascan import build_datascan_sensor
from sensors.reconcile import NO_REJECTED_FILES, build_reconcile_job


def discovered_tables(
    settings: LakehouseSettings, declared: set[TableId], tasks: list[ScanTask] | None = None
) -> dict[TableId, Layout]:
    """Tables DataScan registered before, plus table folders already under each task's location,
    with their layout (the one registered, else what the folder holds).

    Names are case-insensitive: a folder spelled like a declared or catalogued table (or namespace)
    in another case, or two new folders that differ only in case, are no tables of their own
    (DataScan reports them as conflicts). A task whose location cannot be listed now (its
    connection fails) contributes its registered tables only; its sensor reports the error."""
    lh = Lakehouse(settings)
    claims = lh.catalog.table_claims()

    def registered_layout(table: TableId) -> Layout:
        claim = claims.get((table.namespace, table.name))
        return Layout(claim.layout) if claim else Layout.HOURLY

    registered = {
        TableId(r.namespace, r.name): registered_layout(TableId(r.namespace, r.name))
        for r in lh.table_records()
        if r.origin == "datascan"
    }
    folders: dict[TableId, Layout] = {}
    for task in all_tasks(lh) if tasks is None else tasks:
        try:
            store = task_store(lh, task)
            if task.is_default:
                found = [
                    (TableId(namespace, t), f"{namespace}/{t}")
                    for namespace in store.list_dirs()
                    if IDENTIFIER.match(namespace)
                    for t in store.list_dirs(namespace)
                    if IDENTIFIER.match(t)
                ]
            else:
                assert task.namespace is not None
                found = [
                    (TableId(task.namespace, task.table_prefix + f), f)
                    for f in store.list_dirs()
                    if IDENTIFIER.match(f)
                ]
            for table, folder in found:
                if table not in folders:
                    folders[table] = guess_layout(store, folder)
        except Exception:  # noqa: BLE001 - the code location must load; the task's sensor fails, naming it
            continue
    twins = case_conflicts(lh, set(folders), declared)
    return {**{t: layout for t, layout in folders.items() if t not in twins}, **registered}


def guess_layout(store: ObjectStore, folder: str) -> Layout:
    """What a table folder holds before it is registered, by the precedence DataScan applies
    (lakehouse/landing/layout.py): dt=/hh= folders, else dt= folders, else flat files."""
    days = [d for d in store.list_dirs(folder) if d.startswith("dt=")]
    if not days:
        return Layout.FLAT
    hourly = any(h.startswith("hh=") for d in days for h in store.list_dirs(f"{folder}/{d}"))
    return Layout.HOURLY if hourly else Layout.DAILY


def build_definitions(
    settings: LakehouseSettings | None = None,
    models_root: Path = MODELS_ROOT,
    maintenance_floor: HistoryFloor = DEFAULT_FLOOR,
) -> dg.Definitions:
    """The code location for these settings (the LAKEHOUSE_* environment when none are given).

    The settings are the resource's and cannot be changed by run config; `maintenance_floor` is the
    least history a `maintenance` run keeps (its run config may keep more, never less)."""
    explicit = settings is not None
    settings = settings or LakehouseSettings.from_env()
    models = load_models(models_root)
    graph = ModelGraph(models)
    model_tables = {m.table for m in models}
    sources = {d for m in models for d in m.deps if d not in model_tables}
    tasks = all_tasks(Lakehouse(settings))
    layouts = discovered_tables(settings, model_tables | sources, tasks)
    ods_tables = sorted(sources | (set(layouts) - model_tables), key=str)
    namespaces = sorted({t.namespace for t in [*ods_tables, *model_tables]})
    partitions = LakehousePartitions(namespaces, settings.daily_start_date)

    def ods_partitioning(table: TableId) -> Partitioning:
        return layouts.get(table, Layout.HOURLY).partitioning

    def ods_partitions(table: TableId) -> dg.PartitionsDefinition:
        found = partitions.of(ods_partitioning(table), table.namespace)
        assert found is not None  # an ODS table is hourly or daily
        return found

    assets = [build_ods_asset(t, ods_partitions(t), settings, graph) for t in ods_tables]
    assets += [
        build_model_asset(m, partitions.of(m.partitioning, m.table.namespace), settings, graph)
        for m in models
    ]
    assets += build_ml_assets()  # ml/: models trained on the tables, each with its beats_baseline check

    def keys(ns: str, kind: Partitioning) -> list[dg.AssetKey]:
        ods = [asset_key(t) for t in ods_tables if t.namespace == ns and ods_partitioning(t) is kind]
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
    datascans = [
        build_datascan_sensor(
            task=task,
            graph=graph,
            declared=declared,
            partitions_defs=partitions.hourly,
            job=reconcile,
            loaded=frozenset(t.name for t in tasks if not t.is_default),
        )
        for task in tasks
    ]
    maintenance = build_maintenance_job(
        [asset_key(t) for t in [*ods_tables, *model_tables]], floor=maintenance_floor
    )
    resource = LakehouseResource.from_settings(settings) if explicit else LakehouseResource()
    return dg.Definitions(
        assets=assets,
        jobs=[*jobs.values(), reconcile, maintenance],
        schedules=[build_maintenance_schedule(maintenance)],  # daily table maintenance, on by default
        sensors=datascans,  # one per DataScan task, each on its own cycle
        resources={"lakehouse": resource},
        executor=dg.in_process_executor,  # one process per run: a partition's steps share it (STACK notes)
    )


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions()
