"""The production stack of docker-compose.yml, run on this machine: every lakehouse service's exact
command and environment, taken from the file as `docker-compose config` resolves it, started natively
(no Docker engine runs here) and driven like a deployment: both seeds land on S3, the daemon's
DataScan sensor builds the ADS tables into the Postgres catalog, a late file rebuilds only its
partition, the seed policy and passwords are set with the CLI as `docker-compose exec serve ...` would,
the SQL endpoint answers the owner and the masked third party, the Dagster webserver sees the code
location and the runs, the dashboard answers its health check. The same batches also go through the
embedded defaults (SQLite catalog, local folder, in process) for the result and the wall time to
compare with. Finally no log, event, table row or file the stack left contains the S3 secret or the
database password.

Stand-ins for the two images that cannot run here: PostgreSQL is Debian's server started by the
`postgres` fixture (tests/helpers/postgres.py; the compose file's init script is run against it like
the image runs it), MinIO is moto's S3 server (the `s3_endpoint` fixture; the buckets minio-init
would make are made with boto3). Everything else runs from the compose file's command, environment,
working directory, mounts and health checks (tests/helpers/compose.py), binaries from the venv."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import socket
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pymysql
import pytest

from lakehouse.core.settings import LakehouseSettings
from lakehouse.demo.game import event_path, events, profile_path, profiles
from lakehouse.demo.iov import generate_iov
from lakehouse.facade import Lakehouse
from lakehouse_assets.definitions import build_definitions
from sensors.run_once import catch_up
from tests.helpers import game_reference
from tests.helpers.compose import NativeStack, docker_compose, native_stack, realize_mounts, resolve
from tests.helpers.daemon import instance_at
from tests.helpers.env import clean_env
from tests.helpers.game import differences as game_differences
from tests.helpers.paths import REPO
from tests.helpers.pipeline import GPS_SCHEMA, gps
from tests.helpers.postgres import PostgresServer, pg_bin

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(420),
    pytest.mark.skipif(docker_compose() is None, reason="docker-compose is not installed (make install)"),
]

S3_SECRET = "stack-s3-secret-that-must-never-leak"
S3_KEY_ID = "stack-access-key"
S3_READER_SECRET = "stack-s3-reader-secret-never-leaks"
MINIO_ROOT_SECRET = "stack-minio-root-secret-never-leaks"
OWNER_PG_SECRET = "stack-owner-pg-password-never-leaks"
DAGSTER_PG_SECRET = "stack-dagster-pg-password-never-leaks"
SERVING_PG_SECRET = "stack-serving-pg-password-never-leaks"
OWNER_PASSWORD = "owner-stack-Pw-4417"
ALICE = "RAM$alice"
ALICE_PASSWORD = "alice-stack-Pw-9052"
NATIVE = ["code-server", "webserver", "daemon", "serve", "dashboard"]
"""The services that run here from their compose command (postgres, minio, minio-init: see above)."""

IOV_START = dt.datetime(2025, 9, 17, 22)
LATE_IOV_PARTITION = "2025-09-17-22"
GAME_START = dt.date(2025, 9, 1)
USERS = 80
ADS_TABLES = [
    "iov.ads_vehicle_hourly_stat",
    "game_db.ads_retention_daily",
    "game_db.ads_purchase_trends_daily",
    "game_db.ads_device_preference_daily",
    "game_db.ads_region_distribution_daily",
]
BUSY = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


# --- the data: the same batches for the stack and for the embedded defaults -----------------------


def land_first_batch(lh: Lakehouse) -> None:
    """Both seeds: two hours of GPS reports (Parquet and ORC, with the generator's junk and corrupt
    samples), game profiles and three days of events with late events among them."""
    generate_iov(lh.landing, hours=2, vehicles=5, start=IOV_START, interval_seconds=300)
    lh.landing.write_arrow(profile_path(GAME_START, 0, "profiles"), profiles(USERS, GAME_START, seed=1))
    for day in range(3):
        date = GAME_START + dt.timedelta(days=day)
        begin = dt.datetime.combine(date, dt.time(0))
        lh.landing.write_arrow(
            event_path(date, 0, "events"),
            events(begin, 400, USERS, seed=day, late_fraction=0.05, late_days=2, hours=24),
        )


def land_late_batch(lh: Lakehouse) -> None:
    """A late GPS file in the processed hour 22 (the game pipeline's late data is covered by
    tests/e2e/test_e2e_game_daemon.py; one more run here would cost half a minute)."""
    late = [
        gps("VIN001", "2025-09-17 22:59:00", 120.9, 30.9, 33.0),
        gps("VIN999", "2025-09-17 22:10:00", 121.0, 31.0, 20.0),
        gps("VIN999", "2025-09-17 22:20:00", 121.1, 31.0, 30.0),
    ]
    lh.landing.write_arrow(
        "iov/ods_vehicle_gps_raw/dt=2025-09-17/hh=22/late.parquet",
        pa.Table.from_pylist(late, schema=GPS_SCHEMA),
    )


Snapshot = dict[str, list[tuple[Any, ...]]]


def snapshot(lh: Lakehouse) -> Snapshot:
    """Every ADS table's rows, in a canonical order."""
    out = {}
    for table in ADS_TABLES:
        rows = lh.sql(f"select * from {table}").to_pylist()
        out[table] = sorted((tuple(sorted(r.items())) for r in rows), key=repr)
    return out


