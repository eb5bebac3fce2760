"""Least privilege in the compose stack, proved without a Docker engine:

- docker-compose.yml as Debian's `docker-compose config` resolves it (every secret a distinct
  sentinel): each secret reaches only the services that need it (the database superuser's password
  and MinIO's root keys only the containers that create roles and users), the serving containers
  share no network with the code server's gRPC port or the webserver, every container drops all
  capabilities and may not gain privileges, images are pinned, MinIO and the proxy run unprivileged,
  root filesystems are read-only where they can be, `.env` is ignored by git and by the build.
- The database roles (deploy/postgres: roles.sql by the superuser as the postgres image runs it,
  then serving-grants.sql by the catalog's owner as the catalog-init one-shot runs it) on a real
  PostgreSQL server, attacked with the credentials the compose file hands `serve`: the serving role
  reads a granted table, checks a login against its verifier and appends and completes audit rows
  (the audit chain still verifies), but cannot rewrite, complete twice, delete or truncate audit
  rows, turn masking off, set a password, grant itself anything, read the writers' leases, create a
  role or a table, switch role, or connect to Dagster's database; the owner and Dagster's role are
  no superusers either.
- The object store's read-only policy (deploy/minio/policies) on an S3 server that enforces IAM
  (moto): the serving keys read a table of the warehouse but write nothing and see no landing zone.
"""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.compose import Service, docker_compose, resolve, services
from tests.helpers.paths import BIN, REPO
from tests.helpers.postgres import PostgresServer, pg_bin

pytestmark = pytest.mark.skipif(
    docker_compose() is None, reason="docker-compose is not installed (make system-deps)"
)

SECRETS = {
    "LAKEHOUSE_PG_SUPERUSER_PASSWORD": "sentinel-superuser-pw-11",
    "LAKEHOUSE_PG_PASSWORD": "sentinel-owner-pw-22",
    "DAGSTER_PG_PASSWORD": "sentinel-dagster-pw-33",
    "LAKEHOUSE_SERVING_PG_PASSWORD": "sentinel-serving-pw-44",
    "LAKEHOUSE_MINIO_ROOT_PASSWORD": "sentinel-minio-root-55",
    "LAKEHOUSE_S3_SECRET_ACCESS_KEY": "sentinel-s3-readwrite-66",
    "LAKEHOUSE_S3_READER_SECRET_ACCESS_KEY": "sentinel-s3-reader-77",
    "LAKEHOUSE_AUDIT_KEY": "sentinel-audit-key-88",
    "LAKEHOUSE_MASKING_SALT": "sentinel-masking-salt-99",
}
NEEDED_BY = {
    # the superuser: only the database itself (its first start runs deploy/postgres as it)
    "LAKEHOUSE_PG_SUPERUSER_PASSWORD": {"postgres"},
    # the catalog's owner: the code server (and the runs it starts), the one-shot that makes the
    # tables and grants; postgres sets it on the role once
    "LAKEHOUSE_PG_PASSWORD": {"postgres", "catalog-init", "code-server"},
    "DAGSTER_PG_PASSWORD": {"postgres", "webserver", "daemon"},
    "LAKEHOUSE_SERVING_PG_PASSWORD": {"postgres", "serve", "dashboard"},
    "LAKEHOUSE_MINIO_ROOT_PASSWORD": {"minio", "minio-init"},
    "LAKEHOUSE_S3_SECRET_ACCESS_KEY": {"minio-init", "code-server"},
    "LAKEHOUSE_S3_READER_SECRET_ACCESS_KEY": {"minio-init", "serve", "dashboard"},
    # whoever writes audit rows computes their HMACs (serve, dashboard: logins and queries; the
    # runs: governed reads of the ML assets); whoever masks needs the salt
    "LAKEHOUSE_AUDIT_KEY": {"code-server", "serve", "dashboard"},
    "LAKEHOUSE_MASKING_SALT": {"code-server", "serve", "dashboard"},
}
SERVING = {"serve", "dashboard"}
DAGSTER_SIDE = {"code-server", "webserver", "daemon"}
ONE_SHOT_ROOT = {"minio-volume"}
"""The one container that runs as root: it only chowns MinIO's volume (CHOWN, no network)."""


def htpasswd_file(folder: Path) -> Path:
    path = folder / "dagster.htpasswd"
    path.write_text("operator:$6$salt$notarealhash\n")
    return path


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    htpasswd = htpasswd_file(tmp_path_factory.mktemp("compose"))
    return resolve({**SECRETS, "LAKEHOUSE_UI_HTPASSWD_FILE": str(htpasswd)})


