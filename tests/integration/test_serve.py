"""The SQL endpoint as its users use it: `lakehouse serve` in its own process, real MySQL clients
(PyMySQL, SQLAlchemy mysql+pymysql://, the mysql command line), logins, listing, governed queries,
the audit, a new snapshot seen on the next query. Both table formats."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import pymysql
import pytest
import sqlalchemy as sa

from lakehouse.core.settings import LakehouseSettings
from lakehouse.facade import Lakehouse
from lakehouse.governance.policy_apply import apply_policy
from lakehouse.serving.auth import set_password
from tests.helpers.env import clean_env
from tests.helpers.game import GameLake, event, profile
from tests.helpers.governed import ALICE, MASKED, SEED_POLICY, VINS, assert_no_raw_vin, land_vehicles
from tests.helpers.pipeline import Pipeline, gps
from tests.helpers.serve import start_server, stop

OWNER_PASSWORD = "owner-Secret-7731"
ALICE_PASSWORD = "alice-Secret-9904"
BIN = Path(sys.executable).parent


@dataclass
class Served:
    lh: Lakehouse
    settings: LakehouseSettings
    instance: Any
    port: int
    log: Path

    def connect(self, user: str = ALICE, password: str = ALICE_PASSWORD, database: str | None = None) -> Any:
        return pymysql.connect(
            host="127.0.0.1", port=self.port, user=user, password=password, database=database
        )

    def rows(
        self, query: str, user: str = ALICE, password: str = ALICE_PASSWORD, database: str | None = None
    ):
        with self.connect(user, password, database) as conn, conn.cursor(pymysql.cursors.DictCursor) as cur:
            cur.execute(query)
            return list(cur.fetchall())


@pytest.fixture(scope="module", params=["iceberg", "delta"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp(f"serve-{request.param}")
    settings = LakehouseSettings.for_home(root / "lh", table_format=request.param)
    with dg.instance_for_test() as instance:
        land_vehicles(Pipeline(settings, instance))
        game = GameLake(settings, instance)
        game.land_profiles([profile(1), profile(2, device_type="Android")])
        game.land_events(
            [
                event(1, "2025-09-01 10:00:00"),
                event(2, "2025-09-01 11:00:00"),
                event(1, "2025-09-02 09:00:00"),
            ],
            dt="2025-09-01",
        )
        game.catch_up()
        lh = Lakehouse(settings)
        apply_policy(lh, SEED_POLICY.read_text(), "iov", str(SEED_POLICY))
        set_password(lh, "owner", OWNER_PASSWORD)
        set_password(lh, ALICE, ALICE_PASSWORD)
        env = clean_env(
            dict(os.environ),
            LAKEHOUSE_HOME=settings.home,
            LAKEHOUSE_TABLE_FORMAT=request.param,
            PATH=f"{BIN}:{os.environ.get('PATH', '')}",
        )
        log = root / "serve.log"
        proc, port = start_server(env, log)
        try:
            yield Served(lh, settings, instance, port, log)
        finally:
            stop(proc)
    assert OWNER_PASSWORD not in log.read_text() and ALICE_PASSWORD not in log.read_text()


def audit_rows(lh: Lakehouse, kind: str) -> list[dict[str, Any]]:
    return lh.sql(f"select * from lakehouse.audit where kind = '{kind}' order by id").to_pylist()


def test_wrong_password_and_unknown_user_are_refused_alike_and_audited(served: Served) -> None:
    before = len(audit_rows(served.lh, "login"))
    for user, password in ((ALICE, "wrong"), ("nobody", "wrong"), ("owner", ALICE_PASSWORD), (ALICE, "")):
        with pytest.raises(pymysql.err.OperationalError) as refused:
            served.connect(user, password)
        assert refused.value.args[0] == 1045
        assert "wrong password, or no such login" in refused.value.args[1]
    logins = audit_rows(served.lh, "login")[before:]
    nobody = f"unknown login #{served.lh.audit.fingerprint(ascii('nobody'))[:10]}"  # never the typed text
    assert [(r["user_name"], r["status"]) for r in logins] == [
        ("RAM$alice", "denied"),
        (nobody, "denied"),
        ("owner", "denied"),
        ("RAM$alice", "denied"),
    ]
    served.connect().close()
    assert audit_rows(served.lh, "login")[-1]["status"] == "ok"
    # the password is in no audit row
    everything = str(served.lh.sql("select * from lakehouse.audit").to_pylist())
    assert ALICE_PASSWORD not in everything and OWNER_PASSWORD not in everything


def test_the_seed_query_works_as_written_for_the_owner(served: Served) -> None:
    rows = served.rows("SELECT * FROM game_db.ads_retention_daily LIMIT 10", "owner", OWNER_PASSWORD)
    expected = served.lh.sql("select * from game_db.ads_retention_daily limit 10").to_pylist()
    assert rows and rows == expected
    raw = served.rows("SELECT vin FROM iov.ads_vehicle_hourly_stat ORDER BY vin", "owner", OWNER_PASSWORD)
    assert [r["vin"] for r in raw] == sorted(VINS)


def test_listing_shows_only_what_the_user_may_list(served: Served) -> None:
    owner = served.rows("SHOW DATABASES", "owner", OWNER_PASSWORD)
    assert {"iov", "game_db"} <= {r["Database"] for r in owner}
    alice = {r["Database"] for r in served.rows("SHOW DATABASES")}
    assert "iov" in alice and "game_db" not in alice
    assert [r["Table_name"] for r in served.rows("SHOW TABLES", database="iov")] == [
        "ads_vehicle_hourly_stat"
    ]
    owner_tables = {r["Table_name"] for r in served.rows("SHOW TABLES", "owner", OWNER_PASSWORD, "iov")}
    assert {"ads_vehicle_hourly_stat", "dwd_vehicle_gps", "ods_vehicle_gps_raw"} <= owner_tables
    described = served.rows("DESCRIBE iov.ads_vehicle_hourly_stat")
    assert [r["Field"] for r in described][:4] == ["vin", "stat_hour", "total_distance", "avg_speed"]
    listed = served.rows("SELECT table_schema, table_name FROM information_schema.tables ORDER BY 1, 2")
    assert [(r["table_schema"], r["table_name"]) for r in listed if r["table_schema"] != "information_schema"
            and r["table_schema"] != "mysql"] == [("iov", "ads_vehicle_hourly_stat")]  # fmt: skip
    with pytest.raises(pymysql.err.OperationalError) as unknown:
        served.rows("USE game_db")
    assert unknown.value.args[0] == 1049  # as for a database that does not exist
    for database in ("no_such_db", "game_db"):  # asked for at connect: every statement refuses
        with pytest.raises(pymysql.err.OperationalError) as missing:
            served.rows("SELECT 1", database=database)
        assert missing.value.args[0] == 1049


def test_queries_are_governed_like_lakehouse_sql_and_audited(served: Served) -> None:
    query = "SELECT vin, SUM(total_distance) AS km FROM iov.ads_vehicle_hourly_stat GROUP BY vin ORDER BY vin"
    rows = served.rows(query)
    assert sorted(r["vin"] for r in rows) == sorted(MASKED.values())
    assert_no_raw_vin(rows)
    same = served.lh.sql(query, user=ALICE).to_pylist()
    assert rows == same
    unqualified = served.rows("select count(*) as n from ads_vehicle_hourly_stat", database="iov")
    assert unqualified == [{"n": len(VINS)}]
    with pytest.raises(pymysql.err.OperationalError) as denied:
        served.rows("SELECT * FROM game_db.ads_retention_daily LIMIT 10")
    assert denied.value.args[0] == 1142
    assert "RAM$alice" in denied.value.args[1] and "game_db" in denied.value.args[1]
    queries = [r for r in audit_rows(served.lh, "query") if r["user_name"] == "RAM$alice"]
    assert queries[-1]["status"] == "denied" and "game_db.ads_retention_daily" in queries[-1]["statement"]
    ok = [r for r in queries if r["status"] == "ok" and "SUM(total_distance)" in r["statement"]]
    assert ok and ok[-1]["masked_columns"] == "iov.ads_vehicle_hourly_stat.vin:MASKED_STRING_UNMASKED_BA"


@pytest.mark.parametrize(
    "statement",
    [
        "DROP TABLE iov.ads_vehicle_hourly_stat",
        "INSERT INTO iov.ads_vehicle_hourly_stat (vin) VALUES ('x')",
        "DELETE FROM iov.ads_vehicle_hourly_stat",
        "CREATE TABLE iov.t AS SELECT 1 AS a",
        "SELECT * FROM read_parquet('/etc/passwd')",
    ],
)
def test_the_endpoint_is_read_only(served: Served, statement: str) -> None:
    for user, password in ((ALICE, ALICE_PASSWORD), ("owner", OWNER_PASSWORD)):
        with pytest.raises(pymysql.err.MySQLError):
            served.rows(statement, user, password)
    assert len(served.lh.sql("select * from iov.ads_vehicle_hourly_stat").to_pylist()) == len(VINS)


def test_sqlalchemy_inspector_browses_the_catalog(served: Served) -> None:
    engine = sa.create_engine(f"mysql+pymysql://RAM$alice:{ALICE_PASSWORD}@127.0.0.1:{served.port}/iov")
    try:
        inspector = sa.inspect(engine)
        assert "iov" in inspector.get_schema_names() and "game_db" not in inspector.get_schema_names()
        assert inspector.get_table_names() == ["ads_vehicle_hourly_stat"]
        columns = {c["name"]: c["type"] for c in inspector.get_columns("ads_vehicle_hourly_stat")}
        assert isinstance(columns["total_distance"], sa.Float)
        assert isinstance(columns["vin"], sa.String)
        table = sa.Table("ads_vehicle_hourly_stat", sa.MetaData(), autoload_with=engine)
        with engine.connect() as conn:
            got = conn.execute(sa.select(table.c.vin).order_by(table.c.vin)).scalars().all()
        assert got == sorted(MASKED.values())
    finally:
        engine.dispose()
    owner = sa.create_engine(f"mysql+pymysql://owner:{OWNER_PASSWORD}@127.0.0.1:{served.port}/game_db")
    try:
        assert "ads_retention_daily" in sa.inspect(owner).get_table_names()
    finally:
        owner.dispose()


@pytest.mark.skipif(shutil.which("mysql") is None, reason="the mysql client is installed by make install")
def test_the_mysql_command_line_client(served: Served) -> None:
    def mysql(user: str, password: str, query: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["mysql", "-h", "127.0.0.1", "-P", str(served.port), "-u", user, "--batch", "-e", query],
            env={**os.environ, "MYSQL_PWD": password},
            capture_output=True,
            text=True,
            timeout=60,
        )

    seed = mysql("owner", OWNER_PASSWORD, "SELECT * FROM game_db.ads_retention_daily LIMIT 10")
    assert seed.returncode == 0, seed.stderr
    assert seed.stdout.splitlines()[0].split("\t")[0] == "dau"
    masked = mysql(ALICE, ALICE_PASSWORD, "SELECT vin FROM iov.ads_vehicle_hourly_stat ORDER BY vin")
    assert masked.returncode == 0, masked.stderr
    assert masked.stdout.split() == ["vin", *sorted(MASKED.values())]
    refused = mysql(ALICE, "wrong", "SELECT 1")
    assert refused.returncode != 0 and "1045" in refused.stderr


def test_a_new_materialization_is_visible_on_the_next_query(served: Served) -> None:
    query = "SELECT COUNT(*) AS n, COUNT(DISTINCT vin) AS vins FROM iov.ads_vehicle_hourly_stat"
    before = served.rows(query)[0]
    owner_before = served.rows(query, "owner", OWNER_PASSWORD)[0]
    pipeline = Pipeline(served.settings, served.instance)
    new_hour = [gps(v, "2025-09-18 00:05:00") for v in VINS] + [
        gps(v, "2025-09-18 00:25:00", lng=120.1) for v in VINS
    ]
    pipeline.land(new_hour, dt="2025-09-18", hh="00")
    pipeline.scan()
    after = served.rows(query)[0]
    assert after["n"] == before["n"] + len(VINS)
    assert served.rows(query, "owner", OWNER_PASSWORD)[0]["n"] == owner_before["n"] + len(VINS)
    # the owner's real values and the third party's masked ones never cross, whatever was cached
    assert {r["vin"] for r in served.rows("SELECT DISTINCT vin FROM iov.ads_vehicle_hourly_stat")} == set(
        MASKED.values()
    )
    owner_vins = served.rows("SELECT DISTINCT vin FROM iov.ads_vehicle_hourly_stat", "owner", OWNER_PASSWORD)
    assert {r["vin"] for r in owner_vins} == set(VINS)


def test_serve_refuses_a_remote_address_without_tls(tmp_path: Path) -> None:
    env = clean_env(dict(os.environ), LAKEHOUSE_HOME=str(tmp_path / "lh"))
    done = subprocess.run(
        [str(BIN / "lakehouse"), "serve", "--host", "0.0.0.0", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "not a loopback address" in done.stderr and "--tls-cert" in done.stderr


def test_user_password_stores_only_a_verifier(tmp_path: Path) -> None:
    settings = LakehouseSettings.for_home(tmp_path / "lh")
    lh = Lakehouse(settings)
    apply_policy(lh, "ADD USER RAM$alice;", "iov", "users.sql")
    env = clean_env(dict(os.environ), LAKEHOUSE_HOME=settings.home)
    done = subprocess.run(
        [str(BIN / "lakehouse"), "user", "password", "ram$ALICE", "--password-stdin"],
        input="s3cret-Value\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "password set for RAM$alice"
    catalog = Path(settings.home, "catalog.db").read_bytes()
    assert b"s3cret-Value" not in catalog
    unknown = subprocess.run(
        [str(BIN / "lakehouse"), "user", "password", "mallory", "--password-stdin"],
        input="x\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unknown.returncode != 0 and "user 'mallory' does not exist" in unknown.stderr
    changes = lh.sql("select change from lakehouse.policy_changes order by id").to_pylist()
    assert changes[-1] == {"change": "password set for RAM$alice"}


def test_a_policy_change_holds_on_the_next_query(served: Served) -> None:
    query = "SELECT COUNT(*) AS n FROM iov.ads_vehicle_hourly_stat"
    with served.connect() as conn, conn.cursor() as cur:
        cur.execute(query)
        assert cur.fetchall()[0][0] > 0  # remembered: the result, the principal and its grants
        revoke = "REVOKE SELECT ON TABLE ads_vehicle_hourly_stat FROM ROLE thirdparty;"
        apply_policy(served.lh, revoke, "iov", "revoke.sql")
        try:
            with pytest.raises(pymysql.err.OperationalError) as denied:
                cur.execute(query)  # same connection, same text: nothing remembered serves it
            assert denied.value.args[0] == 1142
        finally:
            grant = "GRANT SELECT ON TABLE ads_vehicle_hourly_stat TO ROLE thirdparty;"
            apply_policy(served.lh, grant, "iov", "grant.sql")
        cur.execute(query)
        assert cur.fetchall()[0][0] > 0


def test_owner_queries_are_audited_and_the_trail_verifies(served: Served) -> None:
    served.rows("SELECT COUNT(*) AS n FROM iov.dwd_vehicle_gps", "owner", OWNER_PASSWORD)
    served.rows("SELECT COUNT(*) AS n FROM iov.dwd_vehicle_gps", "owner", OWNER_PASSWORD)  # remembered
    owner = [r for r in audit_rows(served.lh, "query") if r["user_name"] == "owner"]
    assert [r["status"] for r in owner[-2:]] == ["ok", "ok"]
    assert all("dwd_vehicle_gps" in r["statement"] and r["rows"] == 1 for r in owner[-2:])
    report = served.lh.audit.verify()
    assert report.ok, report.problems
