"""docker-compose.yml as Debian's docker-compose (v1) resolves it, with no Docker engine: every
service of the stack is there with a health check, state is kept in volumes, ports are published on
127.0.0.1 only, and secrets come from the environment alone (no default, never in a command, a URL
or deploy/dagster.yaml). tests/e2e/test_stack.py runs the resolved commands; who gets which secret,
networks, capabilities, pinned images and the database roles are tests/serving/test_security_compose.py's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.compose import COMPOSE_FILE, Service, docker_compose, resolve, services
from tests.helpers.paths import BIN, REPO

pytestmark = pytest.mark.skipif(
    docker_compose() is None,
    reason="docker-compose is not installed (make install, or apt-get install --no-install-recommends docker-compose)",
)

PG_SECRET = "sentinel-pg-password-71"
S3_SECRET = "sentinel-s3-secret-93"
DAGSTER_SECRET = "sentinel-dagster-password-24"
SERVING_SECRET = "sentinel-serving-password-35"
SUPERUSER_SECRET = "sentinel-superuser-password-46"
MINIO_SECRET = "sentinel-minio-root-57"
READER_SECRET = "sentinel-s3-reader-68"
SECRETS = {
    "LAKEHOUSE_PG_PASSWORD": PG_SECRET,
    "LAKEHOUSE_S3_SECRET_ACCESS_KEY": S3_SECRET,
    "DAGSTER_PG_PASSWORD": DAGSTER_SECRET,
    "LAKEHOUSE_SERVING_PG_PASSWORD": SERVING_SECRET,
    "LAKEHOUSE_PG_SUPERUSER_PASSWORD": SUPERUSER_SECRET,
    "LAKEHOUSE_MINIO_ROOT_PASSWORD": MINIO_SECRET,
    "LAKEHOUSE_S3_READER_SECRET_ACCESS_KEY": READER_SECRET,
}
SERVICES = {
    "postgres",
    "minio-volume",
    "minio",
    "minio-init",
    "catalog-init",
    "code-server",
    "webserver",
    "dagster-proxy",
    "daemon",
    "serve",
    "dashboard",
}
ONE_SHOT = {"minio-volume", "minio-init", "catalog-init"}
LAKEHOUSE_IMAGE = {"catalog-init", "code-server", "webserver", "daemon", "serve", "dashboard"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET|SALT|AUDIT_KEY|TOKEN")
SECRET_CARRIERS = {
    "PGPASSWORD",
    "POSTGRES_PASSWORD",
    "LAKEHOUSE_PG_PASSWORD",
    "DAGSTER_PG_PASSWORD",
    "LAKEHOUSE_SERVING_PG_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "MINIO_ROOT_PASSWORD",
    "S3_SECRET_ACCESS_KEY",
    "S3_READER_SECRET_ACCESS_KEY",
}
"""The only environment variables a secret is handed in (the postgres container gets the roles'
passwords under their own names, for its first start)."""


@pytest.fixture(scope="module")
def htpasswd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose") / "dagster.htpasswd"
    path.write_text("operator:$6$salt$notarealhash\n")
    return path


@pytest.fixture(scope="module")
def required(htpasswd: Path) -> dict[str, str]:
    """The file's required values: the secrets and the proxy's credentials file."""
    return {**SECRETS, "LAKEHOUSE_UI_HTPASSWD_FILE": str(htpasswd)}


@pytest.fixture(scope="module")
def config(required: dict[str, str]) -> dict[str, Any]:
    """The file with only the required values given: every other value is the file's default."""
    return resolve(required)


@pytest.fixture(scope="module")
def stack(config: dict[str, Any]) -> dict[str, Service]:
    return services(config)


def named_mounts(service: Service) -> dict[str, str]:
    return {m.source: m.target for m in service.mounts if not m.is_bind}


def test_every_service_of_the_stack_is_there_with_a_health_check(stack: dict[str, Service]) -> None:
    assert set(stack) == SERVICES
    for name, service in stack.items():
        if name in ONE_SHOT:
            assert service.raw.get("restart") == "no"
            dependents = [s for s in stack.values() if s.depends_on.get(name)]
            assert dependents and all(
                s.depends_on[name] == "service_completed_successfully" for s in dependents
            )
            continue
        assert service.healthcheck, f"{name} has no health check"
        assert service.raw.get("restart") == "unless-stopped", name
    # a service starts once what it needs is healthy, not merely started
    for service in stack.values():
        for dependency, condition in service.depends_on.items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert condition == expected, (service.name, dependency, condition)
    assert stack["webserver"].depends_on == {"code-server": "service_healthy"}
    assert stack["daemon"].depends_on == {"code-server": "service_healthy"}
    assert stack["dagster-proxy"].depends_on == {"webserver": "service_healthy"}
    # the catalog's tables and the serving role's grants exist before anything opens the catalog
    for name in ("code-server", "serve", "dashboard"):
        assert stack[name].depends_on["catalog-init"] == "service_completed_successfully", name


