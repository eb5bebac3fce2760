"""Shared fixtures: a lakehouse under tmp_path in each table format, a test Dagster instance, a
Pipeline that lands raw files and runs the real sensors in-process, one loopback S3 server, and an
environment without the developer's LAKEHOUSE_* / AWS_* variables."""

from __future__ import annotations

import itertools
import os
import socket
import warnings
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from lakehouse.core.settings import LakehouseSettings
from tests.helpers.env import UNSET
from tests.helpers.game import GameLake
from tests.helpers.pipeline import Pipeline
from tests.helpers.postgres import PostgresServer, postgres_server

_DATABASES = itertools.count(1)

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the caller's lakehouse or S3 settings (it sets what it needs itself)."""
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(params=["iceberg", "delta"])
def table_format(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL server on 127.0.0.1 for the session (stopped by PID after it)."""
    with postgres_server() as server:
        yield server


@pytest.fixture
def postgres_catalog(postgres: PostgresServer) -> Iterator[str]:
    """A fresh catalog database on the session's server: its SQLAlchemy URL; dropped after the test."""
    name = f"t{next(_DATABASES)}"
    yield postgres.create_database(name)
    from lakehouse.storage.catalog import CatalogDB

    CatalogDB.dispose_all()
    postgres.drop_database(name)


@pytest.fixture
def settings(tmp_path: Path, table_format: str, request: pytest.FixtureRequest) -> LakehouseSettings:
    """A lakehouse under tmp_path. With LAKEHOUSE_TEST_CATALOG=postgres (a harness switch, not a
    lakehouse setting) its catalog is a fresh database on a real PostgreSQL server instead of SQLite."""
    overrides: dict[str, object] = {"table_format": table_format}
    if os.environ.get("LAKEHOUSE_TEST_CATALOG") == "postgres":
        overrides["catalog_uri"] = request.getfixturevalue("postgres_catalog")
    return LakehouseSettings.for_home(tmp_path / "lakehouse", **overrides)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture
def pipeline(settings: LakehouseSettings, instance: dg.DagsterInstance) -> Pipeline:
    return Pipeline(settings, instance)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3-speaking server (moto's server mode) on 127.0.0.1, started once and stopped after."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def game(settings: LakehouseSettings, instance: dg.DagsterInstance) -> GameLake:
    return GameLake(settings, instance)
