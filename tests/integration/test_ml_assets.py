"""The ML assets (lakehouse_assets/ml.py, lakehouse/ml/train.py) on a small lakehouse holding both
seeds: vehicles generated, scanned (ODS -> DWD -> ADS) and governed by the seed's policy, and players
whose D7 churn their activity predicts. The models are materialized through the code location's
asset job (what `dagster asset materialize --select ...` runs): metrics next to the baseline's, the
snapshot ids read, an artifact in the warehouse that loads, checks that pass, the same metrics again
from the same snapshots and seed, and the third party's masked read in the audit."""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import numpy as np
import pytest

from lakehouse.core.settings import LakehouseSettings
from lakehouse.demo.iov import generate_iov
from lakehouse.facade import Lakehouse
from lakehouse.ml import train as ml
from lakehouse_assets.definitions import build_definitions
from lakehouse_assets.ml import BEATS_BASELINE, INPUTS_KEY, check_result
from tests.helpers.game import GameLake, event, profile
from tests.helpers.governed import ALICE, SEED_POLICY
from tests.helpers.pipeline import Pipeline

VEHICLE = dg.AssetKey(["ml", "vehicle_speed"])
CHURN = dg.AssetKey(["ml", "game_d7_churn"])
INPUTS = {VEHICLE: ml.VEHICLE_TABLE, CHURN: ml.GAME_TABLE}
START = dt.date(2025, 9, 1)
DAYS = 12  # d+7 labels exist for the first five days
USERS = 90
DEVICES = ["iOS", "Android", "PC"]


def land_players(game: GameLake) -> None:
    """Loyal players (every third) play nearly every day, a lot, and buy; the others drop in now and
    then with an event or two: whether a player is back a week later follows from their activity."""
    rng = random.Random(5)
    game.land_profiles([profile(u, device_type=DEVICES[u % 3]) for u in range(1, USERS + 1)])
    for d in range(DAYS):
        day = START + dt.timedelta(days=d)
        rows = []
        for user in range(1, USERS + 1):
            loyal = user % 3 == 0
            if rng.random() >= (0.95 if loyal else 0.3):
                continue
            for k in range(rng.randint(6, 10) if loyal else rng.randint(1, 2)):
                ts = f"{day} {rng.randint(0, 23):02d}:{k:02d}:00"
                purchase = loyal and k == 0
                rows.append(event(user, ts, "purchase" if purchase else "battle", '{"amount": 9.5}'))
        game.land_events(rows, dt=str(day))


@dataclass
class Lake:
    lh: Lakehouse
    instance: dg.DagsterInstance
    defs: dg.Definitions


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    settings = LakehouseSettings.for_home(tmp_path_factory.mktemp("ml") / "lh", table_format="iceberg")
    with dg.instance_for_test() as instance:
        pipeline = Pipeline(settings, instance)
        start = dt.datetime(2025, 9, 17, 8)
        generate_iov(pipeline.lh.landing, hours=3, vehicles=60, start=start, junk=False)
        pipeline.scan()
        game = GameLake(settings, instance)
        land_players(game)
        game.catch_up()
        lh = Lakehouse(settings)
        lh.apply_policy(SEED_POLICY.read_text(), "iov", str(SEED_POLICY))
        yield Lake(lh, instance, build_definitions(settings))


def materialize(lake: Lake, seed: int | None = None) -> dg.ExecuteInProcessResult:
    job = lake.defs.resolve_implicit_global_asset_job_def()
    config = (
        {"ops": {k.to_python_identifier(): {"config": {"seed": seed}} for k in (VEHICLE, CHURN)}}
        if seed is not None
        else None
    )
    result = job.execute_in_process(
        instance=lake.instance, asset_selection=[VEHICLE, CHURN], run_config=config
    )
    assert result.success
    return result


@pytest.fixture(scope="module")
def first(lake: Lake) -> dg.ExecuteInProcessResult:
    return materialize(lake)


def metadata(result: dg.ExecuteInProcessResult, key: dg.AssetKey) -> dict[str, Any]:
    [found] = [m for m in result.get_asset_materialization_events() if m.asset_key == key]
    return {k: v.value for k, v in found.materialization.metadata.items()}


def checks(result: dg.ExecuteInProcessResult) -> dict[dg.AssetKey, bool]:
    return {e.asset_key: e.passed for e in result.get_asset_check_evaluations()}


def test_the_code_location_has_the_ml_assets_and_checks(lake: Lake) -> None:
    graph = lake.defs.resolve_asset_graph()
    for key, table in INPUTS.items():
        node = graph.get(key)
        assert node.group_name == "ml"
        assert node.parent_keys == {INPUTS_KEY}
        assert node.metadata["inputs"].value == [str(table)]
        assert dg.AssetCheckKey(key, BEATS_BASELINE) in graph.asset_check_keys
    assert {VEHICLE, CHURN} <= dg.AssetSelection.from_string("key:ml/*").resolve(graph)
    assert graph.get(INPUTS_KEY).group_name == "ml"


