"""Training the lakehouse's models: inputs read through the facade's governed reads of pinned
snapshots, a deterministic split, a small torch model, metrics next to a naive baseline, and a
versioned artifact in the warehouse. No Dagster here (lakehouse_assets/ml.py says how it looks there).

Two models:

- `vehicle_speed`: the hourly average speed of a vehicle from its hourly mileage and the hour of day,
  read from iov.ads_vehicle_hourly_stat as the third party (RAM$alice: the vin is masked, and used
  for nothing but the split). A small MLP; baseline: the training mean. Primary metric: RMSE.
- `game_d7_churn`: of the players active on a day, who is not active again seven days later (the
  seed's D7 retention, inverted), from the day's and the previous week's activity in
  game_db.dws_user_activity_daily. Logistic regression; baseline: the training base rate. Primary
  metric: log loss (AUC and accuracy reported too).

The same snapshots and seed give the same metrics: the rows are sorted before training, the split is
a hash of a row key and the seed, and torch runs seeded, deterministic and single-threaded. torch is
imported inside functions only, so importing this module (at code-location load) stays cheap.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId
from lakehouse.ml.features import (
    GAME_TABLE,
    TEST_FRACTION,
    VEHICLE_TABLE,
    NotEnoughData,
    churn_frame,
    split,
    vehicle_frame,
)
from lakehouse.ml.metrics import binary_metrics, regression_metrics

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa
    import torch

    from lakehouse.facade import Lakehouse

DEFAULT_SEED = 7

VEHICLE_USER = "RAM$alice"
"""The vehicle model is trained as the third party, on what it may see (the vin masked)."""
GAME_USER: str | None = None
"""No governed role reads the game tables yet: the churn model reads as the owner."""


@dataclass(frozen=True)
class ModelSpec:
    """What a model is: its inputs, who reads them, its task and its hyperparameters."""

    name: str
    task: str  # "regression" | "binary"
    target: str
    tables: tuple[TableId, ...]
    user: str | None
    primary_metric: str
    hidden: int  # 0: a linear model (linear or logistic regression)
    epochs: int
    lr: float
    weight_decay: float
    description: str

    @property
    def lower_is_better(self) -> bool:
        return self.primary_metric in {"rmse", "mae", "log_loss", "brier"}


VEHICLE_SPEED = ModelSpec(
    name="vehicle_speed",
    task="regression",
    target="avg_speed",
    tables=(VEHICLE_TABLE,),
    user=VEHICLE_USER,
    primary_metric="rmse",
    hidden=16,
    epochs=400,
    lr=0.02,
    weight_decay=1e-4,
    description="Hourly average speed (km/h) of a vehicle from its hourly mileage and the hour of day, "
    "trained as RAM$alice (third party) on iov.ads_vehicle_hourly_stat with the vin masked.",
)
GAME_D7_CHURN = ModelSpec(
    name="game_d7_churn",
    task="binary",
    target="churned_d7",
    tables=(GAME_TABLE,),
    user=GAME_USER,
    primary_metric="log_loss",
    hidden=0,
    epochs=400,
    lr=0.05,
    weight_decay=1e-4,
    description="D7 churn: of the players active on day d, who is not active on day d+7, from the day's "
    "and the previous week's activity (game_db.dws_user_activity_daily).",
)
MODELS = {m.name: m for m in (VEHICLE_SPEED, GAME_D7_CHURN)}


@dataclass(frozen=True)
class TrainResult:
    spec: ModelSpec
    seed: int
    snapshots: dict[str, str | None]
    """Each input table (namespace.table) -> the snapshot id read."""
    metrics: dict[str, float]
    baseline: dict[str, float]
    rows_train: int
    rows_test: int
    features: list[str]
    version: str
    artifact_uri: str
    device: str
    read_as: str

    @property
    def beats_baseline(self) -> bool:
        model, base = self.metrics[self.spec.primary_metric], self.baseline[self.spec.primary_metric]
        return model < base if self.spec.lower_is_better else model > base


# --- reading ---------------------------------------------------------------------------------------


def read_pinned(
    lh: Lakehouse,
    table: TableId,
    user: str | None,
    columns: list[str] | None = None,
    pinned_by: str | None = None,
    new_pins: list[tuple[TableId, str]] | None = None,
) -> tuple[str | None, pa.Table]:
    """Pin the table's current snapshot, then read exactly that snapshot through the facade's
    governed read (grants, masks, audit) as `user` (None: the owner). Returns (snapshot id, rows).

    With `pinned_by` the snapshot is also pinned durably, before it is read (lakehouse_snapshot_pins:
    table maintenance and snapshot expiry never remove it); pins made now are added to `new_pins`."""
    ident = lh.canonical(table.namespace, table.name)
    if not lh.tables.exists(ident):
        raise NotEnoughData(f"table {ident} does not exist yet (build it first)")
    version = lh.tables.pinned(ident).version
    if pinned_by is not None and version is not None:
        new = lh.catalog.pin_snapshot(ident.namespace, ident.name, version, pinned_by)
        if new and new_pins is not None:
            new_pins.append((ident, version))
    return version, lh.read_table(ident, user=user, columns=columns, snapshot=version)


# --- the split, the model, the metrics ------------------------------------------------------------


@contextmanager
def deterministic_torch(seed: int) -> Iterator[Any]:
    """Seeded, deterministic, single-threaded torch for the block (settings restored after)."""
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS on a GPU
    threads, algorithms = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield torch
    finally:
        torch.use_deterministic_algorithms(algorithms)
        torch.set_num_threads(threads)


def build_module(n_in: int, hidden: int) -> torch.nn.Module:
    import torch

    if hidden <= 0:
        return torch.nn.Linear(n_in, 1)
    return torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))


def fit(spec: ModelSpec, x: np.ndarray, y: np.ndarray, seed: int, device: str) -> torch.nn.Module:
    """Full-batch Adam for a fixed number of epochs (no shuffling, so no order to vary)."""
    with deterministic_torch(seed) as torch:
        module = build_module(x.shape[1], spec.hidden).to(device)
        xs = torch.tensor(x, dtype=torch.float32, device=device)
        ys = torch.tensor(y, dtype=torch.float32, device=device).reshape(-1, 1)
        loss_fn = torch.nn.MSELoss() if spec.task == "regression" else torch.nn.BCEWithLogitsLoss()
        optimizer = torch.optim.Adam(module.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
        module.train()
        for _ in range(spec.epochs):
            optimizer.zero_grad()
            loss = loss_fn(module(xs), ys)
            loss.backward()
            optimizer.step()
        module.eval()
        return module


def predict(module: torch.nn.Module, x: np.ndarray, device: str) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = module(torch.tensor(x, dtype=torch.float32, device=device)).reshape(-1)
    return out.double().cpu().numpy()


# --- versions and artifacts -----------------------------------------------------------------------


@cache
def code_version() -> str:
    """A digest of the training code's source (this module, features.py, metrics.py): a change to it
    is a new model version."""
    from lakehouse.ml import features, metrics

    digest = hashlib.sha256(Path(__file__).read_bytes())
    for module in (features, metrics):
        digest.update(Path(module.__file__ or "").read_bytes())
    return digest.hexdigest()[:12]


def model_version(spec: ModelSpec, snapshots: dict[str, str | None], seed: int) -> str:
    payload = {"model": spec.name, "snapshots": snapshots, "seed": seed, "code": code_version()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def artifact_location(lh: Lakehouse, name: str) -> str:
    return f"{lh.settings.warehouse_uri.rstrip('/')}/ml/{name}"


def save_artifact(lh: Lakehouse, name: str, version: str, payload: dict[str, Any]) -> str:
    """torch.save of the payload to <warehouse>/ml/<name>/<version>/model.pt, written through the
    lakehouse's object store (a local folder or S3). Returns its URI."""
    import torch

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    location = artifact_location(lh, name)
    lh.object_store(location).write_bytes(f"{version}/model.pt", buffer.getvalue())
    return f"{location}/{version}/model.pt"