def timed(step: Callable[[], Any]) -> float:
    begin = time.monotonic()
    step()
    return time.monotonic() - begin


def embedded_baseline(root: Path, table_format: str) -> tuple[Snapshot, Snapshot, dict[str, float]]:
    """The same batches through the embedded defaults (SQLite catalog, local landing and warehouse,
    runs in process as `lakehouse scan` does): the ADS tables after each batch and the wall times."""
    settings = LakehouseSettings.for_home(root / "lh", table_format=table_format)
    lh = Lakehouse(settings)
    with dg.instance_for_test() as instance:
        defs = build_definitions(settings)

        def first() -> None:
            land_first_batch(lh)
            assert catch_up(defs, instance, log_level="ERROR").failed == 0

        def late() -> None:
            land_late_batch(lh)
            assert catch_up(defs, instance, log_level="ERROR").failed == 0

        times = {"first batch": timed(first)}
        after_first = snapshot(lh)
        times["late batch"] = timed(late)
        after_late = snapshot(lh)
    # the embedded result itself equals the independent reference over the raw files
    assert not game_differences(lh, game_reference.COMPARED_TABLES)
    return after_first, after_late, times


# --- the stack ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def loopback_variables(
    root: Path, table_format: str, postgres: PostgresServer, s3_endpoint: str
) -> dict[str, str]:
    """The compose variables that point every service at loopback, free ports and folders under
    `root`, the test's servers, and the test's secrets. The fixture's server is the database
    superuser's; the stack's roles get names of their own per table format (roles are server-wide)."""
    htpasswd = root / "dagster.htpasswd"
    htpasswd.write_text("operator:$6$salt$notarealhash\n")
    return {
        "LAKEHOUSE_PG_SUPERUSER": postgres.user,
        "LAKEHOUSE_PG_SUPERUSER_PASSWORD": postgres.password,
        "LAKEHOUSE_PG_USER": f"stack_{table_format}_owner",
        "LAKEHOUSE_PG_PASSWORD": OWNER_PG_SECRET,
        "DAGSTER_PG_USER": f"stack_{table_format}_dagster",
        "DAGSTER_PG_PASSWORD": DAGSTER_PG_SECRET,
        "LAKEHOUSE_SERVING_PG_USER": f"stack_{table_format}_serving",
        "LAKEHOUSE_SERVING_PG_PASSWORD": SERVING_PG_SECRET,
        "LAKEHOUSE_MINIO_ROOT_PASSWORD": MINIO_ROOT_SECRET,
        "LAKEHOUSE_S3_READER_SECRET_ACCESS_KEY": S3_READER_SECRET,
        "LAKEHOUSE_UI_HTPASSWD_FILE": str(htpasswd),
        "LAKEHOUSE_PG_HOST": "127.0.0.1",
        "LAKEHOUSE_PG_PORT": str(postgres.port),
        "LAKEHOUSE_PG_DB": f"stack_{table_format}",
        "DAGSTER_PG_DB": f"stack_{table_format}_dagster",
        "LAKEHOUSE_S3_ENDPOINT": s3_endpoint,
        "LAKEHOUSE_S3_ACCESS_KEY_ID": S3_KEY_ID,
        "LAKEHOUSE_S3_SECRET_ACCESS_KEY": S3_SECRET,
        "LAKEHOUSE_LANDING_BUCKET": f"stack-{table_format}-landing",
        "LAKEHOUSE_WAREHOUSE_BUCKET": f"stack-{table_format}-warehouse",
        "LAKEHOUSE_BIND_HOST": "127.0.0.1",
        "LAKEHOUSE_CODE_SERVER_HOST": "127.0.0.1",
        "LAKEHOUSE_CODE_SERVER_PORT": str(free_port()),
        "LAKEHOUSE_WEBSERVER_PORT": str(free_port()),
        "LAKEHOUSE_UI_PORT": str(free_port()),
        "LAKEHOUSE_PROXY_PORT": str(free_port()),
        "LAKEHOUSE_SERVE_PORT": str(free_port()),
        "LAKEHOUSE_DASHBOARD_PORT": str(free_port()),
        "LAKEHOUSE_MINIO_PORT": str(free_port()),
        "LAKEHOUSE_MINIO_CONSOLE_PORT": str(free_port()),
        "LAKEHOUSE_APP_DIR": str(REPO),
        "LAKEHOUSE_DATA_DIR": str(root / "volumes" / "lakehouse-home"),
        "LAKEHOUSE_DAGSTER_HOME": str(root / "volumes" / "dagster_home"),
        "LAKEHOUSE_TABLE_FORMAT": table_format,
        "LAKEHOUSE_SCAN_INTERVAL_SECONDS": "2",
    }


