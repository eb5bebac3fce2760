"""What one partition of a model reads: each input narrowed to the partitions or days it needs.

A daily model reads days of its inputs by offset (`inputs: {t: {days: [0, 1, 7]}}`): of a daily
input its dt partitions, of an hourly input the rows of those days from any landing hour (through the
input's day index). It never reads history it does not need.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId
from lakehouse.core.partitioning import Partitioning, shift_day
from lakehouse.models.graph import ModelGraph
from lakehouse.models.spec import ModelError, SqlModel

if TYPE_CHECKING:
    from lakehouse.facade import Lakehouse


def model_params(lh: Lakehouse, partition: Mapping[str, str]) -> dict[str, Any]:
    return {
        **partition,
        "distance_method": lh.settings.distance_method,
        "timezone": lh.settings.timezone,
    }


def day_datasets(
    lh: Lakehouse,
    graph: ModelGraph,
    model: SqlModel,
    partition_keys: list[str],
    present: set[TableId] | None = None,
) -> dict[tuple[TableId, str], Any]:
    """(input, day) -> the rows of that day, for every day the given partitions of a daily model read.

    Daily inputs are partitioned by dt; hourly ones by their day index as well, so one scan plan per
    input finds exactly those days' files (never the rest of history), whichever landing hours they
    came in with."""
    found: dict[tuple[TableId, str], Any] = {}
    if model.partitioning is not Partitioning.DAILY:
        return found
    for dep in model.deps:
        kind = graph.partitioning(dep)
        column = (
            "dt"
            if kind is Partitioning.DAILY
            else graph.day_index(dep)
            if kind is Partitioning.HOURLY
            else None
        )
        if not column or not (lh.tables.exists(dep) if present is None else dep in present):
            continue
        offsets = model.input(dep).days
        days = sorted({shift_day(key, o) for key in partition_keys for o in offsets})
        for day, dataset in lh.tables.datasets_by_value(dep, column, days).items():
            found[(dep, day)] = dataset
    return found


def input_sources(
    lh: Lakehouse,
    graph: ModelGraph,
    model: SqlModel,
    partition: Mapping[str, str],
    days: Mapping[tuple[TableId, str], Any] | None = None,
    present: set[TableId] | None = None,
) -> dict[TableId | str, Any]:
    """Each input, narrowed to what this partition reads (never history it does not need).

    `days` (from day_datasets) and `present` (the inputs that exist) let a range of partitions plan
    each input once."""
    import pyarrow.dataset as pads

    if present is None:
        present = {d for d in model.deps if lh.tables.exists(d)}
    if model.partitioning is Partitioning.DAILY and days is None:
        days = day_datasets(lh, graph, model, [partition["dt"]], present)
    sources: dict[TableId | str, Any] = {}
    for dep in model.deps:
        kind = graph.partitioning(dep)
        if dep not in present:
            continue  # an unpartitioned model not built yet (run_model decides)
        if kind is Partitioning.NONE or model.partitioning is Partitioning.NONE:
            sources[dep] = lh.tables.dataset(dep)
        elif model.partitioning is Partitioning.HOURLY:
            sources[dep] = lh.tables.dataset(dep, partition)
        else:  # a daily model: the days it reads, by offset from its own day, of any landing hour
            assert days is not None
            parts = [days[(dep, shift_day(partition["dt"], o))] for o in model.input(dep).days]
            sources[dep] = parts[0] if len(parts) == 1 else pads.dataset(parts)
    return sources


def unbuilt_inputs(lh: Lakehouse, model: SqlModel, graph: ModelGraph) -> dict[TableId | str, Any]:
    """Inputs that are models not built yet read as empty (their declared columns and partition
    columns), never as an error: the reader records the input as absent, so its first build makes
    the reader stale and it is rebuilt with it (see reconcile.py). Any other missing input (a
    landing table) is refused. Returns the empty stand-ins."""
    import pyarrow as pa

    empty: dict[TableId | str, Any] = {}
    missing = []
    for dep in model.deps:
        if lh.tables.exists(dep):
            continue
        if dep in graph.models:
            built = graph.models[dep]
            schema = built.arrow_schema()
            for column in built.partitioned_by:
                if column not in schema.names:
                    schema = schema.append(pa.field(column, pa.string()))
            empty[dep] = schema.empty_table()
        else:
            missing.append(dep)
    if missing:
        raise ModelError(
            f"{model.path}: upstream table(s) {', '.join(map(str, missing))} do not exist yet; "
            "materialize them first (or wait for DataScan)"
        )
    return empty