def _read_bytes(lh: Lakehouse, uri: str) -> bytes:
    folder, _, name = uri.rpartition("/")
    return lh.object_store(folder).read_bytes(name)


def load_artifact(lh: Lakehouse, uri: str) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The saved model (in eval mode, on the CPU) and its payload (feature spec, metrics, snapshots)."""
    import torch

    payload = torch.load(io.BytesIO(_read_bytes(lh, uri)), map_location="cpu", weights_only=True)
    spec = payload["feature_spec"]
    module = build_module(len(spec["features"]), int(payload["config"]["hidden"]))
    module.load_state_dict(payload["state_dict"])
    module.eval()
    return module, payload


# --- training -------------------------------------------------------------------------------------


def train(
    lh: Lakehouse,
    spec: ModelSpec,
    seed: int = DEFAULT_SEED,
    device: str | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Read the spec's inputs at pinned snapshots, train, evaluate on the held-out split next to the
    baseline, and save the versioned artifact. The snapshots read are pinned in the catalog for
    `ml/<model>` (lakehouse.snapshot_pins), so table maintenance keeps them; a training that fails
    removes the pins it made."""
    if device is None:
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    snapshots: dict[str, str | None] = {}
    tables: dict[TableId, pa.Table] = {}
    pinned_by = f"ml/{spec.name}"  # the snapshots a model was trained on stay readable (its lineage)
    new_pins: list[tuple[TableId, str]] = []
    try:
        for table in spec.tables:
            snapshots[str(table)], tables[table] = read_pinned(
                lh, table, spec.user, None, pinned_by, new_pins
            )
        return _train(lh, spec, seed, device, log, snapshots, tables)
    except BaseException:
        for ident, version in new_pins:  # no model recorded them: the pins made for it go again
            lh.catalog.unpin_snapshot(ident.namespace, ident.name, version, pinned_by)
        raise


