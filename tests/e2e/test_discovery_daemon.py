"""The OpenLake game on its seed's own flat layout, under the real `dagster-daemon`: profiles and
events land as `sr_game_demo_v2/user_profile/*.parquet` and `.../user_event/*.parquet` in a bucket
only an assumed role may read (moto enforcing IAM, its own process on 127.0.0.1); a DataScan task
with `--table-prefix ods_` and a role connection, added through the CLI, is its own sensor in the
daemon, and the ADS tables equal those the partitioned layout gives for the same files. A late
file and a deleted file converge again. The secret is in no log, event, run or catalog row."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest

from lakehouse.core.settings import LakehouseSettings
from lakehouse.demo.game import event_path, events, profile_path, profiles
from lakehouse.facade import Lakehouse
from lakehouse.storage.object_store import S3ObjectStore
from tests.helpers import game_reference
from tests.helpers.daemon import instance_at, running_daemon
from tests.helpers.env import clean_env
from tests.helpers.game import pipeline_rows
from tests.helpers.paths import BIN
from tests.helpers.s3_auth import auth_s3

pytestmark = [pytest.mark.e2e, pytest.mark.s3]
START = dt.date(2025, 9, 1)
USERS = 80
DAYS = 3
LOCATION = "s3://raw-b/openlake/sr_game_demo_v2"


def lakehouse(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "lakehouse"), *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def differences(flat: Lakehouse, partitioned: Lakehouse) -> list[str]:
    found = (
        game_reference.difference(name, pipeline_rows(flat, name), pipeline_rows(partitioned, name))
        for name in game_reference.COMPARED_TABLES
    )
    return [d for d in found if d is not None]


def wait_until_equal(
    flat: Lakehouse, partitioned: Lakehouse, log: Path, landed: float, timeout: float = 300
) -> float:
    """Seconds from `landed` (a monotonic time) until the flat tables equal the partitioned ones."""
    started = time.monotonic()
    wrong = ["not checked yet"]
    while time.monotonic() - started < timeout:
        try:
            wrong = differences(flat, partitioned)
        except Exception as exc:  # noqa: BLE001 - tables appear while we look
            wrong = [repr(exc)]
        if not wrong:
            return time.monotonic() - landed
        time.sleep(2)
    pytest.fail(
        f"flat layout did not converge in {timeout}s: {wrong}\n{log.read_text(errors='replace')[-6000:]}"
    )


def test_flat_game_layout_under_the_daemon_equals_the_partitioned_layout(tmp_path: Path) -> None:
    with auth_s3(tmp_path / "moto.log") as s3:
        bucket = S3ObjectStore(LOCATION, s3.credentials(s3.admin))
        dagster_home, log = tmp_path / "dagster_home", tmp_path / "daemon.log"
        dagster_home.mkdir()
        env = clean_env(
            dict(os.environ),
            LAKEHOUSE_HOME=str(tmp_path / "flat"),
            DAGSTER_HOME=str(dagster_home),
            LAKEHOUSE_SCAN_INTERVAL_SECONDS="3",
            LAKEHOUSE_CONN_TEAM_B_KEY=s3.team_b.access_key_id,
            LAKEHOUSE_CONN_TEAM_B_SECRET=s3.team_b.secret_access_key,
        )
        reference_env = clean_env(
            dict(os.environ), LAKEHOUSE_HOME=str(tmp_path / "partitioned"), DAGSTER_HOME=str(tmp_path / "dh2")
        )
        flat = Lakehouse(LakehouseSettings.from_env(env))
        partitioned = Lakehouse(LakehouseSettings.from_env(reference_env))

        def land(name: str, table: object, day: dt.date, kind: str, layout: str = "both") -> None:
            folder, path = ("user_profile", profile_path) if kind == "profile" else ("user_event", event_path)
            if layout in ("both", "partitioned"):
                partitioned.landing.write_arrow(path(day, 0, name), table)  # type: ignore[arg-type]
            if layout in ("both", "flat"):
                bucket.write_arrow(f"{folder}/{name}.parquet", table)  # type: ignore[arg-type]

        land("profiles", profiles(USERS, START, seed=1), START, "profile")
        for day in range(DAYS):
            date = START + dt.timedelta(days=day)
            batch = events(
                dt.datetime.combine(date, dt.time(0)), 400, USERS, seed=day, late_fraction=0.05, hours=24
            )
            land(f"events_{day}", batch, date, "event")
        lakehouse(reference_env, "scan")

        lakehouse(env, "connection", "add", "team_b", "--endpoint", s3.endpoint, "--role-arn", s3.role_arn,
                  "--access-key-env", "LAKEHOUSE_CONN_TEAM_B_KEY", "--secret-key-env", "LAKEHOUSE_CONN_TEAM_B_SECRET")  # fmt: skip
        lakehouse(env, "datascan", "add", "openlake", "--location", f"{LOCATION}/", "--namespace", "game_db",
                  "--connection", "team_b", "--interval", "3", "--table-prefix", "ods_")  # fmt: skip
        with running_daemon(env, log):
            first = wait_until_equal(flat, partitioned, log, time.monotonic())
            # a late file of an old day, the same file in both layouts
            late = events(dt.datetime.combine(START, dt.time(0)), 200, USERS, seed=77, hours=24, cohort=5)
            land("late", late, START, "event", "partitioned")
            lakehouse(reference_env, "scan")  # the reference first: the time below is the daemon's
            landed = time.monotonic()
            land("late", late, START, "event", "flat")
            second = wait_until_equal(flat, partitioned, log, landed)
            # a deleted file: its rows leave the ODS table and everything built from it
            day_1 = START + dt.timedelta(days=1)
            (Path(partitioned.settings.landing_uri) / event_path(day_1, 0, "events_1")).unlink()
            lakehouse(reference_env, "scan")
            landed = time.monotonic()
            bucket.remove("user_event/events_1.parquet")
            third = wait_until_equal(flat, partitioned, log, landed)
            deadline = time.monotonic() + 120
            with instance_at(dagster_home) as instance:
                while instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])) and (
                    time.monotonic() < deadline
                ):
                    time.sleep(1)
        print(
            f"flat layout under the daemon: first batch {first:.1f}s (from the daemon's start), late file {second:.1f}s, deleted file {third:.1f}s (from landing in the bucket)"
        )

        events_left = flat.sql(
            "select distinct _source_file from game_db.ods_user_event order by 1"
        ).to_pylist()
        assert [r["_source_file"] for r in events_left] == [
            f"{LOCATION}/user_event/events_0.parquet",
            f"{LOCATION}/user_event/events_2.parquet",
            f"{LOCATION}/user_event/late.parquet",
        ]
        with instance_at(dagster_home) as instance:
            states = {s.name: s for s in instance.all_instigator_state()}
            assert {"datascan", "datascan_openlake"} <= set(states)
            task = states["datascan_openlake"]
            ticks = instance.get_ticks(task.instigator_origin_id, task.selector_id)
            assert ticks and all(t.status.value != "FAILURE" for t in ticks), [t.error for t in ticks]
            runs = instance.get_run_records()
            assert runs and all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in runs)
            assert {r.dagster_run.tags["lakehouse/namespace"] for r in runs} == {"game_db"}

        secret = s3.team_b.secret_access_key.encode()
        searched = 0
        for root in (tmp_path / "flat", dagster_home):
            for path in root.rglob("*"):
                if path.is_file():
                    searched += 1
                    assert secret not in path.read_bytes(), f"the secret is in {path}"
        assert secret not in log.read_bytes()
        assert searched > 20
