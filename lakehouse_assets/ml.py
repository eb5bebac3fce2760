"""The ML assets: one per model of lakehouse/ml/train.py, under the key prefix `ml/` (group `ml`),
each with an asset check that fails when the model does not beat its naive baseline.

Training is all in `lakehouse.ml.train` (inputs read through the facade's governed reads of pinned
snapshots, the artifact saved in the warehouse); these functions only say how it looks to Dagster:
keys, deps on the input tables' assets, metadata (metrics next to the baseline's, as numbers for
the Plots tab; the snapshot ids read; where the artifact is) and the check.
"""

# No `from __future__ import annotations`: Dagster reads the TrainConfig annotation at definition.
from collections.abc import Iterator
from typing import Any

import dagster as dg

from lakehouse.ml import train as ml
from resources.lakehouse import LakehouseResource

GROUP = "ml"
BEATS_BASELINE = "beats_baseline"


class TrainConfig(dg.Config):
    seed: int = ml.DEFAULT_SEED
    """The seed of the split and of torch: the same snapshots and seed give the same metrics."""


def ml_key(spec: ml.ModelSpec) -> dg.AssetKey:
    return dg.AssetKey([GROUP, spec.name])


def train_metadata(result: ml.TrainResult) -> dict[str, Any]:
    spec = result.spec
    return {
        **{name: float(value) for name, value in result.metrics.items()},
        **{f"baseline_{name}": float(value) for name, value in result.baseline.items()},
        "primary_metric": spec.primary_metric,
        "beats_baseline": result.beats_baseline,
        "snapshot_ids": dg.MetadataValue.json(result.snapshots),
        "artifact": dg.MetadataValue.path(result.artifact_uri),
        "model_version": result.version,
        "seed": result.seed,
        "rows_train": result.rows_train,
        "rows_test": result.rows_test,
        "features": dg.MetadataValue.json(result.features),
        "read_as": result.read_as,
        "device": result.device,
    }


def check_result(result: ml.TrainResult, key: dg.AssetKey) -> dg.AssetCheckResult:
    metric = result.spec.primary_metric
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=BEATS_BASELINE,
        passed=result.beats_baseline,
        metadata={
            "metric": metric,
            "model": float(result.metrics[metric]),
            "baseline": float(result.baseline[metric]),
            "lower_is_better": result.spec.lower_is_better,
        },
    )


def build_ml_asset(spec: ml.ModelSpec) -> dg.AssetsDefinition:
    key = ml_key(spec)
    better = "lower" if spec.lower_is_better else "higher"

    @dg.asset(
        key=key,
        deps=[INPUTS_KEY],
        group_name=GROUP,
        kinds={"pytorch"},
        description=spec.description,
        code_version=ml.code_version(),
        check_specs=[
            dg.AssetCheckSpec(
                BEATS_BASELINE,
                asset=key,
                description=f"The model's {spec.primary_metric} on the held-out split is {better} "
                "than the naive baseline's",
            )
        ],
        metadata={
            "inputs": dg.MetadataValue.json([str(t) for t in spec.tables]),
            "read_as": spec.user or "owner",
            "task": spec.task,
            "target": spec.target,
        },
    )
    def _model(
        context: dg.AssetExecutionContext, config: TrainConfig, lakehouse: LakehouseResource
    ) -> Iterator[Any]:
        result = ml.train(lakehouse.open(), spec, seed=config.seed, log=context.log.info)
        context.log.info(
            f"{spec.name}: {spec.primary_metric} {result.metrics[spec.primary_metric]:.4f} "
            f"(baseline {result.baseline[spec.primary_metric]:.4f}), saved at {result.artifact_uri}"
        )
        yield dg.MaterializeResult(metadata=train_metadata(result))
        yield check_result(result, key)

    return _model


INPUTS_KEY = dg.AssetKey([GROUP, ""])
"""`ml/`: the training inputs. Dagster reads `--select 'ml/*'` as this key and everything downstream
of it, so every model depends on it and that selection materializes the whole group.

The group does not depend on the pipelines' assets in the asset graph (the tables it reads are in
its metadata): a hand run of a pipeline selected with its downstream (`iov/ods_vehicle_gps_raw*`)
must not train models, which read other namespaces and need the policy's users."""


def build_inputs_asset(specs: list[ml.ModelSpec]) -> dg.AssetsDefinition:
    tables = sorted({t for spec in specs for t in spec.tables}, key=str)

    @dg.asset(
        key=INPUTS_KEY,
        group_name=GROUP,
        metadata={"inputs": dg.MetadataValue.json([str(t) for t in tables])},
        description="The tables the ml/ models train on, with their current snapshot ids (each model "
        "records the snapshots it read itself). Upstream of every model: `dagster asset materialize "
        "--select 'ml/*'` trains them all.",
    )
    def _inputs(context: dg.AssetExecutionContext, lakehouse: LakehouseResource) -> dg.MaterializeResult:
        lh = lakehouse.open()
        snapshots = {str(t): lh.tables.pinned(lh.canonical(t.namespace, t.name)).version for t in tables}
        return dg.MaterializeResult(metadata={"snapshot_ids": dg.MetadataValue.json(snapshots)})

    return _inputs


def build_ml_assets() -> list[dg.AssetsDefinition]:
    specs = list(ml.MODELS.values())
    return [build_inputs_asset(specs), *(build_ml_asset(spec) for spec in specs)]