def prepare_postgres(stack: NativeStack, postgres: PostgresServer) -> None:
    """What the postgres image does on an empty volume, on the fixture's server (POSTGRES_DB is the
    server's own `postgres`): the compose file's init scripts as the superuser (the roles and both
    databases, deploy/postgres), with psql from Debian's binaries; then the service's own health
    check; then the catalog-init one-shot's command (the tables and the serving role's grants)."""
    service = stack.services["postgres"]
    env = service.environment
    assert env["POSTGRES_USER"] == postgres.user and env["PGPORT"] == str(postgres.port)
    assert env["POSTGRES_DB"] == "postgres"
    bin_dir = pg_bin()
    assert bin_dir is not None
    stack.path = f"{stack.path}{os.pathsep}{bin_dir}"
    (init,) = [m for m in service.mounts if m.target == "/docker-entrypoint-initdb.d"]
    scripts = sorted(Path(init.source).glob("*.sh"))
    assert scripts, "the postgres service mounts no init script"
    for script in scripts:
        # the image runs them against its first-start server on a socket, PGPASSWORD exported;
        # here the server is on loopback TCP and the mounted folder is where it is in the repository
        done = stack.exec(
            "postgres",
            ["sh", str(script)],
            log="initdb",
            extra_env={
                "PGHOST": "127.0.0.1",
                "PGPASSWORD": env["POSTGRES_PASSWORD"],
                "LAKEHOUSE_INITDB_DIR": init.source,
            },
        )
        assert done.returncode == 0, done.stderr
    assert stack.healthy("postgres"), stack.tail("postgres")
    done = stack.exec("catalog-init", stack.services["catalog-init"].argv, log="oneshot")
    assert done.returncode == 0, done.stderr