@pytest.fixture(scope="module")
def stack(config: dict[str, Any]) -> dict[str, Service]:
    return services(config)


# --- the compose file ---------------------------------------------------------------------------------


def test_each_secret_reaches_only_who_needs_it(config: dict[str, Any], stack: dict[str, Service]) -> None:
    # what an attacker in the serve container reads from its environment: not the keys of the
    # database's superuser nor of MinIO's root (whatever variables they come from)
    superuser = stack["postgres"].environment["POSTGRES_PASSWORD"]
    root = stack["minio"].environment["MINIO_ROOT_PASSWORD"]
    for name, service in stack.items():
        if name != "postgres":
            assert superuser not in service.environment.values(), (
                f"{name} holds the database superuser's password"
            )
        if name not in ("minio", "minio-init"):
            assert root not in service.environment.values(), f"{name} holds MinIO's root password"
    for variable, secret in SECRETS.items():
        holders = {name for name, s in stack.items() if secret in s.environment.values()}
        assert holders == NEEDED_BY[variable], (variable, holders)
    # and nowhere but in an environment: not in a command, a health check, a URL, a label
    without_env = {
        name: {k: v for k, v in raw.items() if k != "environment"} for name, raw in config["services"].items()
    }
    text = yaml.safe_dump(without_env)
    assert not [v for v, secret in SECRETS.items() if secret in text]
    # the serving containers' database user is the serving role, not the owner or the superuser
    for name in SERVING:
        assert (
            stack[name]
            .environment["LAKEHOUSE_CATALOG_URI"]
            .startswith("postgresql+psycopg2://lakehouse_serving@")
        )
        assert stack[name].environment["AWS_ACCESS_KEY_ID"] == "lakehouse-reader"
    for name in ("webserver", "daemon"):
        assert stack[name].environment["DAGSTER_PG_USERNAME"] == "dagster"
        assert not any(k.startswith(("AWS_SECRET", "LAKEHOUSE_CATALOG")) for k in stack[name].environment)


def test_serving_containers_cannot_reach_the_code_server_or_the_webserver(
    config: dict[str, Any], stack: dict[str, Service]
) -> None:
    networks = {name: s.networks for name, s in stack.items()}
    for name in SERVING:
        assert networks[name] == {"serving-data", "partner"}, name
        for dagster in DAGSTER_SIDE:
            assert not networks[name] & networks[dagster], (name, dagster)
    # the gRPC network is internal (no way out), and so is the serving side's data network
    assert config["networks"]["dagster-grpc"].get("internal") is True
    assert config["networks"]["serving-data"].get("internal") is True
    # the webserver publishes nothing: the proxy, alone on `ui` with it, is the way in
    assert not stack["webserver"].ports
    assert networks["dagster-proxy"] == {"ui"}
    assert {n for n, nets in networks.items() if "ui" in nets} == {"webserver", "dagster-proxy"}
    assert [(p.host_ip, p.target) for p in stack["dagster-proxy"].ports] == [("127.0.0.1", "8080")]
    # what the serving side reaches: the database and the object store, nothing else
    assert {n for n, nets in networks.items() if nets & networks["serve"]} == {
        "serve",
        "dashboard",
        "postgres",
        "minio",
    }
    assert stack["minio-volume"].raw.get("network_mode") == "none"


def test_every_container_drops_its_capabilities(stack: dict[str, Service]) -> None:
    for name, service in stack.items():
        raw = service.raw
        assert raw.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in (raw.get("security_opt") or []), name
        added = set(raw.get("cap_add") or [])
        assert not added or (name in ONE_SHOT_ROOT and added <= {"CHOWN", "DAC_READ_SEARCH"}), (name, added)
        assert not raw.get("privileged"), name


def test_images_are_pinned(stack: dict[str, Service]) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    for name, service in stack.items():
        image = service.image
        assert image and ":" in image.rsplit("/", 1)[-1], (name, image)
        tag = image.rsplit(":", 1)[1]
        assert tag != "latest" and re.search(r"\d+\.\d+|RELEASE\.\d{4}-", tag), (name, image)
        if service.builds_lakehouse_image:
            assert image == f"lakehouse:{version}", name
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm", base), base


