"""Connections are rows anyone who can write the catalog may write (a shared PostgreSQL catalog):
such a row must not make the daemon send the platform's own secrets (LAKEHOUSE_AUDIT_KEY,
PGPASSWORD, its own AWS keys) to a server of the writer's choice, nor any key in clear over the
network. The "attacker's server" here is a listener of our own on loopback that records every
request it gets (started and stopped by PID); it answers 403 to everything.

Each attack goes through the commands that use a connection: `lakehouse datascan run`, `lakehouse
scan`, `lakehouse connection show --check`, with the row added through `lakehouse connection add`
or written straight into the catalog (which never goes through `add`)."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lakehouse.cli.main import main
from tests.helpers.env import UNSET
from tests.helpers.paths import REPO

AUDIT_KEY = "audit-key-of-the-platform-7f3a9c1e5b2d4f6a8c0e"
PG_PASSWORD = "pg-password-of-the-platform-91b2"
OWN_KEY_ID = "AKIAPLATFORMOWNKEY0001"
OWN_SECRET = "own-secret-access-key-of-the-lakehouse-0123"
CONN_KEY_ID = "AKIACONNECTIONKEY0001"
CONN_SECRET = "secret-of-connection-lan-abcdef0123456789"
SECRETS = [AUDIT_KEY, PG_PASSWORD, OWN_KEY_ID, OWN_SECRET, CONN_KEY_ID, CONN_SECRET]

LISTENER = r"""
import http.server, json, sys
log = open(sys.argv[1], "a", buffering=1)
class Handler(http.server.BaseHTTPRequestHandler):
    def _any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("latin-1") if length else ""
        log.write(json.dumps({"line": self.requestline, "headers": dict(self.headers), "body": body}) + "\n")
        payload = b"<Error><Code>AccessDenied</Code><Message>no</Message></Error>"
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
    do_GET = do_HEAD = do_POST = do_PUT = _any
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
open(sys.argv[2], "w").write(str(server.server_address[1]))
server.serve_forever()
"""


class Listener:
    """An HTTP server on 127.0.0.1 that records what it is sent (a server of the attacker's)."""

    def __init__(self, root: Path) -> None:
        self.log = root / "requests.jsonl"
        self.log.touch()
        port_file = root / "port"
        self.proc = subprocess.Popen([sys.executable, "-c", LISTENER, str(self.log), str(port_file)])
        deadline = time.monotonic() + 10
        while not (port_file.exists() and port_file.read_text()):
            assert self.proc.poll() is None and time.monotonic() < deadline, "the listener did not start"
            time.sleep(0.02)
        self.port = int(port_file.read_text())

    def requests(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def received(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        self.proc.terminate()  # by its PID: the process this test started
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    (tmp_path / "listener").mkdir()
    server = Listener(tmp_path / "listener")
    try:
        yield server
    finally:
        server.stop()


class Lake:
    """`lakehouse ...` in-process, in a daemon's environment: the platform's secrets are in it."""

    def __init__(self, root: Path) -> None:
        (root / "dh").mkdir(parents=True, exist_ok=True)
        self.home = root / "lh"
        self.env: dict[str, str | None] = {k: None for k in UNSET}
        self.env.update(
            LAKEHOUSE_HOME=str(self.home),
            DAGSTER_HOME=str(root / "dh"),
            LAKEHOUSE_AUDIT_KEY=AUDIT_KEY,
            PGPASSWORD=PG_PASSWORD,
            AWS_ACCESS_KEY_ID=OWN_KEY_ID,
            AWS_SECRET_ACCESS_KEY=OWN_SECRET,
            AWS_REGION="us-east-1",
            LAKEHOUSE_CONN_LAN_KEY=CONN_KEY_ID,
            LAKEHOUSE_CONN_LAN_SECRET=CONN_SECRET,
            AWS_MAX_ATTEMPTS="1",
        )

    def __call__(self, *args: str) -> Result:
        result = CliRunner().invoke(main, list(args), env=self.env, catch_exceptions=False)
        for secret in SECRETS:
            assert secret not in result.stdout + result.stderr, f"a secret was printed by {args}"
        return result

    def write_rows(self, *statements: tuple[str, tuple[object, ...]]) -> None:
        """Rows written straight into the catalog database (no `lakehouse connection add`)."""
        self("connection", "list")  # the catalog's tables exist
        with sqlite3.connect(self.home / "catalog.db") as db:
            for sql, params in statements:
                db.execute(sql, params)

    def connection_row(self, name: str, endpoint: str, key_env: str | None, secret_env: str | None) -> None:
        self.write_rows(
            (
                "insert into lakehouse_connections (name, endpoint, access_key_env, secret_key_env, "
                "created_at) values (?, ?, ?, ?, '2026-01-01 00:00:00')",
                (name, endpoint, key_env, secret_env),
            )
        )

    def task_row(self, name: str, connection: str) -> None:
        self.write_rows(
            (
                "insert into lakehouse_datascan_tasks (name, location, namespace, connection, "
                "interval_seconds, table_prefix, created_at) values (?, ?, ?, ?, 60, '', "
                "'2026-01-01 00:00:00')",
                (name, f"s3://loot/{name}", name, connection),
            )
        )


def _assert_refused(result: Result, *fragments: str) -> None:
    assert result.exit_code != 0, result.stdout + result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# --- the platform's secrets as a connection's keys ---------------------------------------------


@pytest.mark.parametrize(
    ("key_env", "secret_env", "named"),
    [
        ("LAKEHOUSE_AUDIT_KEY", "PGPASSWORD", "LAKEHOUSE_AUDIT_KEY"),
        ("LAKEHOUSE_CONN_EVIL_KEY", "PGPASSWORD", "PGPASSWORD"),
        ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"),
        ("DAGSTER_PG_PASSWORD", "LAKEHOUSE_CONN_EVIL_SECRET", "DAGSTER_PG_PASSWORD"),
        ("LAKEHOUSE_MASKING_SALT", "LAKEHOUSE_CONN_EVIL_SECRET", "LAKEHOUSE_MASKING_SALT"),
        # another connection's keys are not this one's either
        ("LAKEHOUSE_CONN_LAN_KEY", "LAKEHOUSE_CONN_LAN_SECRET", "LAKEHOUSE_CONN_LAN_KEY"),
    ],
)
def test_connection_add_refuses_variables_not_named_for_the_connection(
    tmp_path: Path, listener: Listener, key_env: str, secret_env: str, named: str
) -> None:
    lake = Lake(tmp_path)
    added = lake("connection", "add", "evil", "--endpoint", f"http://127.0.0.1:{listener.port}",
                 "--access-key-env", key_env, "--secret-key-env", secret_env)  # fmt: skip
    _assert_refused(added, named, "LAKEHOUSE_CONN_EVIL_")
    listed = json.loads(lake("connection", "list", "--format", "json").stdout)
    assert listed == []
    assert listener.requests() == []


@pytest.mark.parametrize(
    "command",
    [("datascan", "run", "loot"), ("scan",), ("connection", "show", "evil", "--check")],
    ids=["datascan-run", "scan", "connection-check"],
)
def test_a_row_written_into_the_catalog_cannot_send_the_audit_key_to_its_server(
    tmp_path: Path, listener: Listener, command: tuple[str, ...]
) -> None:
    lake = Lake(tmp_path)
    lake.connection_row("evil", f"http://127.0.0.1:{listener.port}", "LAKEHOUSE_AUDIT_KEY", "PGPASSWORD")
    lake.task_row("loot", "evil")
    result = lake(*command)
    for secret in SECRETS:
        assert secret not in listener.received(), "a secret of the platform reached the row's server"
    assert listener.requests() == [], "the daemon talked to the row's server"
    _assert_refused(result, "connection evil refused", "LAKEHOUSE_AUDIT_KEY")


def test_a_connection_changed_in_the_catalog_after_add_is_checked_again_when_used(
    tmp_path: Path, listener: Listener
) -> None:
    lake = Lake(tmp_path)
    endpoint = f"http://127.0.0.1:{listener.port}"
    lake("connection", "add", "lan", "--endpoint", endpoint, "--access-key-env", "LAKEHOUSE_CONN_LAN_KEY",
         "--secret-key-env", "LAKEHOUSE_CONN_LAN_SECRET")  # fmt: skip
    lake("datascan", "add", "loot", "--location", "s3://loot/x", "--namespace", "loot", "--connection", "lan")
    lake.write_rows(
        ("update lakehouse_connections set access_key_env = 'LAKEHOUSE_AUDIT_KEY' where name = 'lan'", ())
    )
    result = lake("datascan", "run", "loot")
    assert AUDIT_KEY not in listener.received() and listener.requests() == []
    _assert_refused(result, "connection lan refused", "LAKEHOUSE_AUDIT_KEY")


# --- plain http off this machine ----------------------------------------------------------------

# 0.0.0.0 is no loopback address, but a connection to it reaches this machine's listeners: the test
# stays on the machine and sees what the daemon would have sent across a network.


def test_plain_http_to_a_host_that_is_not_loopback_is_refused_at_add_and_at_use(
    tmp_path: Path, listener: Listener
) -> None:
    lake = Lake(tmp_path)
    endpoint = f"http://0.0.0.0:{listener.port}"
    keys = ("--access-key-env", "LAKEHOUSE_CONN_LAN_KEY", "--secret-key-env", "LAKEHOUSE_CONN_LAN_SECRET")
    _assert_refused(lake("connection", "add", "lan", "--endpoint", endpoint, *keys), "plain http", endpoint)
    # the same row written straight into the catalog (no allow_http): refused when used
    lake.connection_row("lan", endpoint, "LAKEHOUSE_CONN_LAN_KEY", "LAKEHOUSE_CONN_LAN_SECRET")
    lake.task_row("loot", "lan")
    result = lake("datascan", "run", "loot")
    assert listener.requests() == [], "keys went over plain http"
    assert CONN_KEY_ID not in listener.received()
    _assert_refused(result, "connection lan refused", "plain http")


def test_allow_http_given_at_add_is_stored_and_lets_plain_http_through(
    tmp_path: Path, listener: Listener
) -> None:
    lake = Lake(tmp_path)
    endpoint = f"http://0.0.0.0:{listener.port}"
    added = lake("connection", "add", "lan", "--endpoint", endpoint, "--allow-http",
                 "--access-key-env", "LAKEHOUSE_CONN_LAN_KEY", "--secret-key-env", "LAKEHOUSE_CONN_LAN_SECRET")  # fmt: skip
    assert added.exit_code == 0, added.stderr
    [row] = json.loads(lake("connection", "list", "--format", "json").stdout)
    assert row["allow_http"] is True
    lake("datascan", "add", "loot", "--location", "s3://loot/x", "--namespace", "loot", "--connection", "lan")
    result = lake("datascan", "run", "loot")
    assert result.exit_code != 0 and "connection lan cannot read s3://loot/x" in result.stderr
    assert listener.requests(), "the allowed endpoint was asked"
    assert CONN_SECRET not in listener.received()  # signed with the secret, never sent


# --- the lakehouse's own AWS keys ---------------------------------------------------------------


def test_a_connection_without_keys_never_signs_with_the_lakehouses_own_keys_for_another_server(
    tmp_path: Path, listener: Listener
) -> None:
    lake = Lake(tmp_path)
    endpoint = f"http://127.0.0.1:{listener.port}"
    _assert_refused(lake("connection", "add", "evil", "--endpoint", endpoint), "own AWS credentials")
    lake.connection_row("evil", endpoint, None, None)
    lake.task_row("loot", "evil")
    result = lake("datascan", "run", "loot")
    assert OWN_KEY_ID not in listener.received() and listener.requests() == []
    _assert_refused(result, "connection evil refused", "own AWS credentials")
    # at the lakehouse's own endpoint they are what it uses anyway
    lake.env["AWS_ENDPOINT_URL"] = endpoint
    assert lake("connection", "add", "own", "--endpoint", endpoint).exit_code == 0


# --- the allow-list's promise ---------------------------------------------------------------------


def test_no_setting_of_the_platform_can_be_named_as_a_connection_key() -> None:
    from lakehouse.landing.connections import problem
    from lakehouse.storage.discovery import ConnectionRecord

    names: set[str] = set()
    for package in ("lakehouse", "lakehouse_assets", "sensors", "resources"):
        for path in (REPO / package).rglob("*.py"):
            if path.name == "connections.py" and path.parent.name == "landing":
                continue
            names |= set(re.findall(r"[\"'](LAKEHOUSE_[A-Z0-9_]+)[\"']", path.read_text()))
    assert {"LAKEHOUSE_AUDIT_KEY", "LAKEHOUSE_MASKING_SALT", "LAKEHOUSE_CATALOG_URI"} <= names
    assert not [n for n in names if n.startswith("LAKEHOUSE_CONN_")]
    platform = sorted(names | {"PGPASSWORD", "DAGSTER_HOME", "AWS_SESSION_TOKEN", "AWS_SECRET_ACCESS_KEY"})
    for connection in ("audit", "masking", "catalog", "x", "team-b"):
        for name in platform:
            record = ConnectionRecord(
                connection, "https://s3.example.internal", access_key_env=name, secret_key_env=name
            )
            assert problem(record, {}) is not None, (connection, name)