def make_buckets(stack: NativeStack) -> None:
    """minio-init's buckets, on the S3 stand-in, with minio-init's own settings."""
    import boto3

    env = stack.services["minio-init"].environment
    s3 = boto3.client(
        "s3",
        endpoint_url=env["S3_ENDPOINT"],
        aws_access_key_id=env["MINIO_ROOT_USER"],
        aws_secret_access_key=env["MINIO_ROOT_PASSWORD"],
        region_name="us-east-1",
    )
    for bucket in (env["LANDING_BUCKET"], env["WAREHOUSE_BUCKET"]):
        s3.create_bucket(Bucket=bucket)


def wait_for(
    want: Snapshot,
    settings: LakehouseSettings,
    instance: Any,
    runs_before: int,
    stack: NativeStack,
    timeout: float = 150,
) -> Snapshot:
    """Until the stack's ADS tables equal `want`. Reading five tables costs CPU the runs need on a
    small machine, so they are read only when a new run has finished and none is in flight."""
    deadline = time.monotonic() + timeout
    got: Snapshot | str = "not read yet"
    while time.monotonic() < deadline:
        idle = not instance.get_runs_count(dg.RunsFilter(statuses=BUSY))
        if idle and instance.get_runs_count() > runs_before:
            try:
                got = snapshot(Lakehouse(settings))
            except Exception as exc:  # noqa: BLE001 - tables appear while we look
                got = repr(exc)
            if got == want:
                return got
        time.sleep(1)
    differing = [t for t in ADS_TABLES if got.get(t) != want.get(t)] if isinstance(got, dict) else got
    pytest.fail(
        f"the stack's ADS tables did not reach the embedded result in {timeout}s: {differing}\n"
        f"{stack.tail('code-server')}\n{stack.tail('daemon')}"
    )


def wait_until_idle(instance: Any, stack: NativeStack, timeout: float = 120) -> None:
    """No run queued or running for three looks in a row."""
    deadline, quiet = time.monotonic() + timeout, 0
    while time.monotonic() < deadline:
        quiet = quiet + 1 if not instance.get_runs_count(dg.RunsFilter(statuses=BUSY)) else 0
        if quiet >= 3:
            return
        time.sleep(1)
    pytest.fail(f"runs still in flight after {timeout}s\n{stack.tail('daemon')}")


def materialized_partitions(instance: Any, run_ids: set[str], namespace: str) -> dict[str, set[str]]:
    """Asset name -> partitions materialized by these runs, for one namespace (from the event log)."""
    out: dict[str, set[str]] = {}
    for run_id in run_ids:
        for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            materialization = entry.asset_materialization
            if materialization and materialization.asset_key.path[0] == namespace:
                name = materialization.asset_key.path[-1]
                out.setdefault(name, set()).add(str(materialization.partition))
    return out