def test_containers_run_unprivileged_on_read_only_filesystems(stack: dict[str, Service]) -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert re.findall(r"^USER (\S+)", dockerfile, re.MULTILINE)[-1] == "lakehouse"
    users = {name: str(s.raw.get("user", "")) for name, s in stack.items()}
    assert users["minio"] == users["minio-init"] == "1000:1000"
    assert users["postgres"] == "postgres"
    assert "nginx-unprivileged" in str(stack["dagster-proxy"].image)
    for name, user in users.items():
        if name in ONE_SHOT_ROOT:
            continue
        assert user.split(":")[0] not in ("0", "root"), name
        if stack[name].builds_lakehouse_image:
            assert user == "", f"{name} overrides the image's user"
    writable = {n for n, s in stack.items() if not s.raw.get("read_only")}
    assert writable == {"code-server"}, writable  # its runs build tables (scratch files)
    for name, service in stack.items():
        if name not in writable and name not in ONE_SHOT_ROOT:
            assert "/tmp" in (service.raw.get("tmpfs") or []), name


def test_env_files_stay_out_of_git_and_of_the_image(tmp_path: Path) -> None:
    for path in (".env", "deploy/.env", "secrets/dagster.htpasswd", "dagster.htpasswd"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
        assert ignored.returncode == 0, f"{path} is not ignored by git"
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for needed in (".env", ".git", ".venv", "*.htpasswd", ".lakehouse"):
        assert any(p.rstrip("/").lstrip("*/") == needed.lstrip("*/") or p == needed for p in patterns), needed


# --- the database roles, on a real PostgreSQL server ------------------------------------------------


ROLES = {
    "LAKEHOUSE_PG_USER": "sec_owner",
    "DAGSTER_PG_USER": "sec_dagster",
    "LAKEHOUSE_SERVING_PG_USER": "sec_serving",
    "LAKEHOUSE_PG_DB": "sec_catalog",
    "DAGSTER_PG_DB": "sec_dagster_db",
}


class Roles:
    def __init__(self, postgres: PostgresServer, stack: dict[str, Service], home: Path) -> None:
        self.postgres = postgres
        self.stack = stack
        self.home = home

    def url(self, service: str, database: str | None = None) -> str:
        """The service's catalog URL with its password in it (this test's process holds several)."""
        env = self.stack[service].environment
        user = re.match(r"postgresql\+psycopg2://([^@]+)@", env["LAKEHOUSE_CATALOG_URI"]).group(1)  # type: ignore[union-attr]
        db = database or ROLES["LAKEHOUSE_PG_DB"]
        return f"postgresql+psycopg2://{user}:{env['PGPASSWORD']}@127.0.0.1:{self.postgres.port}/{db}"

    def connect(self, user: str, password: str, database: str) -> Any:
        import psycopg2

        conn = psycopg2.connect(
            host="127.0.0.1", port=self.postgres.port, user=user, password=password, dbname=database
        )
        conn.autocommit = True
        return conn

    def serving(self) -> Any:
        return self.connect(
            ROLES["LAKEHOUSE_SERVING_PG_USER"],
            SECRETS["LAKEHOUSE_SERVING_PG_PASSWORD"],
            ROLES["LAKEHOUSE_PG_DB"],
        )

    def owner(self) -> Any:
        return self.connect(
            ROLES["LAKEHOUSE_PG_USER"], SECRETS["LAKEHOUSE_PG_PASSWORD"], ROLES["LAKEHOUSE_PG_DB"]
        )

    def lakehouse(self, service: str) -> Any:
        from lakehouse.core.settings import LakehouseSettings
        from lakehouse.facade import Lakehouse

        return Lakehouse(LakehouseSettings.for_home(self.home, catalog_uri=self.url(service)))


@pytest.fixture(scope="module")
def roles(postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Roles]:
    """What `docker-compose up` does to an empty database volume, on the session's server: the
    postgres service's init scripts as its superuser (the fixture's), with its environment; then
    the catalog-init service's command with its environment. Then, as the owner (`docker-compose
    exec code-server lakehouse ...`): the seed policy, a password for the third party, one table."""
    folder = tmp_path_factory.mktemp("roles")
    variables = {
        **SECRETS,
        **ROLES,
        "LAKEHOUSE_PG_SUPERUSER": postgres.user,
        "LAKEHOUSE_PG_SUPERUSER_PASSWORD": postgres.password,
        "LAKEHOUSE_PG_HOST": "127.0.0.1",
        "LAKEHOUSE_PG_PORT": str(postgres.port),
        "LAKEHOUSE_DATA_DIR": str(folder / "home"),
        "LAKEHOUSE_APP_DIR": str(REPO),
        "LAKEHOUSE_UI_HTPASSWD_FILE": str(htpasswd_file(folder)),
    }
    stack = services(resolve(variables))
    bin_dir = pg_bin()
    assert bin_dir is not None
    path = os.pathsep.join([str(BIN), str(bin_dir), os.environ.get("PATH", "")])
    pg = stack["postgres"]
    (init,) = [m for m in pg.mounts if m.target == "/docker-entrypoint-initdb.d"]
    scripts = sorted(Path(init.source).glob("*.sh"))
    assert [s.name for s in scripts] == ["10-roles.sh"]
    for script in scripts:  # as the image runs them: the superuser, libpq's environment
        env = {
            **pg.environment,
            "PATH": path,
            "PGHOST": "127.0.0.1",
            "PGPASSWORD": pg.environment["POSTGRES_PASSWORD"],
        }
        env["LAKEHOUSE_INITDB_DIR"] = init.source
        done = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    init_service = stack["catalog-init"]
    env = {**init_service.environment, "PATH": path}
    done = subprocess.run(
        init_service.argv, cwd=init_service.working_dir, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert SECRETS["LAKEHOUSE_PG_PASSWORD"] not in done.stdout + done.stderr
    made = Roles(postgres, stack, Path(stack["serve"].environment["LAKEHOUSE_HOME"]))
    seed(made)
    try:
        yield made
    finally:
        from lakehouse.storage.catalog import CatalogDB

        CatalogDB.dispose_all()
        postgres.drop_database(ROLES["LAKEHOUSE_PG_DB"])
        postgres.drop_database(ROLES["DAGSTER_PG_DB"])
        for role in ("LAKEHOUSE_SERVING_PG_USER", "LAKEHOUSE_PG_USER", "DAGSTER_PG_USER"):
            postgres._admin(f'DROP ROLE IF EXISTS "{ROLES[role]}"')


ALICE, ALICE_PASSWORD = "RAM$alice", "alice-Pw-3391-roles"


def seed(roles: Roles) -> None:
    """The owner's work: the seed policy, alice's password, one small table built."""
    import pyarrow as pa

    from lakehouse.core.ids import TableId
    from lakehouse.serving.auth import set_password

    owner = roles.lakehouse("code-server")
    table = TableId("iov", "ads_vehicle_hourly_stat")
    rows = pa.table({"vin": ["VIN001"], "stat_hour": ["2025-09-17 23"], "total_distance": [12.5]})
    owner.tables.ensure_table(table, rows.schema, [], origin="model")
    owner.tables.overwrite_partition(table, rows, {})
    owner.apply_policy((REPO / "policies" / "iov_thirdparty.sql").read_text(), "iov")
    set_password(owner, ALICE, ALICE_PASSWORD)
    set_password(owner, "owner", "owner-Pw-7781-roles")


def denied(conn: Any, statement: str, *params: Any) -> str:
    """The statement fails for lack of a privilege or a row-security policy; the error's text."""
    import psycopg2

    with conn.cursor() as cur:
        try:
            cur.execute(statement, params or None)
        except psycopg2.Error as exc:
            assert exc.pgcode in ("42501", "42P01") or "row-level security" in str(exc), (statement, exc)
            return str(exc)
    raise AssertionError(f"the serving role was allowed: {statement}")


def one(conn: Any, statement: str, *params: Any) -> Any:
    with conn.cursor() as cur:
        cur.execute(statement, params or None)
        row = cur.fetchone()
    return row[0] if row else None


def test_the_serving_role_does_its_job(roles: Roles) -> None:
    """What serve and dashboard do, through the lakehouse's own code, as the serving role."""
    from lakehouse.serving.auth import login

    lh = roles.lakehouse("serve").for_serving()
    assert login(lh, ALICE, ALICE_PASSWORD, "test") is not None  # reads alice's verifier
    assert login(lh, ALICE, "wrong", "test") is None
    rows = lh.sql("SELECT vin, total_distance FROM iov.ads_vehicle_hourly_stat", user=ALICE).to_pylist()
    assert rows == [{"vin": "V****1", "total_distance": 12.5}]  # granted, masked, audited
    owner_view = lh.sql("SELECT vin FROM iov.ads_vehicle_hourly_stat").to_pylist()
    assert owner_view == [{"vin": "VIN001"}]
    attempt = lh.audit.begin(ALICE, ["thirdparty"], "query", "SELECT 1")
    lh.audit.end(attempt, [], [], 1, "ok", None)
    # the trail the serving role wrote verifies with the owner's eyes
    report = roles.lakehouse("code-server").audit.verify()
    assert report.ok and report.rows >= 4, report.problems
    serving = roles.serving()
    assert one(serving, "SELECT count(*) FROM gov_grants") > 0
    assert one(serving, "SELECT count(*) FROM lakehouse_tables") == 1


def test_the_serving_role_cannot_rewrite_the_audit(roles: Roles) -> None:
    serving = roles.serving()
    lh = roles.lakehouse("serve")
    done = lh.audit.begin(ALICE, ["thirdparty"], "query", "SELECT secret FROM t")
    lh.audit.end(done, ["iov.t"], [], 10, "ok", None)
    started = lh.audit.begin(ALICE, ["thirdparty"], "query", "SELECT 2")
    # who, what, when of any row
    denied(serving, "UPDATE gov_access_log SET statement = 'SELECT 1' WHERE id = %s", done)
    denied(serving, "UPDATE gov_access_log SET user_name = 'owner', row_hash = '' WHERE id = %s", done)
    # an outcome already written: row security leaves no row to update
    with serving.cursor() as cur:
        cur.execute("UPDATE gov_access_log SET status = 'denied', rows = 0 WHERE id = %s", (done,))
        assert cur.rowcount == 0
        # a started attempt completes once, never back to started
    denied(serving, "UPDATE gov_access_log SET status = 'started', reason = 'x' WHERE id = %s", started)
    # nothing goes away
    for table in ("gov_access_log", "gov_access_ends"):
        denied(serving, f"DELETE FROM {table}")
        denied(serving, f"TRUNCATE {table}")
    denied(serving, "UPDATE gov_access_ends SET entry_hash = '' ")
    # and it reads no statement of anyone (only the chain's links)
    denied(serving, "SELECT statement, user_name FROM gov_access_log")
    owner = roles.owner()
    assert one(owner, "SELECT status FROM gov_access_log WHERE id = %s", done) == "ok"
    lh.audit.end(started, [], [], 0, "ok", None)
    assert roles.lakehouse("code-server").audit.verify().ok


def test_the_serving_role_cannot_change_the_policy(roles: Roles) -> None:
    serving = roles.serving()
    # masking off for the project: the one setting insert the role has is the audit's marks
    denied(
        serving,
        "INSERT INTO gov_project_settings (namespace, key, value, updated_at) VALUES ('iov', %s, 'false', now())",
        "odps.data.masking.policy.enable",
    )
    denied(serving, "UPDATE gov_project_settings SET value = 'false'")
    denied(serving, "DELETE FROM gov_project_settings")
    denied(serving, "DELETE FROM gov_masking_bindings")
    denied(
        serving,
        "INSERT INTO gov_grants VALUES ('role', 'thirdparty', 'SELECT', 'table', 'iov.secrets', now())",
    )
    denied(serving, "INSERT INTO gov_role_members VALUES ('admin', 'ram$alice', now())")
    # passwords: it checks logins against verifiers, it never sets one
    denied(serving, "UPDATE gov_credentials SET verifier = %s WHERE user_name = 'owner'", "0" * 40)
    denied(serving, "INSERT INTO gov_credentials VALUES ('mallory', 'mysql_native_password', 'x', now())")
    denied(serving, "DELETE FROM gov_policy_changes")
    # the writers' coordination and the catalog's bookkeeping are not its to touch
    denied(serving, "SELECT * FROM lakehouse_leases")
    denied(serving, "SELECT * FROM lakehouse_workers")
    denied(serving, "DELETE FROM lakehouse_tables")
    denied(serving, "UPDATE iceberg_tables SET metadata_location = 's3://attacker/x.json'")


def test_the_serving_role_cannot_escalate(roles: Roles) -> None:
    import psycopg2

    serving = roles.serving()
    assert (
        one(
            serving,
            "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls FROM pg_roles WHERE rolname = current_user",
        )
        is False
    )
    denied(serving, "CREATE ROLE mallory LOGIN SUPERUSER PASSWORD 'x'")
    denied(serving, "CREATE ROLE mallory LOGIN")
    denied(serving, "CREATE TABLE mine (x int)")
    denied(serving, "ALTER TABLE gov_access_log DISABLE ROW LEVEL SECURITY")
    denied(serving, "DROP POLICY lakehouse_serving_complete ON gov_access_log")
    denied(serving, f"SET ROLE {ROLES['LAKEHOUSE_PG_USER']}")
    with serving.cursor() as cur:  # no grant option: PostgreSQL warns and grants nothing
        cur.execute("GRANT SELECT ON gov_credentials TO PUBLIC")
    assert one(serving, "SELECT has_table_privilege('public', 'gov_credentials', 'SELECT')") is False
    with pytest.raises(psycopg2.OperationalError, match="permission denied"):
        roles.connect(
            ROLES["LAKEHOUSE_SERVING_PG_USER"],
            SECRETS["LAKEHOUSE_SERVING_PG_PASSWORD"],
            ROLES["DAGSTER_PG_DB"],
        )
    with pytest.raises(psycopg2.OperationalError, match="permission denied"):
        roles.connect(
            ROLES["LAKEHOUSE_SERVING_PG_USER"], SECRETS["LAKEHOUSE_SERVING_PG_PASSWORD"], "postgres"
        )


def test_the_other_roles_are_no_superusers(roles: Roles) -> None:
    import psycopg2

    owner = roles.owner()
    flags = "SELECT rolsuper OR rolcreaterole OR rolcreatedb OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
    assert one(owner, flags) is False
    denied(owner, "CREATE ROLE mallory LOGIN")
    dagster = roles.connect(ROLES["DAGSTER_PG_USER"], SECRETS["DAGSTER_PG_PASSWORD"], ROLES["DAGSTER_PG_DB"])
    assert one(dagster, flags) is False
    with pytest.raises(psycopg2.OperationalError, match="permission denied"):  # Dagster's role: no catalog
        roles.connect(ROLES["DAGSTER_PG_USER"], SECRETS["DAGSTER_PG_PASSWORD"], ROLES["LAKEHOUSE_PG_DB"])
    # the code server's runs reach Dagster's database as the owner, acting as dagster there
    as_owner = roles.connect(
        ROLES["LAKEHOUSE_PG_USER"], SECRETS["LAKEHOUSE_PG_PASSWORD"], ROLES["DAGSTER_PG_DB"]
    )
    assert one(as_owner, "SELECT current_user") == ROLES["DAGSTER_PG_USER"]
    with as_owner.cursor() as cur:
        cur.execute("CREATE TABLE made_by_a_run (x int)")
    assert (
        one(dagster, "SELECT tableowner FROM pg_tables WHERE tablename = 'made_by_a_run'")
        == ROLES["DAGSTER_PG_USER"]
    )
    with dagster.cursor() as cur:
        cur.execute("DROP TABLE made_by_a_run")


def test_catalog_init_is_idempotent(roles: Roles) -> None:
    service = roles.stack["catalog-init"]
    bin_dir = pg_bin()
    env = {
        **service.environment,
        "PATH": os.pathsep.join([str(BIN), str(bin_dir), os.environ.get("PATH", "")]),
    }
    done = subprocess.run(
        service.argv, cwd=service.working_dir, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    serving = roles.serving()
    assert one(serving, "SELECT count(*) FROM gov_users") >= 1
    denied(serving, "DELETE FROM gov_access_log")


# --- the object store's users, on an S3 server that enforces IAM --------------------------------------


def bucket_policy(name: str, landing: str, warehouse: str) -> str:
    """deploy/minio/policies/<name>.json with the bucket names put in, as deploy/minio/init.sh does."""
    text = (REPO / "deploy" / "minio" / "policies" / f"{name}.json").read_text()
    script = (REPO / "deploy" / "minio" / "init.sh").read_text()
    assert 'mc admin policy create lake "$name"' in script and "__WAREHOUSE_BUCKET__" in script
    return text.replace("__LANDING_BUCKET__", landing).replace("__WAREHOUSE_BUCKET__", warehouse)


@pytest.fixture(scope="module")
def iam_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A moto server (its own process group, stopped by its id) with three users: one that may do
    anything (sets up), the code server's read-write user and the serving containers' reader, each
    with the compose stack's policy; then every request must be signed and allowed."""
    import signal
    import socket
    import sys
    import time
    import urllib.request

    import boto3

    folder = tmp_path_factory.mktemp("iam-s3")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    with (folder / "moto.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (folder / "moto.log").read_text()
                time.sleep(0.2)
        landing, warehouse = "sec-landing", "sec-warehouse"

        def client(service: str, key: str = "setup", secret: str = "setup") -> Any:
            return boto3.client(
                service,
                endpoint_url=endpoint,
                region_name="us-east-1",
                aws_access_key_id=key,
                aws_secret_access_key=secret,
            )

        iam = client("iam")
        admin = (
            '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'
        )
        keys = {}
        for user, policy in (
            ("admin", admin),
            ("writer", bucket_policy("lakehouse-readwrite", landing, warehouse)),
            ("reader", bucket_policy("warehouse-readonly", landing, warehouse)),
        ):
            iam.create_user(UserName=user)
            iam.put_user_policy(UserName=user, PolicyName="stack", PolicyDocument=policy)
            made = iam.create_access_key(UserName=user)["AccessKey"]
            keys[user] = (made["AccessKeyId"], made["SecretAccessKey"])
        s3 = client("s3")
        for bucket in (landing, warehouse):
            s3.create_bucket(Bucket=bucket)
        request = urllib.request.Request(
            f"{endpoint}/moto-api/reset-auth",
            data=b"0",
            method="POST",
            headers={"Content-Type": "text/plain"},
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200
        yield {
            "endpoint": endpoint,
            "keys": keys,
            "landing": landing,
            "warehouse": warehouse,
            "client": client,
            "home": folder / "home",
        }
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def s3_lakehouse(s3: dict[str, Any], user: str) -> Any:
    from lakehouse.core.settings import LakehouseSettings, S3Credentials
    from lakehouse.facade import Lakehouse

    key, secret = s3["keys"][user]
    settings = LakehouseSettings.for_home(
        s3["home"],
        landing_uri=f"s3://{s3['landing']}",
        warehouse_uri=f"s3://{s3['warehouse']}",
        s3=S3Credentials(s3["endpoint"], key, secret, "us-east-1"),
    )
    return Lakehouse(settings)


def test_the_serving_keys_read_the_warehouse_and_nothing_else(iam_s3: dict[str, Any]) -> None:
    import botocore.exceptions
    import pyarrow as pa

    from lakehouse.core.ids import TableId

    table = TableId("iov", "ads_vehicle_hourly_stat")
    rows = pa.table({"vin": ["VIN001", "VIN002"], "total_distance": [1.5, 2.5]})
    writer = s3_lakehouse(iam_s3, "writer")  # the code server's keys build a table
    writer.tables.ensure_table(table, rows.schema, [], origin="model")
    writer.tables.overwrite_partition(table, rows, {})
    writer.landing.write_arrow("iov/ods/dt=2025-09-17/hh=23/part-0.parquet", rows)

    reader = s3_lakehouse(iam_s3, "reader")  # serve's and the dashboard's keys read it
    assert reader.read_table(table).sort_by("vin").to_pylist() == rows.to_pylist()
    with pytest.raises(Exception, match="(?i)denied|forbidden|403"):
        reader.tables.overwrite_partition(table, rows.slice(0, 1), {})
    assert writer.read_table(table).num_rows == 2
    assert writer.landing.list_dirs() == ["iov"]
    try:  # s3fs answers a refused listing with nothing, or raises
        seen = reader.landing.list_dirs()
    except Exception as exc:  # noqa: BLE001 - refused is what we want
        seen = [repr(exc)]
        assert re.search("(?i)denied|forbidden|403", seen[0]), seen
    assert "iov" not in seen

    key, secret = iam_s3["keys"]["reader"]
    s3 = iam_s3["client"]("s3", key, secret)
    listed = s3.list_objects_v2(Bucket=iam_s3["warehouse"])["Contents"]
    for attack in (
        lambda: s3.put_object(Bucket=iam_s3["warehouse"], Key="iov/evil.parquet", Body=b"x"),
        lambda: s3.delete_object(Bucket=iam_s3["warehouse"], Key=listed[0]["Key"]),
        lambda: s3.list_objects_v2(Bucket=iam_s3["landing"]),
        lambda: s3.get_object(Bucket=iam_s3["landing"], Key="iov/ods/dt=2025-09-17/hh=23/part-0.parquet"),
        lambda: s3.create_bucket(Bucket="mine"),
    ):
        with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
            attack()
    assert s3.get_object(Bucket=iam_s3["warehouse"], Key=listed[0]["Key"])["Body"].read()
