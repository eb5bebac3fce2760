"""The Dagster webserver as an attacker meets it: a real `dagster-webserver` on 127.0.0.1 serving
the lakehouse's code location (runs launched for real, in processes of their own), attacked the
way a web page the operator opens attacks it, with a GET that an `<img src>` sends.

- A `launchRun` whose run config points the `lakehouse` resource's catalog at another server
  (a socket this test listens on, answering like PostgreSQL and asking for the password in clear)
  is refused before any run exists: nothing ever connects to that socket, so PGPASSWORD stays put.
  Before the fix the run started and libpq sent the attacker the password.
- Every setting of the resource (servers, paths, format, engine) is refused the same way.
- A `maintenance` run configured to keep no history (retention 0, keep_last 1, orphan age 0)
  fails in its first op, naming the fields, with every table's snapshots untouched; one that keeps
  more than the defaults still runs.
- In front of it, the compose file's proxy (deploy/nginx, rendered like the nginx image renders it
  from the `dagster-proxy` service's environment, run natively with Debian's nginx): no credentials
  401, a foreign Origin 403, a cross-site fetch 403, a GET (or a form POST) carrying a mutation
  405 with no run launched, an unknown Host 421; the right credentials with a same-origin POST of
  JSON reach GraphQL and launch a run.

One webserver (and one proxy) for the module: a boot costs 10-20 s."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from lakehouse.core.ids import TableId
from lakehouse.core.settings import LakehouseSettings
from lakehouse.facade import Lakehouse
from tests.helpers.env import clean_env
from tests.helpers.paths import BIN, REPO
from tests.helpers.pipeline import Pipeline, gps

pytestmark = pytest.mark.timeout(300)

PG_PASSWORD = "webserver-pgpassword-the-attacker-wants"
"""The database password the deployment hands every process as libpq's PGPASSWORD."""
UI_USER = "operator"
UI_PASSWORD = "proxy-Pw-5521-correct-horse"
TABLES = [TableId("iov", "ods_vehicle_gps_raw"), TableId("iov", "dwd_vehicle_gps")]
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
LAUNCH = """
mutation Launch($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on PythonError { message }
  }
}
"""
RUN = """
query Run($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      status
      eventConnection {
        events {
          __typename
          ... on ExecutionStepFailureEvent { error { message } }
          ... on RunFailureEvent { message }
        }
      }
    }
  }
}
"""
RUN_IDS = "{ runsOrError { __typename ... on Runs { results { runId } } } }"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the attacker's server: speaks enough PostgreSQL to be sent a password ------------------------


@dataclass
class FakePostgres:
    """A socket on 127.0.0.1 that answers like a PostgreSQL server asking for a cleartext password
    (libpq then sends PGPASSWORD as it is). Records every connection and what it was sent."""

    port: int = 0
    connections: int = 0
    passwords: list[str] = field(default_factory=list)
    _sock: socket.socket | None = None

    def start(self) -> FakePostgres:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()

    def _serve(self) -> None:
        assert self._sock is not None
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        with suppress(OSError), conn:
            packet = self._packet(conn)
            if struct.unpack("!i", packet[:4])[0] == 80877103:  # SSLRequest: no TLS here
                conn.sendall(b"N")
                packet = self._packet(conn)
            conn.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
            kind = conn.recv(1)
            (length,) = struct.unpack("!i", conn.recv(4))
            body = conn.recv(length - 4)
            if kind == b"p":
                self.passwords.append(body.rstrip(b"\0").decode(errors="replace"))

    @staticmethod
    def _packet(conn: socket.socket) -> bytes:
        (length,) = struct.unpack("!i", conn.recv(4))
        return conn.recv(length - 4)


# --- the lakehouse and the webserver ---------------------------------------------------------------


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> LakehouseSettings:
    """A lakehouse with history: one hour of GPS built three times (a late file each time), so its
    tables hold several snapshots that expiry with no retention would drop."""
    settings = LakehouseSettings.for_home(tmp_path_factory.mktemp("webserver") / "lakehouse")
    with dg.instance_for_test() as instance:
        pipeline = Pipeline(settings, instance)
        for i in range(3):
            pipeline.land(
                [gps(f"VIN{i:03d}", f"2025-09-17 23:{10 * i:02d}:00", speed=30.0 + i)],
                name=f"part-{i}.parquet",
            )
            pipeline.scan()
    return settings


def snapshot_counts(settings: LakehouseSettings) -> dict[TableId, int]:
    lh = Lakehouse(settings)
    return {table: len(lh.tables.snapshots(table)) for table in TABLES}