def graphql(port: int, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        body: dict[str, Any] = json.loads(answer.read())
    assert "errors" not in body, body
    return body["data"]


WORKSPACE_QUERY = """
{
  workspaceOrError {
    __typename
    ... on Workspace {
      locationEntries {
        name
        loadStatus
        locationOrLoadError {
          __typename
          ... on RepositoryLocation {
            repositories { name assetNodes { assetKey { path } } sensors { name sensorState { status } } }
          }
          ... on PythonError { message }
        }
      }
    }
  }
  runsOrError { __typename ... on Runs { results { runId status jobName } } }
}
"""


def mysql_rows(port: int, user: str, password: str, query: str) -> list[dict[str, Any]]:
    with (
        pymysql.connect(host="127.0.0.1", port=port, user=user, password=password) as conn,
        conn.cursor(pymysql.cursors.DictCursor) as cur,
    ):
        cur.execute(query)
        return list(cur.fetchall())


def table_texts(postgres: PostgresServer, database: str, secrets: list[str]) -> list[str]:
    """`table: secret` for every row of every table of `database` whose text holds a secret."""
    import psycopg2

    conn = psycopg2.connect(
        host="127.0.0.1", port=postgres.port, user=postgres.user, password=postgres.password, dbname=database
    )
    found = []
    try:
        with conn.cursor() as cur:
            cur.execute("select table_name from information_schema.tables where table_schema = 'public'")
            tables = [r[0] for r in cur.fetchall()]
            assert tables, f"no tables in {database}"
            for table in tables:
                for secret in secrets:
                    cur.execute(f'select count(*) from "{table}" t where t::text like %s', (f"%{secret}%",))
                    if cur.fetchone()[0]:
                        found.append(f"{database}.{table}: {secret[:6]}...")
    finally:
        conn.close()
    return found


def files_holding(paths: list[Path], secrets: list[str]) -> list[str]:
    found = []
    for path in paths:
        data = path.read_bytes()
        found += [f"{path}: {s[:6]}..." for s in secrets if s.encode() in data]
    return found


def provision(
    stack: NativeStack, postgres: PostgresServer, volumes: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Everything `docker-compose up` would do before the lakehouse services start: their mounts,
    the database server's first start, the buckets. This process also reads the Dagster instance of
    deploy/dagster.yaml, so it gets the daemon's connection variables. Returns DAGSTER_HOME."""
    for name in NATIVE:
        realize_mounts(stack.services[name], volumes)
    dagster_home = Path(stack.env_of("daemon")["DAGSTER_HOME"])
    assert (dagster_home / "dagster.yaml").read_text() == (REPO / "deploy" / "dagster.yaml").read_text()
    prepare_postgres(stack, postgres)
    make_buckets(stack)
    for key in ("PGPASSWORD", "DAGSTER_PG_USERNAME", "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB"):
        monkeypatch.setenv(key, stack.env_of("daemon")[key])
    return dagster_home


def check_late_rebuild(instance: Any, late_runs: set[str], before: Snapshot, after: Snapshot) -> None:
    """The late GPS file rebuilt its hour only (the Dagster event log in Postgres says which
    partitions each run materialized), in one run of its namespace, and changed that hour's ADS
    rows only; no other table changed."""
    records = [r for r in instance.get_run_records() if r.dagster_run.run_id in late_runs]
    assert [r.dagster_run.tags.get("lakehouse/namespace") for r in records] == ["iov"]
    rebuilt = materialized_partitions(instance, late_runs, "iov")
    assert {"ods_vehicle_gps_raw", "dwd_vehicle_gps", "ads_vehicle_hourly_stat"} <= set(rebuilt), rebuilt
    assert all(keys == {LATE_IOV_PARTITION} for keys in rebuilt.values()), rebuilt
    ads = "iov.ads_vehicle_hourly_stat"
    changed = set(after[ads]) ^ set(before[ads])
    assert changed and {dict(row)["stat_hour"] for row in changed} == {"2025-09-17 22"}, changed
    assert {dict(row)["vin"] for row in set(after[ads]) - set(before[ads])} == {"VIN001", "VIN999"}
    assert all(after[t] == before[t] for t in ADS_TABLES if t != ads)


def administer(stack: NativeStack) -> None:
    """The seed policy and the two logins, as `docker-compose exec code-server lakehouse ...` (the
    catalog owner's container: `serve` may not change the policy or a password)."""
    refused = stack.exec(
        "serve", ["lakehouse", "policy", "apply", "policies/iov_thirdparty.sql", "--project", "iov"]
    )
    assert refused.returncode != 0 and "permission denied" in refused.stderr, refused.stderr
    applied = stack.exec(
        "code-server", ["lakehouse", "policy", "apply", "policies/iov_thirdparty.sql", "--project", "iov"]
    )
    assert applied.returncode == 0, applied.stderr
    for user, password in (("owner", OWNER_PASSWORD), (ALICE, ALICE_PASSWORD)):
        done = stack.exec(
            "code-server",
            ["lakehouse", "user", "password", user, "--password-stdin"],
            input=password + "\n",
        )
        assert done.returncode == 0, done.stderr


def check_sql_endpoint(port: int, tables: Snapshot) -> None:
    """The owner reads the vehicles and the game tables; the third party the masked vehicles only."""
    ads = "iov.ads_vehicle_hourly_stat"
    query = "SELECT vin, stat_hour, total_distance FROM iov.ads_vehicle_hourly_stat ORDER BY stat_hour, vin"
    expected = sorted((dict(r)["stat_hour"], dict(r)["vin"], dict(r)["total_distance"]) for r in tables[ads])
    owner_rows = mysql_rows(port, "owner", OWNER_PASSWORD, query)
    assert [(r["stat_hour"], r["vin"], r["total_distance"]) for r in owner_rows] == expected
    alice_rows = mysql_rows(port, ALICE, ALICE_PASSWORD, query)
    masked = [(hour, f"{vin[0]}{'*' * (len(vin) - 2)}{vin[-1]}", km) for hour, vin, km in expected]
    assert sorted((r["stat_hour"], r["vin"], r["total_distance"]) for r in alice_rows) == sorted(masked)
    assert not {vin for _, vin, _ in expected} & {r["vin"] for r in alice_rows}
    with pytest.raises(pymysql.err.MySQLError):
        mysql_rows(port, ALICE, ALICE_PASSWORD, "SELECT * FROM game_db.ads_retention_daily")
    dau = {dict(r)["dt"]: dict(r)["dau"] for r in tables["game_db.ads_retention_daily"]}
    rows = mysql_rows(port, "owner", OWNER_PASSWORD, "SELECT dt, dau FROM game_db.ads_retention_daily")
    assert {r["dt"]: r["dau"] for r in rows} == dau


def check_webserver(port: int, run_ids: set[str]) -> None:
    """Up, on the code location served over gRPC, with the assets, the running sensor and the runs."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=10) as answer:
        info = json.loads(answer.read())
    assert info["dagster_webserver_version"] == dg.__version__
    data = graphql(port, WORKSPACE_QUERY)
    entries = data["workspaceOrError"]["locationEntries"]
    assert [(e["name"], e["loadStatus"]) for e in entries] == [("lakehouse", "LOADED")]
    location = entries[0]["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location
    (repository,) = location["repositories"]
    assets = {"/".join(a["assetKey"]["path"]) for a in repository["assetNodes"]}
    assert {"iov/ads_vehicle_hourly_stat", "game_db/ads_retention_daily"} <= assets
    assert {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]} == {"datascan": "RUNNING"}
    seen = {r["runId"]: r["status"] for r in data["runsOrError"]["results"]}
    assert set(seen) == run_ids and set(seen.values()) == {"SUCCESS"}, seen


def test_the_compose_stack_end_to_end(
    tmp_path: Path,
    table_format: str,
    postgres: PostgresServer,
    s3_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    record_property: Callable[[str, object], None],
) -> None:
    baseline_first, baseline_late, embedded = embedded_baseline(tmp_path / "embedded", table_format)
    pg_log = postgres.data_dir.parent / "log"
    pg_log_start = pg_log.stat().st_size

    variables = loopback_variables(tmp_path, table_format, postgres, s3_endpoint)
    config = resolve(variables)
    secrets = [
        S3_SECRET,
        S3_READER_SECRET,
        MINIO_ROOT_SECRET,
        postgres.password,
        OWNER_PG_SECRET,
        DAGSTER_PG_SECRET,
        SERVING_PG_SECRET,
    ]
    port = {
        name: int(variables[f"LAKEHOUSE_{name.upper()}_PORT"]) for name in ("webserver", "serve", "dashboard")
    }
    # a container starts from its image's environment; here from this machine's, without the
    # developer's lakehouse, S3 and libpq settings
    base = clean_env(dict(os.environ))
    base.pop("PGPASSWORD", None)
    times: dict[str, float] = {}
    with native_stack(config, base, tmp_path / "logs") as stack:
        dagster_home = provision(stack, postgres, tmp_path / "volumes", monkeypatch)
        with instance_at(dagster_home) as instance:
            try:
                begin_stack = time.monotonic()
                healthy = stack.start_all(NATIVE)
                times["start"] = max(healthy.values())
                settings = LakehouseSettings.from_env(stack.env_of("code-server"))
                assert settings.landing_uri.startswith("s3://")
                assert settings.catalog_uri.startswith("postgresql+psycopg2://")
                # this process holds Dagster's PGPASSWORD (the instance): the owner's goes in the URL
                owner = settings.catalog_uri.replace("@", f":{OWNER_PG_SECRET}@", 1)
                settings = dataclasses.replace(settings, catalog_uri=owner)
                producer = Lakehouse(settings)

                begin = time.monotonic()
                land_first_batch(producer)
                before_late = wait_for(baseline_first, settings, instance, 0, stack)
                times["first batch"] = time.monotonic() - begin
                wait_until_idle(instance, stack)
                first_runs = {r.dagster_run.run_id for r in instance.get_run_records()}

                begin = time.monotonic()
                land_late_batch(producer)
                after_late = wait_for(baseline_late, settings, instance, len(first_runs), stack)
                times["late batch"] = time.monotonic() - begin
                wait_until_idle(instance, stack)
                records = instance.get_run_records()
                all_runs = {r.dagster_run.run_id for r in records}
                assert {r.dagster_run.status for r in records} == {dg.DagsterRunStatus.SUCCESS}
                assert {r.dagster_run.job_name for r in records} == {"reconcile"}
                check_late_rebuild(instance, all_runs - first_runs, before_late, after_late)

                administer(stack)
                check_sql_endpoint(port["serve"], after_late)
                check_webserver(port["webserver"], all_runs)
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port['dashboard']}/_stcore/health", timeout=10
                ) as answer:
                    assert answer.read() == b"ok"
                assert all(stack.healthy(name) for name in NATIVE)
                times["whole run"] = time.monotonic() - begin_stack
            finally:
                stack.stop()
                from lakehouse.storage.catalog import CatalogDB

                CatalogDB.dispose_all()
            # the Dagster event logs and run configs, read back through the instance
            dagster_leaks = [
                f"run {r.dagster_run.run_id}"
                for r in instance.get_run_records()
                for entry in [*instance.all_logs(r.dagster_run.run_id), r.dagster_run.run_config]
                if any(secret in str(entry) for secret in secrets)
            ]
    assert not dagster_leaks, dagster_leaks

    # nothing the stack left holds a secret: every process's output, Postgres's log, every row of
    # both databases (event logs, runs, ticks, the catalog, the audit), every file of its volumes
    logs = stack.log_files()
    assert {f"{n}.stderr" for n in NATIVE} <= {p.name for p in logs}
    passwords = [*secrets, OWNER_PASSWORD, ALICE_PASSWORD]
    leaks = files_holding(logs, passwords)
    leaks += files_holding([postgres.data_dir.parent / "log"], secrets)
    leaks += files_holding([p for p in (tmp_path / "volumes").rglob("*") if p.is_file()], passwords)
    for database in (variables["LAKEHOUSE_PG_DB"], variables["DAGSTER_PG_DB"]):
        leaks += table_texts(postgres, database, passwords)
    assert not leaks, leaks
    for database in (variables["LAKEHOUSE_PG_DB"], variables["DAGSTER_PG_DB"]):
        postgres.drop_database(database)
    for role in ("LAKEHOUSE_SERVING_PG_USER", "LAKEHOUSE_PG_USER", "DAGSTER_PG_USER"):
        postgres._admin(f'DROP ROLE IF EXISTS "{variables[role]}"')

    line = (
        f"[wall time, {table_format}] stack (Postgres, S3, code server, daemon): start {times['start']:.1f}s, "
        f"first batch {times['first batch']:.1f}s, late batch {times['late batch']:.1f}s, "
        f"whole run {times['whole run']:.1f}s | embedded (SQLite, local folder, in process): "
        f"first batch {embedded['first batch']:.1f}s, late batch {embedded['late batch']:.1f}s"
    )
    print(line, "| healthy after (s):", {k: round(v, 1) for k, v in healthy.items()})
    with pg_log.open("rb") as handle:  # what the server complained about during this run, for the record
        handle.seek(pg_log_start)
        errors = [ln for ln in handle.read().decode(errors="replace").splitlines() if " ERROR: " in ln]
    print(f"[postgres errors, {table_format}]", sorted({ln.split(" ERROR: ", 1)[1] for ln in errors}))
    record_property("wall_times", json.dumps({"stack": times, "embedded": embedded}))