def _train(
    lh: Lakehouse,
    spec: ModelSpec,
    seed: int,
    device: str,
    log: Callable[[str], None] | None,
    snapshots: dict[str, str | None],
    tables: dict[TableId, pa.Table],
) -> TrainResult:
    import numpy as np

    if spec.name == VEHICLE_SPEED.name:
        frame = vehicle_frame(tables[VEHICLE_TABLE])
    elif spec.name == GAME_D7_CHURN.name:
        frame = churn_frame(tables[GAME_TABLE])
    else:
        raise ValueError(f"unknown model {spec.name!r}")

    train_mask, test_mask = split(frame, seed)
    n_train, n_test = int(train_mask.sum()), int(test_mask.sum())
    if n_train < 10 or n_test < 5:
        raise NotEnoughData(
            f"{spec.name}: {len(frame.y)} rows ({n_train} train, {n_test} test); need more data"
        )
    x_train, y_train = frame.x[train_mask], frame.y[train_mask]
    x_test, y_test = frame.x[test_mask], frame.y[test_mask]
    if spec.task == "binary" and len(np.unique(y_train)) < 2:
        raise NotEnoughData(f"{spec.name}: the training rows hold one class only")
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    y_mean = float(y_train.mean())
    y_std = (float(y_train.std()) or 1.0) if spec.task == "regression" else 1.0
    y_fit = (y_train - y_mean) / y_std if spec.task == "regression" else y_train
    if log:
        log(f"{spec.name}: {n_train} train / {n_test} test rows, {len(frame.features)} features, on {device}")

    module = fit(spec, (x_train - mean) / std, y_fit, seed, device)
    raw = predict(module, (x_test - mean) / std, device)
    if spec.task == "regression":
        metrics = regression_metrics(y_test, raw * y_std + y_mean)
        baseline = regression_metrics(y_test, np.full_like(y_test, y_mean))
    else:
        metrics = binary_metrics(y_test, 1 / (1 + np.exp(-raw)))
        baseline = binary_metrics(y_test, np.full_like(y_test, y_mean))

    version = model_version(spec, snapshots, seed)
    feature_spec = {
        "features": frame.features,
        "mean": mean.tolist(),
        "std": std.tolist(),
        "target": spec.target,
        "task": spec.task,
        "target_mean": y_mean if spec.task == "regression" else None,
        "target_std": y_std if spec.task == "regression" else None,
        **{k: v for k, v in frame.extra.items() if k != "split_by"},
    }
    payload = {
        "state_dict": {k: v.detach().cpu() for k, v in module.state_dict().items()},
        "feature_spec": feature_spec,
        "config": {
            "model": spec.name,
            "hidden": spec.hidden,
            "epochs": spec.epochs,
            "lr": spec.lr,
            "weight_decay": spec.weight_decay,
            "seed": seed,
            "test_fraction": TEST_FRACTION,
            "code_version": code_version(),
        },
        "snapshots": snapshots,
        "metrics": metrics,
        "baseline": baseline,
        "version": version,
    }
    uri = save_artifact(lh, spec.name, version, payload)
    return TrainResult(
        spec=spec,
        seed=seed,
        snapshots=snapshots,
        metrics=metrics,
        baseline=baseline,
        rows_train=n_train,
        rows_test=n_test,
        features=frame.features,
        version=version,
        artifact_uri=uri,
        device=device,
        read_as=spec.user or "owner",
    )