def test_state_is_kept_in_volumes(config: dict[str, Any], stack: dict[str, Service]) -> None:
    declared = set(config["volumes"])
    used = {source for s in stack.values() for source in named_mounts(s)}
    assert used == declared == {"postgres-data", "minio-data", "lakehouse-home", "dagster-storage"}
    assert named_mounts(stack["postgres"]) == {"postgres-data": "/var/lib/postgresql/data"}
    assert named_mounts(stack["minio"]) == named_mounts(stack["minio-volume"]) == {"minio-data": "/data"}
    # the lakehouse home (audit key, masking salt, the audit chain's anchor) is one volume, shared by
    # every process that opens the lakehouse; Dagster's storage by every process of the instance
    for name in ("code-server", "serve", "dashboard"):
        home = stack[name].environment["LAKEHOUSE_HOME"]
        assert named_mounts(stack[name])["lakehouse-home"] == home, name
    for name in ("code-server", "webserver", "daemon"):
        dagster_home = stack[name].environment["DAGSTER_HOME"]
        assert named_mounts(stack[name])["dagster-storage"] == f"{dagster_home}/storage", name
        binds = {m.target: m for m in stack[name].mounts if m.is_bind}
        mount = binds[f"{dagster_home}/dagster.yaml"]
        assert Path(mount.source) == REPO / "deploy" / "dagster.yaml" and mount.read_only
    # the database's first start makes the roles and both databases (deploy/postgres)
    (init,) = [m for m in stack["postgres"].mounts if m.is_bind]
    assert init.target == "/docker-entrypoint-initdb.d" and init.read_only
    assert [p.name for p in Path(init.source).glob("*.sh")] == ["10-roles.sh"]
    roles = (Path(init.source) / "sql" / "roles.sql").read_text()
    assert "CREATE DATABASE" in roles and ":'dagster_db'" in roles


def test_ports_are_published_on_loopback_only(stack: dict[str, Service], required: dict[str, str]) -> None:
    published = {(s.name, p.published, p.target, p.host_ip) for s in stack.values() for p in s.ports}
    assert published == {
        ("postgres", "5432", "5432", "127.0.0.1"),
        ("minio", "9000", "9000", "127.0.0.1"),
        ("minio", "9001", "9001", "127.0.0.1"),
        ("dagster-proxy", "3000", "8080", "127.0.0.1"),
        ("serve", "9030", "9030", "127.0.0.1"),
        ("dashboard", "8501", "8501", "127.0.0.1"),
    }
    # other ports move the published port, never the address it is published on
    moved = services(
        resolve({**required, "LAKEHOUSE_SERVE_PORT": "19030", "LAKEHOUSE_BIND_HOST": "10.1.2.3"})
    )
    assert {p.host_ip for s in moved.values() for p in s.ports} == {"127.0.0.1"}
    assert [(p.published, p.target) for p in moved["serve"].ports] == [("19030", "19030")]


def test_services_listen_on_every_address_inside_their_container(stack: dict[str, Service]) -> None:
    """Inside the compose network a service must accept other containers: 0.0.0.0 by default. The
    SQL endpoint and the dashboard refuse that without their flag, which is harmless on loopback."""
    argv = {name: stack[name].argv for name in LAKEHOUSE_IMAGE}
    assert argv["code-server"][:3] == ["dagster", "code-server", "start"]
    assert argv["code-server"][7:9] == ["-m", "lakehouse_assets.definitions"]
    assert argv["webserver"][0] == "dagster-webserver" and argv["daemon"][:2] == ["dagster-daemon", "run"]
    for name, flag in (
        ("code-server", "-h"),
        ("webserver", "-h"),
        ("serve", "--host"),
        ("dashboard", "--host"),
    ):
        assert argv[name][argv[name].index(flag) + 1] == "0.0.0.0", name
    assert "--allow-insecure-remote" in argv["serve"] and "--allow-remote" in argv["dashboard"]
    assert stack["dagster-proxy"].environment["LAKEHOUSE_PROXY_LISTEN"] == "0.0.0.0:8080"
    assert stack["dagster-proxy"].environment["LAKEHOUSE_WEBSERVER_UPSTREAM"] == "webserver:3000"
    for name in ("webserver", "daemon"):
        assert argv[name][argv[name].index("-w") + 1] == "deploy/workspace.yaml"
        env = stack[name].environment
        assert (env["LAKEHOUSE_CODE_SERVER_HOST"], env["LAKEHOUSE_CODE_SERVER_PORT"]) == (
            "code-server",
            "4000",
        )
    assert argv["code-server"][argv["code-server"].index("-p") + 1] == "4000"
    for name in LAKEHOUSE_IMAGE:
        assert (BIN / argv[name][0]).exists(), f"{argv[name][0]} is not installed by the project"


