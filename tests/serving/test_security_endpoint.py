"""The SQL endpoint (`lakehouse serve`) attacked the way a partner's login would: code in literals,
statements that stall everyone, KILL of other accounts, unaudited statements, password guessing,
silent or oversized clients, COM_CHANGE_USER. Each attack is sent with a real MySQL client
(PyMySQL) or raw bytes on a socket to a real server process.

One table format (Iceberg): nothing here depends on the format (tests/integration/test_serve.py
runs the endpoint on both)."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pymysql
import pytest

from lakehouse.core.settings import LakehouseSettings
from lakehouse.facade import Lakehouse
from lakehouse.governance.policy_apply import apply_policy
from lakehouse.serving.auth import set_password
from tests.helpers.env import clean_env
from tests.helpers.governed import ADS, ALICE, SEED_POLICY, land_vehicles
from tests.helpers.pipeline import Pipeline
from tests.helpers.serve import BIN, memory_kib, start_server, stop

OWNER_PASSWORD = "owner-Secret-5521"
ALICE_PASSWORD = "alice-Secret-3310"
BOB = "RAM$bob"
BOB_PASSWORD = "bob-Secret-8127"
MEMORY_LIMIT_GB = 3
"""The server's stated bound (--memory-limit): its peak RSS stays under it whatever a client sends."""
CONNECT_TIMEOUT = 2.0
IDLE_TIMEOUT = 6.0


@dataclass
class Endpoint:
    lh: Lakehouse
    proc: Any
    port: int
    log: Path

    def connect(self, user: str = ALICE, password: str = ALICE_PASSWORD, **kw: Any) -> Any:
        return pymysql.connect(host="127.0.0.1", port=self.port, user=user, password=password, **kw)

    def rows(self, query: str, user: str = ALICE, password: str = ALICE_PASSWORD) -> list[tuple[Any, ...]]:
        with self.connect(user, password) as conn, conn.cursor() as cur:
            cur.execute(query)
            return list(cur.fetchall())

    def audit(self, since: int) -> list[dict[str, Any]]:
        return self.lh.sql(f"select * from lakehouse.audit where id > {since} order by id").to_pylist()

    def last_audit_id(self) -> int:
        return int(
            self.lh.sql("select coalesce(max(id), 0) as n from lakehouse.audit").column("n")[0].as_py()
        )


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Endpoint]:
    root = tmp_path_factory.mktemp("serve-security")
    settings = LakehouseSettings.for_home(root / "lh")
    with dg.instance_for_test() as instance:
        pipeline = Pipeline(settings, instance)
        land_vehicles(pipeline)
        pipeline.scan()
    lh = Lakehouse(settings)
    apply_policy(lh, SEED_POLICY.read_text(), "iov", str(SEED_POLICY))
    apply_policy(lh, "ADD USER RAM$bob;\nGRANT thirdparty TO RAM$bob;", "iov", "bob.sql")
    for name, password in (("owner", OWNER_PASSWORD), (ALICE, ALICE_PASSWORD), (BOB, BOB_PASSWORD)):
        set_password(lh, name, password)
    env = clean_env(
        dict(os.environ), LAKEHOUSE_HOME=settings.home, PATH=f"{BIN}:{os.environ.get('PATH', '')}"
    )
    log = root / "serve.log"
    proc, port = start_server(
        env,
        log,
        "--memory-limit", f"{MEMORY_LIMIT_GB}GB",
        "--workers", "6",
        "--max-result-rows", "100000",
        "--failed-login-attempts", "3",
        "--password-lock-seconds", "2",
        "--connect-timeout", str(CONNECT_TIMEOUT),
        "--idle-timeout", str(IDLE_TIMEOUT),
    )  # fmt: skip
    try:
        yield Endpoint(lh, proc, port, log)
    finally:
        stop(proc)
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert OWNER_PASSWORD not in text and ALICE_PASSWORD not in text and BOB_PASSWORD not in text


# --- 1. no client text reaches an eval ----------------------------------------------------------------
# sqlglot's Python executor (mysql-mimic's default answer to SELECT without FROM, SHOW and
# information_schema) renders a JSON path key as '<key>' in Python source and evaluates it: a key
# holding `' + python + '` runs python as the server's user. On the old endpoint these created the file.


def _payload(marker: Path) -> str:
    code = f"str(__import__(\\'os\\').system(\\'touch {marker}\\'))"
    return f"'$.\"x\\' + {code} + \\'\"'"