@dataclass
class Webserver:
    port: int
    dagster_home: Path
    location: str = ""
    repository: str = ""

    def get(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """The query as an `<img src>` (or a link, an iframe, a prefetch) sends it: a plain GET."""
        params = {"query": query, **({"variables": json.dumps(variables)} if variables else {})}
        url = f"http://127.0.0.1:{self.port}/graphql?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, headers={"Accept": "image/avif,image/webp,*/*"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            body: dict[str, Any] = json.loads(answer.read())
        return body

    def post(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as answer:
            body: dict[str, Any] = json.loads(answer.read())
        assert "errors" not in body, body
        return body

    def params(self, job: str, run_config: dict[str, Any]) -> dict[str, Any]:
        selector = {
            "repositoryLocationName": self.location,
            "repositoryName": self.repository,
            "jobName": job,
        }
        return {"executionParams": {"selector": selector, "runConfigData": run_config}}

    def run_ids(self) -> set[str]:
        return {r["runId"] for r in self.post(RUN_IDS)["data"]["runsOrError"]["results"]}

    def wait_for_run(self, run_id: str, timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.post(RUN, {"runId": run_id})["data"]["runOrError"]
            if run.get("status") in TERMINAL:
                return dict(run)
            if time.monotonic() > deadline:
                pytest.fail(f"run {run_id} still {run.get('status')} after {timeout}s")
            time.sleep(0.5)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group we started (by its id), then SIGKILL what is left of it and of
    the processes below it (the code server, run workers)."""
    family = _descendants(proc.pid)
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    for pid in family:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def webserver(lake: LakehouseSettings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webserver]:
    """`dagster-webserver -m lakehouse_assets.definitions` on 127.0.0.1 and a free port, with the
    lakehouse's environment and a PGPASSWORD like the compose services get; runs start at once (the
    default run coordinator), each in a process of its own."""
    root = tmp_path_factory.mktemp("dagster")
    dagster_home = root / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator\n"
    )
    port = free_port()
    env = clean_env(
        dict(os.environ),
        LAKEHOUSE_HOME=lake.home,
        DAGSTER_HOME=str(dagster_home),
        PGPASSWORD=PG_PASSWORD,
    )
    log = root / "webserver.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                str(BIN / "dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-m",
                "lakehouse_assets.definitions",
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Webserver(port, dagster_home)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                data = server.post(
                    "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
                    "locationOrLoadError { __typename ... on RepositoryLocation { repositories { name } } } } } } }"
                )["data"]
                (entry,) = data["workspaceOrError"]["locationEntries"]
                if entry["loadStatus"] == "LOADED":
                    assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
                    server.location = entry["name"]
                    server.repository = entry["locationOrLoadError"]["repositories"][0]["name"]
                    break
            except (OSError, urllib.error.URLError, KeyError, ValueError):
                pass
            assert time.monotonic() < deadline, f"webserver not up:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield server
    finally:
        stop_process(proc)


@pytest.fixture
def attacker() -> Iterator[FakePostgres]:
    server = FakePostgres().start()
    try:
        yield server
    finally:
        server.stop()


def launched(answer: dict[str, Any]) -> dict[str, Any]:
    assert "errors" not in answer, answer
    result: dict[str, Any] = answer["data"]["launchRun"]
    return result


def failure_messages(run: dict[str, Any]) -> str:
    messages = []
    for event in run["eventConnection"]["events"]:
        if event["__typename"] == "ExecutionStepFailureEvent":
            messages.append(event["error"]["message"])
        elif event["__typename"] == "RunFailureEvent":
            messages.append(event["message"] or "")
    return "\n".join(messages)


# --- the attacks -------------------------------------------------------------------------------------


def test_a_get_cannot_point_the_catalog_at_the_attackers_server(
    webserver: Webserver, attacker: FakePostgres
) -> None:
    evil = f"postgresql+psycopg2://lakehouse@127.0.0.1:{attacker.port}/lakehouse"
    run_config = {
        "resources": {"lakehouse": {"config": {"catalog_uri": evil}}},
        "ops": {"compact_partitions": {"config": {"dry_run": True}}},
    }
    result = launched(webserver.get(LAUNCH, webserver.params("maintenance", run_config)))
    if result["__typename"] == "LaunchRunSuccess":  # the hole: the run starts; let it do its worst
        webserver.wait_for_run(result["run"]["runId"])
    else:
        time.sleep(2)  # anything that would connect would have by now
    assert attacker.connections == 0 and not attacker.passwords, (
        f"the run connected to the attacker's server {attacker.connections} time(s); "
        f"libpq sent it the password: {PG_PASSWORD in attacker.passwords}"
    )
    assert result["__typename"] == "RunConfigValidationInvalid", result
    assert any('"catalog_uri"' in e["message"] for e in result["errors"]), result


def test_no_setting_of_the_resource_is_run_config(webserver: Webserver) -> None:
    """Servers, paths, format, engine: all the code location's; every one named in the refusal."""
    values = {
        "home": "/tmp/attacker-home",
        "landing_uri": "s3://attacker-landing",
        "warehouse_uri": "s3://attacker-warehouse",
        "catalog_uri": "postgresql+psycopg2://lakehouse@attacker.example/x",
        "table_format": "delta",
        "distance_method": "planar",
        "timezone": "Asia/Shanghai",
        "daily_start_date": "2025-01-01",
        "engine": "spark",
        "spark_remote": "sc://attacker.example:15002",
    }
    before = webserver.run_ids()
    for job in ("maintenance", "reconcile"):
        run_config = {"resources": {"lakehouse": {"config": values}}}
        result = launched(webserver.post(LAUNCH, webserver.params(job, run_config)))
        assert result["__typename"] == "RunConfigValidationInvalid", result
        refused = " ".join(e["message"] for e in result["errors"])
        assert "unexpected config entr" in refused and "root:resources:lakehouse:config" in refused
        assert all(re.search(rf"\b{name}\b", refused) for name in values), refused
    assert webserver.run_ids() == before


def test_a_get_cannot_make_maintenance_expire_the_history(
    webserver: Webserver, lake: LakehouseSettings
) -> None:
    before = snapshot_counts(lake)
    assert all(n >= 3 for n in before.values()), before
    everything = {"retention": "0", "keep_last": 1, "orphan_age": "0"}
    run_config = {"ops": {"compact_partitions": {"config": everything}}}
    result = launched(webserver.get(LAUNCH, webserver.params("maintenance", run_config)))
    if result["__typename"] == "LaunchRunSuccess":
        run = webserver.wait_for_run(result["run"]["runId"])
        status, why = run["status"], failure_messages(run)
    else:
        status, why = result["__typename"], json.dumps(result)
    after = snapshot_counts(lake)
    assert after == before, f"the run ({status}) expired snapshots: {before} -> {after}"
    assert status in ("FAILURE", "RunConfigValidationInvalid"), status
    assert all(name in why for name in ("retention", "keep_last", "orphan_age")), why


def test_maintenance_that_keeps_more_history_still_runs(
    webserver: Webserver, lake: LakehouseSettings
) -> None:
    before = snapshot_counts(lake)
    keep_more = {"retention": "30d", "keep_last": 10, "orphan_age": "2h", "dry_run": True}
    run_config = {"ops": {"compact_partitions": {"config": keep_more}}}
    result = launched(webserver.post(LAUNCH, webserver.params("maintenance", run_config)))
    assert result["__typename"] == "LaunchRunSuccess", result
    run = webserver.wait_for_run(result["run"]["runId"])
    assert run["status"] == "SUCCESS", failure_messages(run)
    assert snapshot_counts(lake) == before


# --- the proxy of docker-compose.yml in front of it --------------------------------------------------


def nginx_binary() -> str | None:
    return shutil.which("nginx") or (shutil.which("nginx", path="/usr/sbin:/sbin"))


def render_template(text: str, env: dict[str, str], pattern: str) -> str:
    """What the nginx image's 20-envsubst-on-templates.sh does: `${NAME}` / `$NAME` replaced for the
    variables defined in the environment whose name matches NGINX_ENVSUBST_FILTER; nginx's own
    `$variables` are left alone."""
    names = {n for n in env if re.search(pattern, n)}

    def swap(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(2)
        return env[name] if name in names else found.group(0)

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", swap, text)


def htpasswd_hash(password: str) -> str:
    """What an operator writes with `openssl passwd -6` (SHA-512 crypt); nginx's own {SSHA} scheme
    where openssl is missing."""
    if shutil.which("openssl"):
        done = subprocess.run(
            ["openssl", "passwd", "-6", "-stdin"], input=password, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()
    import hashlib

    salt = os.urandom(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()


@dataclass
class Proxy:
    port: int
    host: str

    def request(
        self,
        path: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        credentials: tuple[str, str] | None = (UI_USER, UI_PASSWORD),
    ) -> tuple[int, bytes]:
        all_headers = {"Host": self.host, **(headers or {})}
        if credentials is not None:
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            all_headers["Authorization"] = f"Basic {token}"
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=body, method=method, headers=all_headers
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as refused:
            return refused.code, refused.read()

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, **kwargs: Any
    ) -> tuple[int, bytes]:
        headers = {
            "Content-Type": "application/json",
            "Origin": f"http://{self.host}",
            **kwargs.pop("headers", {}),
        }
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        return self.request("/graphql", "POST", body, headers, **kwargs)


@pytest.fixture(scope="module")
def proxy(webserver: Webserver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """The `dagster-proxy` service as `docker-compose config` resolves it (its environment, its
    mounts, its secret), its templates rendered like the image renders them, run by Debian's nginx
    on 127.0.0.1 in front of the module's webserver. Files the container would see at /etc/nginx,
    /tmp and /run/secrets are put under a folder of the test's."""
    from tests.helpers.compose import docker_compose, resolve, services

    binary = nginx_binary()
    if binary is None or docker_compose() is None:
        pytest.skip("nginx or docker-compose is not installed (make system-deps)")
    port = free_port()
    root = Path(tempfile.mkdtemp(prefix="lakehouse-proxy-"))  # readable by the unprivileged user
    htpasswd = root / "htpasswd"
    hashed = htpasswd_hash(UI_PASSWORD)
    htpasswd.write_text(f"{UI_USER}:{hashed}\n")
    config = resolve(
        {
            "LAKEHOUSE_PG_SUPERUSER_PASSWORD": "unused-superuser",
            "LAKEHOUSE_PG_PASSWORD": "unused-owner",
            "DAGSTER_PG_PASSWORD": "unused-dagster",
            "LAKEHOUSE_SERVING_PG_PASSWORD": "unused-serving",
            "LAKEHOUSE_MINIO_ROOT_PASSWORD": "unused-root",
            "LAKEHOUSE_S3_SECRET_ACCESS_KEY": "unused-s3",
            "LAKEHOUSE_S3_READER_SECRET_ACCESS_KEY": "unused-reader",
            "LAKEHOUSE_UI_HTPASSWD_FILE": str(htpasswd),
            "LAKEHOUSE_BIND_HOST": "127.0.0.1",
            "LAKEHOUSE_PROXY_PORT": str(port),
            "LAKEHOUSE_WEBSERVER_HOST": "127.0.0.1",
            "LAKEHOUSE_WEBSERVER_PORT": str(webserver.port),
        }
    )
    service = services(config)["dagster-proxy"]
    env = service.environment
    container = {m.target: Path(m.source) for m in service.mounts if m.is_bind}
    secrets = {s["source"]: config["secrets"][s["source"]]["file"] for s in service.raw["secrets"]}
    assert Path(secrets["dagster_htpasswd"]) == htpasswd
    conf_d, tmp = root / "conf.d", root / "tmp"
    conf_d.mkdir()
    tmp.mkdir()
    moved = {
        "/etc/nginx/conf.d": str(conf_d),
        "/tmp/": f"{tmp}/",
        "/run/secrets/dagster_htpasswd": str(htpasswd),
        "/dev/stdout": str(root / "access.log"),
    }

    def realize(text: str) -> str:  # one pass: a moved path is not moved again
        return re.sub("|".join(map(re.escape, moved)), lambda found: moved[found.group(0)], text)

    output = env.get("NGINX_ENVSUBST_OUTPUT_DIR", "/etc/nginx/conf.d")
    assert output == "/etc/nginx/conf.d" and "/etc/nginx/conf.d" in service.raw["tmpfs"]
    for template in sorted(container["/etc/nginx/templates"].glob("*.template")):
        rendered = render_template(template.read_text(), env, env.get("NGINX_ENVSUBST_FILTER", ""))
        (conf_d / template.name.removesuffix(".template")).write_text(realize(rendered))
    main_conf = root / "nginx.conf"
    main_conf.write_text(realize(container["/etc/nginx/nginx.conf"].read_text()))
    as_user: list[str] = []
    if os.geteuid() == 0:  # like the image: not root (the master would otherwise switch workers)
        for path in [root, *root.rglob("*")]:
            shutil.chown(path, "nobody")
        as_user = ["runuser", "-u", "nobody", "--"]
    argv = [*as_user, binary, "-c", str(main_conf), "-e", str(root / "error.log"), "-g", "daemon off;"]
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    served = Proxy(port, f"127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            with suppress(OSError):
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                check = subprocess.run([*argv[:-2], "-t"], capture_output=True, text=True)
                pytest.fail(f"nginx did not start: {check.stderr}\n{(root / 'error.log').read_text()}")
            time.sleep(0.1)
        health = service.healthcheck
        assert health is not None and any("/proxy-health" in word for word in health), health
        yield served
    finally:
        stop_process(proc)
        shutil.rmtree(root, ignore_errors=True)


def test_the_proxy_wants_credentials(proxy: Proxy) -> None:
    for credentials in (None, (UI_USER, "wrong"), ("nobody", UI_PASSWORD)):
        assert proxy.request("/", credentials=credentials)[0] == 401
        assert proxy.graphql("{ version }", credentials=credentials)[0] == 401
    assert proxy.request("/server_info", credentials=None)[0] == 401


def test_the_proxy_refuses_another_origin(proxy: Proxy, webserver: Webserver) -> None:
    """A page elsewhere whose script POSTs with the browser's remembered credentials."""
    before = webserver.run_ids()
    params = webserver.params("maintenance", {"ops": {"compact_partitions": {"config": {"dry_run": True}}}})
    for origin in (
        "http://attacker.example",
        "null",
        f"http://127.0.0.1:{proxy.port + 1}",
        "https://127.0.0.1.attacker.example",
    ):
        status, _ = proxy.graphql(LAUNCH, params, headers={"Origin": origin})
        assert status == 403, origin
        assert proxy.graphql(LAUNCH, params, headers={"Origin": origin}, credentials=None)[0] == 403
    form = urllib.parse.urlencode({"query": LAUNCH, "variables": json.dumps(params)}).encode()
    status, _ = proxy.request(
        "/report_asset_materialization/iov/ods_vehicle_gps_raw",
        "POST",
        form,
        {"Origin": "http://attacker.example", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 403
    # a browser fetch from another site (or another port of this host) without an Origin header
    for site in ("cross-site", "same-site"):
        assert proxy.request("/graphql", "POST", form, {"Sec-Fetch-Site": site})[0] == 403
    assert webserver.run_ids() == before


def test_the_proxy_refuses_a_mutation_in_a_get(proxy: Proxy, webserver: Webserver) -> None:
    """The `<img src>` attack through the proxy, with the credentials the browser remembers."""
    before = webserver.run_ids()
    params = webserver.params("maintenance", {"ops": {"compact_partitions": {"config": {"dry_run": True}}}})
    query = urllib.parse.urlencode({"query": LAUNCH, "variables": json.dumps(params)})
    status, _ = proxy.request(f"/graphql?{query}", headers={"Accept": "image/avif,image/webp,*/*"})
    assert status == 405
    # the same mutation in a form POST (no CORS preflight), in the query string or the body
    assert proxy.request(f"/graphql?{query}", "POST", b"", {"Content-Type": "text/plain"})[0] == 405
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    assert proxy.request("/graphql", "POST", query.encode(), form)[0] == 405
    assert webserver.run_ids() == before
    # the webserver itself runs what a GET asks (why nothing but the proxy may reach it)
    assert webserver.get("{ version }")["data"]["version"]


def test_the_proxy_refuses_a_host_it_does_not_serve(proxy: Proxy) -> None:
    """DNS rebinding: attacker.example resolving to this machine."""
    for host in ("attacker.example", f"attacker.example:{proxy.port}", "127.0.0.2"):
        assert proxy.request("/", headers={"Host": host})[0] == 421, host


def test_the_operator_gets_through(proxy: Proxy, webserver: Webserver) -> None:
    status, page = proxy.request("/", headers={"Accept": "text/html"})
    assert status == 200 and b"<html" in page.lower()
    status, body = proxy.graphql("{ version }")
    assert status == 200 and json.loads(body)["data"]["version"]
    # a same-origin POST (the UI's own request) launches a run; the browser says same-origin
    params = webserver.params("maintenance", {"ops": {"compact_partitions": {"config": {"dry_run": True}}}})
    status, body = proxy.graphql(LAUNCH, params, headers={"Sec-Fetch-Site": "same-origin"})
    assert status == 200, body
    result = json.loads(body)["data"]["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    assert webserver.wait_for_run(result["run"]["runId"])["status"] == "SUCCESS"


def websocket_handshake(proxy: Proxy, origin: str) -> int:
    """The UI's GraphQL subscription socket: the status line of the handshake's answer."""
    token = base64.b64encode(f"{UI_USER}:{UI_PASSWORD}".encode()).decode()
    request = (
        "GET /graphql HTTP/1.1\r\n"
        f"Host: {proxy.host}\r\nOrigin: {origin}\r\nAuthorization: Basic {token}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
        "Sec-WebSocket-Protocol: graphql-ws\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as sock:
        sock.sendall(request.encode())
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    return int(status_line.split()[1])


def test_the_uis_websocket_passes_from_its_own_origin_only(proxy: Proxy) -> None:
    assert websocket_handshake(proxy, f"http://{proxy.host}") == 101
    assert websocket_handshake(proxy, "http://attacker.example") == 403