def test_secrets_come_from_the_environment_only(
    config: dict[str, Any], stack: dict[str, Service], required: dict[str, str]
) -> None:
    for variable in required:
        with pytest.raises(RuntimeError, match=variable):
            resolve({k: v for k, v in required.items() if k != variable})
    secrets = set(SECRETS.values())
    # every secret-looking variable is one of the given secrets, or empty (optional, generated)
    for service in stack.values():
        for name, value in service.environment.items():
            if SECRET_NAME.search(name):
                assert value in secrets or (value == "" and name not in SECRET_CARRIERS), (
                    service.name,
                    name,
                )
            if value in secrets:
                assert name in SECRET_CARRIERS, (service.name, name)
    # ...and appears nowhere else: not in a command, a health check, a URL, a label
    without_env = {
        name: {k: v for k, v in raw.items() if k != "environment"} for name, raw in config["services"].items()
    }
    text = yaml.safe_dump(without_env)
    assert not [s for s in secrets if s in text]
    # a database password is libpq's PGPASSWORD, never part of a connection URL
    for name, user in (
        ("catalog-init", "lakehouse"),
        ("code-server", "lakehouse"),
        ("serve", "lakehouse_serving"),
        ("dashboard", "lakehouse_serving"),
    ):
        uri = stack[name].environment["LAKEHOUSE_CATALOG_URI"]
        assert re.fullmatch(rf"postgresql\+psycopg2://{user}@postgres:5432/lakehouse", uri), uri
    # which service gets which secret: tests/serving/test_security_compose.py
    # no default secret in the file itself
    raw = COMPOSE_FILE.read_text()
    assert not re.search(r"\$\{[A-Z_]*(PASSWORD|SECRET)[A-Z_]*:?-", raw)
    assert not re.search(r"(PASSWORD|SECRET)[A-Z_]*:\s+[^\s$]", raw)


def test_dagster_instance_is_postgres_with_credentials_from_the_environment(
    stack: dict[str, Service],
) -> None:
    instance = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    db = instance["storage"]["postgres"]["postgres_db"]
    assert db.pop("scheme") == "postgresql+psycopg2"  # SQLAlchemy 2.1: plain postgresql:// is psycopg 3
    assert "password" not in db  # libpq reads PGPASSWORD
    assert all(set(v) == {"env"} for v in db.values()), db
    for name, password, user in (
        ("code-server", PG_SECRET, "lakehouse"),  # the owner, acting as dagster in Dagster's database
        ("webserver", DAGSTER_SECRET, "dagster"),
        ("daemon", DAGSTER_SECRET, "dagster"),
    ):
        env = stack[name].environment
        assert all(v["env"] in env for v in db.values()), name
        assert (env["PGPASSWORD"], env["DAGSTER_PG_USERNAME"]) == (password, user), name
    assert instance["telemetry"] == {"enabled": False}
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"


def test_the_workspace_reaches_the_code_server_through_the_environment(
    stack: dict[str, Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dagster resolves `env:` in workspace.yaml's grpc_server host and port."""
    from dagster._core.remote_origin import GrpcServerCodeLocationOrigin
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    env = stack["daemon"].environment
    for key in ("LAKEHOUSE_CODE_SERVER_HOST", "LAKEHOUSE_CODE_SERVER_PORT"):
        monkeypatch.setenv(key, env[key])
    (origin,) = location_origins_from_yaml_paths([str(REPO / "deploy" / "workspace.yaml")])
    assert isinstance(origin, GrpcServerCodeLocationOrigin)
    assert (origin.location_name, origin.host, origin.port) == ("lakehouse", "code-server", 4000)
    assert stack["code-server"].argv[-2:] == ["--location-name", "lakehouse"]


def test_the_lakehouse_image(config: dict[str, Any], stack: dict[str, Service]) -> None:
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.MULTILINE)
    assert "pip install -c constraints.txt -e '.[serve,postgres]'" in dockerfile
    workdir = re.findall(r"^WORKDIR (\S+)", dockerfile, re.MULTILINE)[-1]
    copied = set(re.findall(r"^COPY (?:\S+ )*?(\S+)/ \1/$", dockerfile, re.MULTILINE))
    assert {
        "lakehouse",
        "lakehouse_assets",
        "sensors",
        "resources",
        "dbt_like_sql",
        "policies",
        "deploy",
    } <= copied
    for name in LAKEHOUSE_IMAGE:
        raw = stack[name].raw
        assert raw["build"] == {"context": str(REPO), "dockerfile": "deploy/Dockerfile"}, name
        assert raw["image"] == "lakehouse:0.1.0" and raw["working_dir"] == workdir, name
    assert "USER lakehouse" in dockerfile  # no service runs as root