@pytest.mark.parametrize(
    "template",
    [
        "SELECT JSON_EXTRACT('{{}}', {payload}) AS v",  # a static SELECT
        "SELECT JSON_EXTRACT('not json', {payload}) AS v",
        "SELECT table_name FROM information_schema.tables WHERE table_name = JSON_EXTRACT('{{}}', {payload})",
        "SELECT * FROM information_schema.columns WHERE JSON_EXTRACT(column_name, {payload}) IS NULL LIMIT 1",
    ],
)
def test_code_in_a_literal_never_runs(endpoint: Endpoint, tmp_path: Path, template: str) -> None:
    marker = tmp_path / "pwned"
    query = template.format(payload=_payload(marker))
    before = endpoint.last_audit_id()
    try:
        answer: Any = endpoint.rows(query)
    except pymysql.err.MySQLError as exc:
        answer = exc
    assert not marker.exists(), "the literal ran as Python on the server"
    assert isinstance(answer, pymysql.err.MySQLError) or all(
        v is None or isinstance(v, str) for r in answer for v in r
    )
    if "not json" in query:
        assert isinstance(answer, pymysql.err.MySQLError), "DuckDB refuses malformed JSON: an error returns"
    assert any(str(marker) in str(r["statement"]) for r in endpoint.audit(before)), "the attempt is audited"


def test_like_patterns_are_not_regular_expressions(endpoint: Endpoint) -> None:
    """mysql-mimic compiled SHOW ... LIKE into a regular expression from the client's text
    (a catastrophic pattern stalls the loop); here LIKE is SQL's LIKE, in DuckDB."""
    started = time.monotonic()
    rows = endpoint.rows("SHOW VARIABLES LIKE '(((((a*)*)*)*)*$'")
    assert rows == [] and time.monotonic() - started < 5
    assert ("version", "8.0.33-lakehouse") in endpoint.rows("SHOW VARIABLES LIKE 'VERSION'")


# --- 2. one client never stalls the others -----------------------------------------------------------


def _attack_info_join() -> str:
    return (
        "SELECT a.column_name, b.column_name, c.column_name FROM information_schema.columns a, "
        "information_schema.columns b, information_schema.columns c"
    )


