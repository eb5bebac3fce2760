"""The catalog on a real PostgreSQL server (started by the session's `postgres` fixture on 127.0.0.1):
the password can stay out of the URL (libpq's PGPASSWORD), and a catalog that cannot be reached or
refuses the login is a one-line error that names it with its password hidden."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.helpers.env import clean_env
from tests.helpers.paths import BIN, REPO
from tests.helpers.postgres import PASSWORD, PostgresServer

LAKEHOUSE = BIN / "lakehouse"


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LAKEHOUSE), *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_password_can_stay_out_of_the_url(
    tmp_path: Path, postgres: PostgresServer, postgres_catalog: str
) -> None:
    database = postgres_catalog.rsplit("/", 1)[1]
    env = clean_env(
        dict(os.environ),
        LAKEHOUSE_HOME=str(tmp_path / "lh"),
        DAGSTER_HOME=str(tmp_path / "dh"),
        LAKEHOUSE_CATALOG_URI=f"postgresql+psycopg2://lakehouse@127.0.0.1:{postgres.port}/{database}",
        PGPASSWORD=PASSWORD,
    )
    generated = run(env, "generate", "iov", "--hours", "1", "--vehicles", "3")
    assert generated.returncode == 0, generated.stderr
    scanned = run(env, "scan")
    assert scanned.returncode == 0, scanned.stderr[-2000:]
    counted = run(env, "sql", "select count(*) as n from iov.ads_vehicle_hourly_stat", "--format", "csv")
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.split() == ["n", "3"]
    for out in (generated, scanned, counted):
        assert PASSWORD not in out.stdout + out.stderr


@pytest.mark.parametrize("problem", ["wrong password", "unreachable"])
def test_a_catalog_that_fails_is_named_without_its_password(
    tmp_path: Path, postgres: PostgresServer, postgres_catalog: str, problem: str
) -> None:
    secret = "Wr0ng-pa55-never-shown" if problem == "wrong password" else PASSWORD
    port = postgres.port if problem == "wrong password" else 1
    database = postgres_catalog.rsplit("/", 1)[1]
    env = clean_env(
        dict(os.environ),
        LAKEHOUSE_HOME=str(tmp_path / "lh"),
        DAGSTER_HOME=str(tmp_path / "dh"),
        LAKEHOUSE_CATALOG_URI=f"postgresql+psycopg2://lakehouse:{secret}@127.0.0.1:{port}/{database}",
    )
    for args in (["tables"], ["sql", "select 1 as one"], ["scan"]):
        out = run(env, *args)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        error = out.stderr.strip().splitlines()[-1]
        assert f"catalog database postgresql+psycopg2://lakehouse:***@127.0.0.1:{port}/{database}" in error
        assert ("password authentication failed" if port != 1 else "Connection refused") in error
        assert secret not in out.stdout + out.stderr