def test_dagster_asset_materialize_select_ml_star_trains_the_group(lake: Lake, tmp_path: Path) -> None:
    """The contract's command, as written: Dagster reads `ml/*` as the key `ml/` and everything
    downstream of it, which is the ml group."""
    import os
    import subprocess
    import sys

    from tests.helpers.env import clean_env

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = clean_env(dict(os.environ), LAKEHOUSE_HOME=lake.lh.settings.home, DAGSTER_HOME=str(home))
    dagster = str(Path(sys.executable).parent / "dagster")
    command = [dagster, "asset", "materialize", "-m", "lakehouse_assets.definitions", "--select", "ml/*"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("vehicle_speed", "game_d7_churn"):
        assert f"Asset check 'beats_baseline' on 'ml/{name}' passed" in done.stderr
    assert "RUN_SUCCESS" in done.stderr


def test_models_beat_their_baselines_on_the_held_out_split(
    lake: Lake, first: dg.ExecuteInProcessResult
) -> None:
    assert checks(first) == {VEHICLE: True, CHURN: True}
    vehicle, churn = metadata(first, VEHICLE), metadata(first, CHURN)
    for name in ("rmse", "mae", "r2"):
        assert isinstance(vehicle[name], float) and isinstance(vehicle[f"baseline_{name}"], float)
    assert vehicle["rmse"] < vehicle["baseline_rmse"] and vehicle["r2"] > 0.5
    for name in ("log_loss", "auc", "accuracy", "brier"):
        assert isinstance(churn[name], float) and isinstance(churn[f"baseline_{name}"], float)
    assert churn["log_loss"] < churn["baseline_log_loss"] and churn["auc"] > 0.7
    assert churn["baseline_auc"] == 0.5
    assert vehicle["read_as"] == ALICE and churn["read_as"] == "owner"


def test_metadata_names_the_snapshots_read_and_an_artifact_that_loads(
    lake: Lake, first: dg.ExecuteInProcessResult
) -> None:
    for key, table in INPUTS.items():
        found = metadata(first, key)
        assert found["snapshot_ids"] == {str(table): lake.lh.tables.version(table)}
        uri = found["artifact"]
        version = found["model_version"]
        assert uri == f"{lake.lh.settings.warehouse_uri}/ml/{key.path[-1]}/{version}/model.pt"
        assert Path(uri).is_file()  # the warehouse is a local folder here
        module, payload = ml.load_artifact(lake.lh, uri)
        assert payload["snapshots"] == found["snapshot_ids"] and payload["version"] == version
        assert payload["metrics"][found["primary_metric"]] == found[found["primary_metric"]]
        spec = payload["feature_spec"]
        assert spec["features"] == found["features"] and len(spec["mean"]) == len(spec["features"])
        out = ml.predict(module, np.zeros((3, len(spec["features"]))), "cpu")
        assert out.shape == (3,) and np.isfinite(out).all()


def test_same_snapshots_and_seed_give_the_same_metrics(lake: Lake, first: dg.ExecuteInProcessResult) -> None:
    again = materialize(lake)
    other_seed = materialize(lake, seed=11)
    for key in INPUTS:
        before, after, other = metadata(first, key), metadata(again, key), metadata(other_seed, key)
        for name in ("snapshot_ids", "model_version", "artifact", "rows_train", "rows_test"):
            assert after[name] == before[name], name
        numbers = {k: v for k, v in before.items() if isinstance(v, float)}
        assert numbers and {k: after[k] for k in numbers} == numbers  # bit for bit
        assert other["snapshot_ids"] == before["snapshot_ids"]
        assert other["model_version"] != before["model_version"]  # another seed: another version


def test_the_vehicle_model_read_as_the_third_party_with_the_vin_masked(
    lake: Lake, first: dg.ExecuteInProcessResult
) -> None:
    reads = lake.lh.sql(
        "select user_name, roles, kind, tables, masked_columns, status from lakehouse.audit "
        f"where user_name = '{ALICE}' and kind = 'read_table'"
    ).to_pylist()
    assert reads and all(r["status"] == "ok" and r["roles"] == "thirdparty" for r in reads)
    assert all(str(ml.VEHICLE_TABLE) in r["tables"] and "vin:" in r["masked_columns"] for r in reads)
    # what Alice reads is masked: the model never saw a real vin
    _, rows = ml.read_pinned(lake.lh, ml.VEHICLE_TABLE, ALICE, ["vin"])
    assert all("*" in v for v in rows["vin"].to_pylist())


def test_the_check_fails_when_the_model_does_not_beat_the_baseline(first: dg.ExecuteInProcessResult) -> None:
    result = ml.TrainResult(
        spec=ml.GAME_D7_CHURN,
        seed=7,
        snapshots={},
        metrics={"log_loss": 0.7},
        baseline={"log_loss": 0.69},
        rows_train=1,
        rows_test=1,
        features=[],
        version="v",
        artifact_uri="u",
        device="cpu",
        read_as="owner",
    )
    assert not check_result(result, CHURN).passed
    assert check_result(dataclasses.replace(result, metrics={"log_loss": 0.5}), CHURN).passed