ATTACKS: dict[str, Callable[[], str]] = {
    "a 3-way self join of information_schema.columns": _attack_info_join,
    "a 2.6 GB string": lambda: "SELECT length(repeat('ab', 1300000000)) AS n, repeat('ab', 1300000000) AS s",
    "a 1 MB query text": lambda: "SELECT '" + "x" * 1_048_576 + "' AS s",
    "a cross join of 10^8 rows": lambda: "SELECT * FROM range(10000) a, range(10000) b",
    "a 4-way cross join of a granted table": lambda: (
        f"SELECT * FROM {ADS} a, {ADS} b, {ADS} c, {ADS} d, range(100000) e"
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_another_client_is_answered_within_a_second_during_an_attack(endpoint: Endpoint, attack: str) -> None:
    query = ATTACKS[attack]()
    outcome: dict[str, Any] = {}

    def attacker() -> None:
        started = time.monotonic()
        try:
            with endpoint.connect(read_timeout=120) as conn, conn.cursor() as cur:
                cur.execute(query)
                outcome["rows"] = len(cur.fetchall())
        except pymysql.err.MySQLError as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=attacker)
    with endpoint.connect(BOB, BOB_PASSWORD) as victim, victim.cursor() as cur:
        thread.start()
        waits = []
        while (thread.is_alive() or len(waits) < 3) and len(waits) < 60:
            started = time.monotonic()
            cur.execute(f"SELECT COUNT(*) FROM {ADS}")
            assert cur.fetchall()[0][0] > 0
            waits.append(time.monotonic() - started)
            time.sleep(0.1)
        thread.join(timeout=120)
    assert max(waits) < 1.0, f"{attack}: the other client waited {max(waits):.2f}s ({outcome})"
    assert "error" in outcome, f"{attack} was answered in full: {outcome}"
    error = outcome["error"]
    assert any(word in error.args[1] for word in ("rows", "bytes", "characters", "memory", "string")), error
    peak_gib = memory_kib(endpoint.proc.pid)["VmHWM"] / 2**20
    assert peak_gib < MEMORY_LIMIT_GB, f"the server peaked at {peak_gib:.2f} GiB"
    endpoint.rows("SELECT 1")  # still serving


# --- 3. KILL -------------------------------------------------------------------------------------------


def _connection_id(conn: Any) -> int:
    with conn.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()")
        return int(cur.fetchall()[0][0])


def test_kill_reaches_only_the_accounts_own_connections(endpoint: Endpoint) -> None:
    owner = endpoint.connect("owner", OWNER_PASSWORD)
    bob = endpoint.connect(BOB, BOB_PASSWORD)
    alice = endpoint.connect()
    alice_other = endpoint.connect()
    try:
        for target in (owner, bob):
            with alice.cursor() as cur, pytest.raises(pymysql.err.OperationalError) as refused:
                cur.execute(f"KILL {_connection_id(target)}")
            assert refused.value.args[0] == 1094  # "Unknown thread id": as for one that does not exist
            with target.cursor() as other:
                other.execute("SELECT 1")  # untouched
        with alice.cursor() as cur:
            cur.execute("SHOW PROCESSLIST")
            listed = {row[0] for row in cur.fetchall()}
        assert listed == {_connection_id(alice), _connection_id(alice_other)}, "only its own connections"
        with alice.cursor() as cur:
            cur.execute(f"KILL {_connection_id(alice_other)}")
        with pytest.raises(pymysql.err.MySQLError), alice_other.cursor() as cur:
            cur.execute("SELECT 1")
        bob_id = _connection_id(bob)
        with owner.cursor() as cur:
            cur.execute(f"KILL CONNECTION {bob_id}")  # the owner may kill any
        with pytest.raises(pymysql.err.MySQLError), bob.cursor() as cur:
            cur.execute("SELECT 1")
    finally:
        for conn in (owner, bob, alice, alice_other):
            with contextlib.suppress(pymysql.err.Error):
                conn.close()


def test_kill_query_stops_the_running_statement(endpoint: Endpoint) -> None:
    runner = endpoint.connect(read_timeout=60)
    killer = endpoint.connect()
    outcome: dict[str, Any] = {}
    target = _connection_id(runner)

    def run() -> None:
        started = time.monotonic()
        try:
            with runner.cursor() as cur:
                cur.execute("SELECT count(*) FROM range(1000000000000)")
        except pymysql.err.MySQLError as exc:
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(1.0)
    with killer.cursor() as cur:
        cur.execute(f"KILL QUERY {target}")
    thread.join(timeout=30)
    assert outcome["error"].args[0] == 1317, outcome
    assert outcome["seconds"] < 5, "the query ran on after KILL QUERY"
    with runner.cursor() as cur:  # the connection itself lives on
        cur.execute("SELECT 1")
    runner.close()
    killer.close()


# --- 4. every statement is audited ---------------------------------------------------------------------


def test_every_statement_is_audited_whatever_answers_it(endpoint: Endpoint) -> None:
    before = endpoint.last_audit_id()
    statements = [
        "SELECT 1 + 1 AS two",
        "SELECT @@version_comment LIMIT 1",
        "SHOW DATABASES",
        "SHOW TABLES FROM iov",
        "DESCRIBE iov.ads_vehicle_hourly_stat",
        "SELECT table_name FROM information_schema.tables",
        "SET NAMES utf8mb4",
        "USE iov",
        "BEGIN",
        "KILL 1",
        "SELECT * FROM game_db.ads_retention_daily",
        "SELEC broken",
    ]
    with endpoint.connect() as conn, conn.cursor() as cur:
        for statement in statements:
            with contextlib.suppress(pymysql.err.MySQLError):
                cur.execute(statement)
    texts = [
        str(r["statement"]).upper().replace("`", "") for r in endpoint.audit(before) if r["kind"] != "login"
    ]
    for statement in statements:
        words = statement.upper().split()[:2]
        assert any(all(w in t for w in words) for t in texts), f"no audit row for {statement!r}: {texts}"
    rows = {r["statement"]: r for r in endpoint.audit(before)}
    assert [r for r in rows.values() if "KILL" in str(r["statement"])][0]["status"] == "error"
    assert any(r["status"] == "denied" and "game_db" in str(r["statement"]) for r in rows.values())


def test_a_refused_text_is_audited_without_being_stored_whole(endpoint: Endpoint) -> None:
    before = endpoint.last_audit_id()
    with endpoint.connect() as conn, conn.cursor() as cur:
        with pytest.raises(pymysql.err.MySQLError) as refused:
            cur.execute("SELECT '" + "y" * 500_000 + "'")
        assert "characters" in refused.value.args[1]
        cur.execute("SELECT 1")  # the connection is still usable
    found = [r for r in endpoint.audit(before) if r["kind"] == "statement" and r["status"] != "ok"]
    assert len(found) == 1, [(r["statement"][:80], r["status"], r["reason"]) for r in found]
    [row] = found
    assert (
        row["status"] == "denied"
        and len(row["statement"]) < 3_000
        and "500,009 characters" in row["statement"]
    )


# --- 7. logins -----------------------------------------------------------------------------------------


def test_password_guessing_is_throttled_per_user_and_address(endpoint: Endpoint) -> None:
    started = time.monotonic()
    answers = []
    for i in range(40):
        try:
            endpoint.connect(BOB, f"guess-{i}").close()
            answers.append("in")
        except pymysql.err.OperationalError as exc:
            answers.append(exc.args[1])
    assert "in" not in answers
    assert sum("too many failed logins" in a for a in answers) >= 35, answers[:6]
    with pytest.raises(pymysql.err.OperationalError) as locked:  # the right password, during the lock
        endpoint.connect(BOB, BOB_PASSWORD)
    assert "too many failed logins" in locked.value.args[1]
    assert time.monotonic() - started < 30
    log = endpoint.log.read_text()
    assert "Traceback" not in log
    assert log.count("login refused") >= 40 and "guess-" not in log
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the lock runs out (2 s, doubled per further failure, capped)
        try:
            endpoint.connect(BOB, BOB_PASSWORD).close()
            break
        except pymysql.err.OperationalError:
            time.sleep(1)
    else:
        pytest.fail("the right password never got in after the lock")


def test_a_silent_client_is_dropped_after_the_connect_timeout(endpoint: Endpoint) -> None:
    with socket.create_connection(("127.0.0.1", endpoint.port), timeout=30) as sock:
        greeting = sock.recv(4096)
        assert greeting, "no handshake"
        started = time.monotonic()
        assert sock.recv(4096) == b"", "the server should close the connection"
        assert time.monotonic() - started < CONNECT_TIMEOUT + 2
    endpoint.rows("SELECT 1")


def test_an_idle_connection_is_closed(endpoint: Endpoint) -> None:
    conn = endpoint.connect()
    time.sleep(IDLE_TIMEOUT + 1.5)
    with pytest.raises(pymysql.err.OperationalError), conn.cursor() as cur:
        cur.execute("SELECT 1")


def _change_user(conn: Any, user: str, password: str) -> Any:
    """COM_CHANGE_USER (PyMySQL has no call for it): the user, the native-password scramble of the
    handshake's nonce, no database, utf8mb4, the plugin name."""
    from pymysql import _auth
    from pymysql.constants import COMMAND

    scramble = _auth.scramble_native_password(password.encode(), conn.salt)
    data = user.encode() + b"\0" + bytes([len(scramble)]) + scramble + b"\0"
    data += struct.pack("<H", 45) + b"mysql_native_password\0" + b"\0"  # no connect attributes
    conn._execute_command(COMMAND.COM_CHANGE_USER, data)
    return conn._read_packet()


def test_change_user_with_a_wrong_password_keeps_no_account(endpoint: Endpoint) -> None:
    conn = endpoint.connect()
    with pytest.raises(pymysql.err.OperationalError):
        _change_user(conn, "owner", "not-the-password")
    with pytest.raises(pymysql.err.MySQLError), conn.cursor() as cur:  # the connection ended
        cur.execute("SELECT vin FROM iov.ads_vehicle_hourly_stat LIMIT 1")
    switched = endpoint.connect()
    _change_user(switched, BOB, BOB_PASSWORD)
    with switched.cursor() as cur:
        cur.execute("SELECT CURRENT_USER()")
        assert cur.fetchall()[0][0] == BOB
    switched.close()


# --- the wire ------------------------------------------------------------------------------------------


def test_an_oversized_packet_closes_only_its_connection(endpoint: Endpoint) -> None:
    before = endpoint.last_audit_id()
    conn = endpoint.connect()
    with pytest.raises(pymysql.err.MySQLError), conn.cursor() as cur:
        cur.execute("SELECT '" + "z" * (5 * 2**20) + "'")
    endpoint.rows("SELECT 1")
    assert any("max_allowed_packet" in str(r["reason"]) for r in endpoint.audit(before))


def test_prepared_statement_parameters_are_bound_as_literals() -> None:
    """mysql-mimic pasted parameter values between quotes unescaped (a value `x' OR '1'='1` widened
    the query) and found the placeholders with a regular expression quadratic in the text."""
    from lakehouse.serving.wire import bind, placeholders

    assert bind("SELECT * FROM t WHERE a = ? AND b = ?", ["x' OR '1'='1", 3]) == (
        "SELECT * FROM t WHERE a = 'x'' OR ''1''=''1' AND b = 3"
    )
    assert (
        bind("SELECT '?' AS q, ? AS v /* ? */", ["\\'; DROP"])
        == "SELECT '?' AS q, '\\\\''; DROP' AS v /* ? */"
    )
    text = "SELECT " + ",".join(["'a\"b`c'"] * 20_000) + ", ?"
    started = time.monotonic()
    assert len(placeholders(text)) == 1
    assert time.monotonic() - started < 1.0
