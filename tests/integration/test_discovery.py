"""Discovery as the seeds configure it, through the CLI a user types: named connections (keys from
variables, a role assumed through STS) on an S3 server that enforces IAM (moto, its own process on
127.0.0.1), DataScan tasks on two buckets into two namespaces, the three layouts, a flat table kept
in sync with its files, a bad credential, and two tasks finding one table."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

from lakehouse.cli.main import main
from lakehouse.core.settings import LakehouseSettings
from lakehouse.demo.iov import generate_iov
from lakehouse.facade import Lakehouse
from lakehouse.landing import connections
from lakehouse.storage.discovery import ConnectionRecord
from lakehouse.storage.object_store import S3ObjectStore
from tests.helpers.env import UNSET
from tests.helpers.s3_auth import AuthS3, auth_s3

pytestmark = pytest.mark.s3

BAD_SECRET = "wrong-secret-but-secret-all-the-same-0123456789"


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthS3]:
    with auth_s3(tmp_path_factory.mktemp("moto") / "moto.log") as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_role_credentials() -> Iterator[None]:
    connections.forget_assumed()
    yield
    connections.forget_assumed()


class Lake:
    """`lakehouse ...` in-process against one LAKEHOUSE_HOME, with the teams' keys in variables."""

    def __init__(self, root: Path, s3: AuthS3) -> None:
        (root / "dh").mkdir(parents=True, exist_ok=True)
        self.env: dict[str, str | None] = {k: None for k in UNSET}
        self.env.update(
            LAKEHOUSE_HOME=str(root / "lh"),
            DAGSTER_HOME=str(root / "dh"),
            LAKEHOUSE_CONN_TEAM_A_KEY=s3.team_a.access_key_id,
            LAKEHOUSE_CONN_TEAM_A_SECRET=s3.team_a.secret_access_key,
            LAKEHOUSE_CONN_TEAM_B_KEY=s3.team_b.access_key_id,
            LAKEHOUSE_CONN_TEAM_B_SECRET=s3.team_b.secret_access_key,
            LAKEHOUSE_CONN_WRONG_KEY=s3.team_a.access_key_id,
            LAKEHOUSE_CONN_WRONG_SECRET=BAD_SECRET,
            LAKEHOUSE_CONN_NO_ROLE_KEY=s3.team_a.access_key_id,
            LAKEHOUSE_CONN_NO_ROLE_SECRET=s3.team_a.secret_access_key,
        )
        self.secrets = [s3.team_a.secret_access_key, s3.team_b.secret_access_key, BAD_SECRET]

    def __call__(self, *args: str, ok: bool = True) -> Result:
        result = CliRunner().invoke(main, list(args), env=self.env, catch_exceptions=False)
        for secret in self.secrets:
            assert secret not in result.stdout + result.stderr, f"a secret was printed by {args}"
        if ok:
            assert result.exit_code == 0, result.stdout + result.stderr
        return result

    @property
    def lh(self) -> Lakehouse:
        return Lakehouse(LakehouseSettings.from_env({k: v for k, v in self.env.items() if v is not None}))

    def sql(self, query: str) -> list[dict]:
        return json.loads(self("sql", query, "--format", "json").stdout)

    def connections(self, s3: AuthS3) -> None:
        self("connection", "add", "team_a", "--endpoint", s3.endpoint, "--access-key-env",
             "LAKEHOUSE_CONN_TEAM_A_KEY", "--secret-key-env", "LAKEHOUSE_CONN_TEAM_A_SECRET")  # fmt: skip
        self("connection", "add", "team_b", "--endpoint", s3.endpoint, "--region", "us-east-1",
             "--role-arn", s3.role_arn, "--access-key-env", "LAKEHOUSE_CONN_TEAM_B_KEY",
             "--secret-key-env", "LAKEHOUSE_CONN_TEAM_B_SECRET")  # fmt: skip


def admin_store(s3: AuthS3, uri: str) -> S3ObjectStore:
    return S3ObjectStore(uri, s3.credentials(s3.admin))


def test_two_connections_two_tasks_two_buckets_into_two_namespaces(tmp_path: Path, s3: AuthS3) -> None:
    lake = Lake(tmp_path, s3)
    lake.connections(s3)
    listed = json.loads(lake("connection", "list", "--format", "json").stdout)
    assert [(c["name"], c["role_arn"], c["access_key_env"]) for c in listed] == [
        ("team_a", None, "LAKEHOUSE_CONN_TEAM_A_KEY"),
        ("team_b", s3.role_arn, "LAKEHOUSE_CONN_TEAM_B_KEY"),
    ]
    assert (
        "arn:aws:sts::123456789012:assumed-role/game-reader/"
        in lake("connection", "show", "team_b", "--check").stdout
    )
    assert lake("connection", "add", "team_a", "--endpoint", s3.endpoint, ok=False).exit_code == 1

    # bucket raw-a: the MaxLake GPS layout (hourly), readable only with team_a's keys
    generate_iov(admin_store(s3, "s3://raw-a/maxlake"), hours=2, vehicles=4,
                 start=dt.datetime(2025, 9, 17, 22), interval_seconds=300)  # fmt: skip
    # bucket raw-b: a daily table and a flat one, readable only through the role team_b assumes
    sales = admin_store(s3, "s3://raw-b/openlake/sales")
    sales.write_arrow(
        "orders/dt=2025-09-17/part-0.parquet", pa.table({"order_id": [1, 2], "amount": [9.5, 3.0]})
    )
    sales.write_arrow("orders/dt=2025-09-18/part-0.parquet", pa.table({"order_id": [3], "amount": [1.25]}))
    sales.write_arrow("customers/all.parquet", pa.table({"customer_id": [7, 8, 9]}))

    lake("datascan", "add", "gps_a", "--location", "s3://raw-a/maxlake/iov", "--namespace", "iov",
         "--connection", "team_a", "--interval", "60")  # fmt: skip
    lake("datascan", "add", "sales_b", "--location", "s3://raw-b/openlake/sales/", "--namespace", "sales",
         "--connection", "team_b", "--table-prefix", "ods_")  # fmt: skip
    tasks = json.loads(lake("datascan", "list", "--format", "json").stdout)
    assert [(t["name"], t["namespace"], t["sensor"]) for t in tasks] == [
        ("default", "(folders)", "datascan"),
        ("gps_a", "iov", "datascan_gps_a"),
        ("sales_b", "sales", "datascan_sales_b"),
    ]
    assert tasks[2]["location"] == "s3://raw-b/openlake/sales"

    out = lake("datascan", "run", "gps_a").stdout
    assert "reconcile run(s) succeeded" in out
    assert (
        lake.sql("select count(*) as n from iov.ads_vehicle_hourly_stat")[0]["n"] == 8
    )  # 4 vehicles x 2 hours
    files = lake.sql("select path, status from lakehouse.files where namespace = 'iov' and status = 'loaded'")
    assert files and all(
        f["path"].startswith("s3://raw-a/maxlake/iov/ods_vehicle_gps_raw/dt=") for f in files
    )
    lake("datascan", "run", "sales_b")
    assert lake.sql("select order_id, amount, dt from sales.ods_orders order by order_id") == [
        {"order_id": 1, "amount": 9.5, "dt": "2025-09-17"},
        {"order_id": 2, "amount": 3.0, "dt": "2025-09-17"},
        {"order_id": 3, "amount": 1.25, "dt": "2025-09-18"},
    ]
    customers = lake.sql("select customer_id, _source_file from sales.ods_customers order by 1")
    assert [c["customer_id"] for c in customers] == [7, 8, 9]
    assert {c["_source_file"] for c in customers} == {"s3://raw-b/openlake/sales/customers/all.parquet"}
    assert lake.sql("select namespace, name, task, layout from lakehouse.datascan_tables order by 1, 2") == [
        {"namespace": "iov", "name": "ods_vehicle_gps_raw", "task": "gps_a", "layout": "hourly"},
        {"namespace": "sales", "name": "ods_customers", "task": "sales_b", "layout": "flat"},
        {"namespace": "sales", "name": "ods_orders", "task": "sales_b", "layout": "daily"},
    ]
    shown = json.loads(lake("datascan", "show", "sales_b", "--format", "json").stdout)[0]
    assert {(t["table"], t["layout"], t["folder"]) for t in shown["held"]} == {
        ("sales.ods_orders", "daily", "orders"),
        ("sales.ods_customers", "flat", "customers"),
    }
    # the catalog holds the variables' names, never their values
    db = Path(lake.env["LAKEHOUSE_HOME"] or "") / "catalog.db"
    stored = b"".join(p.read_bytes() for p in db.parent.glob("catalog.db*"))
    assert b"LAKEHOUSE_CONN_TEAM_B_SECRET" in stored
    for secret in lake.secrets:
        assert secret.encode() not in stored
    assert lake("connection", "remove", "team_b", ok=False).exit_code == 1  # a task uses it


def test_a_bad_credential_fails_its_task_naming_the_connection_never_the_secret(
    tmp_path: Path, s3: AuthS3
) -> None:
    lake = Lake(tmp_path, s3)
    lake.connections(s3)
    admin_store(s3, "s3://raw-a/bad").write_arrow("t/x.parquet", pa.table({"a": [1]}))
    lake("connection", "add", "wrong", "--endpoint", s3.endpoint, "--access-key-env", "LAKEHOUSE_CONN_WRONG_KEY",
         "--secret-key-env", "LAKEHOUSE_CONN_WRONG_SECRET")  # fmt: skip
    lake(
        "datascan",
        "add",
        "bad",
        "--location",
        "s3://raw-a/bad",
        "--namespace",
        "bad",
        "--connection",
        "wrong",
    )
    lake(
        "datascan",
        "add",
        "good",
        "--location",
        "s3://raw-a/bad",
        "--namespace",
        "good",
        "--connection",
        "team_a",
    )
    failed = lake("datascan", "run", "bad", ok=False)
    assert failed.exit_code == 1
    assert "connection wrong cannot read s3://raw-a/bad" in failed.stderr
    assert "DataScan task bad" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    # `lakehouse scan` runs every task: the good one is built, the bad one reported, exit 1
    scanned = lake("scan", ok=False)
    assert scanned.exit_code == 1 and "connection wrong cannot read" in scanned.stderr
    assert lake.sql("select a from good.t") == [{"a": 1}]

    checked = lake("connection", "show", "wrong", "--check", ok=False)
    assert "connection wrong: cannot authenticate" in checked.stderr
    lake.env["LAKEHOUSE_CONN_WRONG_SECRET"] = None
    missing = lake("datascan", "run", "bad", ok=False)
    assert "connection wrong: environment variable LAKEHOUSE_CONN_WRONG_SECRET is not set" in missing.stderr
    # keys that may not assume the role: STS refuses, the error names connection and role
    lake("connection", "add", "no_role", "--endpoint", s3.endpoint, "--role-arn", s3.role_arn,
         "--access-key-env", "LAKEHOUSE_CONN_NO_ROLE_KEY", "--secret-key-env", "LAKEHOUSE_CONN_NO_ROLE_SECRET")  # fmt: skip
    lake(
        "datascan",
        "add",
        "no_role",
        "--location",
        "s3://raw-b/x",
        "--namespace",
        "nr",
        "--connection",
        "no_role",
    )
    refused = lake("datascan", "run", "no_role", ok=False)
    assert f"connection no_role: cannot assume role {s3.role_arn}" in refused.stderr
    assert "AccessDenied" in refused.stderr
    # and nothing of the bad task was registered, nothing rebuilt empty
    assert lake.sql("select count(*) as n from lakehouse.tables where namespace in ('bad', 'nr')") == [
        {"n": 0}
    ]


def test_assumed_role_credentials_are_refreshed_before_they_expire(
    s3: AuthS3, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEHOUSE_CONN_TEAM_B_KEY", s3.team_b.access_key_id)
    monkeypatch.setenv("LAKEHOUSE_CONN_TEAM_B_SECRET", s3.team_b.secret_access_key)
    record = ConnectionRecord(
        "team_b",
        s3.endpoint,
        "us-east-1",
        s3.role_arn,
        "LAKEHOUSE_CONN_TEAM_B_KEY",
        "LAKEHOUSE_CONN_TEAM_B_SECRET",
    )
    first = connections.credentials(record)
    assert first.session_token and first.access_key_id != s3.team_b.access_key_id
    assert connections.credentials(record) == first  # an hour left: the same credentials
    # the same credentials an instant before the margin: assumed again, and the new ones read
    monkeypatch.setattr(connections, "REFRESH_MARGIN_SECONDS", connections.ROLE_SESSION_SECONDS + 5)
    second = connections.credentials(record)
    assert second.access_key_id != first.access_key_id
    admin_store(s3, "s3://raw-b/refresh").write_arrow("t/x.parquet", pa.table({"a": [1]}))
    assert [i.path for i in S3ObjectStore("s3://raw-b/refresh", second).walk()] == ["t/x.parquet"]
    assert "SecretAccessKey" not in repr(second) and (second.secret_access_key or "") not in repr(second)


def _flat(lake: Lake, name: str, rows: list[int], when: float | None = None) -> Path:
    root = Path(lake.env["LAKEHOUSE_HOME"] or "").parent / "raw" / "orders"
    root.mkdir(parents=True, exist_ok=True)
    path = root / name
    pq.write_table(pa.table({"order_id": rows}), path)
    if when is not None:
        os.utime(path, (when, when))
    return path


def test_a_flat_table_follows_its_files_new_replaced_deleted_and_rejected(tmp_path: Path, s3: AuthS3) -> None:
    lake = Lake(tmp_path, s3)
    raw = tmp_path / "raw"
    nine = dt.datetime(2025, 9, 17, 9, 30, tzinfo=dt.UTC).timestamp()
    _flat(lake, "a.parquet", [1, 2], nine)
    _flat(lake, "b.parquet", [3, 4, 5], nine + 3600)
    lake("datascan", "add", "shop", "--location", str(raw), "--namespace", "shop", "--table-prefix", "ods_")

    def rows() -> list[int]:
        return [r["order_id"] for r in lake.sql("select order_id from shop.ods_orders order by 1")]

    lake("datascan", "run", "shop")
    assert rows() == [1, 2, 3, 4, 5]
    hours = lake.sql("select distinct dt, hh from shop.ods_orders order by 1, 2")
    assert hours == [{"dt": "2025-09-17", "hh": "09"}, {"dt": "2025-09-17", "hh": "10"}]  # arrival hours

    (raw / "orders" / "c.parquet").write_bytes(b"PAR1 not really parquet PAR1")  # corrupt: rejected
    lake("datascan", "run", "shop")
    assert rows() == [1, 2, 3, 4, 5]
    rejected = lake.sql("select path, reason from lakehouse.rejected_files")
    assert [r["path"] for r in rejected] == [f"{raw}/orders/c.parquet"]
    assert "not a readable parquet file" in rejected[0]["reason"]

    _flat(lake, "a.parquet", [10], nine + 7200)  # replaced: it moves to its new arrival hour
    lake("datascan", "run", "shop")
    assert rows() == [3, 4, 5, 10]
    _flat(lake, "a.parquet", [10, 11], nine - 3600)  # replaced keeping an older time (cp -p): moves back
    lake("datascan", "run", "shop")
    assert rows() == [3, 4, 5, 10, 11]
    assert lake.lh.catalog.build_failures("shop") == {}
    _flat(lake, "a.parquet", [10], nine + 7200)
    (raw / "orders" / "b.parquet").unlink()  # deleted
    lake("datascan", "run", "shop")
    assert rows() == [10]
    # a location that lists nothing while its tables hold data is reported, its tables kept
    (raw / "orders").rename(tmp_path / "elsewhere")
    empty = lake("datascan", "run", "shop", ok=False)
    assert "lists no object under" in empty.stderr and rows() == [10]
    raw.rename(tmp_path / "gone")
    missing = lake("datascan", "run", "shop", ok=False)
    assert f"cannot list {raw}" in missing.stderr and "no such folder" in missing.stderr and rows() == [10]
    (tmp_path / "gone").rename(raw)
    (tmp_path / "elsewhere").rename(raw / "orders")
    before = {p.name: p.read_bytes() for p in (raw / "orders").iterdir()}
    assert lake("datascan", "run", "shop").stdout.startswith("DataScan shop: nothing stale")
    assert {p.name: p.read_bytes() for p in (raw / "orders").iterdir()} == before  # raw files untouched

    # a file of another layout in a flat table is rejected, naming both layouts
    (raw / "orders" / "dt=2025-09-17").mkdir()
    _flat(lake, "dt=2025-09-17/d.parquet", [99])
    lake("datascan", "run", "shop")
    assert rows() == [10]
    reasons = {r["path"]: r["reason"] for r in lake.sql("select path, reason from lakehouse.rejected_files")}
    assert "table shop.ods_orders is laid out flat" in reasons[f"{raw}/orders/dt=2025-09-17/d.parquet"]


def test_two_tasks_finding_one_table_are_a_reported_conflict_not_a_merge(tmp_path: Path, s3: AuthS3) -> None:
    lake = Lake(tmp_path, s3)
    for folder, value in (("one", 1), ("two", 2)):
        (tmp_path / folder / "orders").mkdir(parents=True)
        pq.write_table(pa.table({"v": [value]}), tmp_path / folder / "orders" / "x.parquet")
        lake("datascan", "add", f"task_{folder}", "--location", str(tmp_path / folder), "--namespace", "shop")
    result = lake("scan")
    assert lake.sql("select v from shop.orders") == [{"v": 1}]
    shown = json.loads(lake("datascan", "show", "task_two", "--format", "json").stdout)[0]
    [conflict] = shown["conflicts"]
    assert conflict["table"] == "shop.orders"
    assert "registered by DataScan task task_one" in conflict["reason"]
    assert "task task_two found it too" in conflict["reason"] and "not a merge" in conflict["reason"]
    assert result.exit_code == 0
    # the default task's tables are held the same way
    landing = Path(lake.env["LAKEHOUSE_HOME"] or "") / "landing" / "shop" / "orders"
    landing.mkdir(parents=True)
    pq.write_table(pa.table({"v": [3]}), landing / "y.parquet")
    lake("scan")
    assert lake.sql("select v from shop.orders") == [{"v": 1}]
    conflicts = lake.sql("select name, reason from lakehouse.conflicts")
    assert len(conflicts) == 1  # recorded once, reported once


def test_a_task_added_while_the_code_location_runs_is_run_by_the_default_sensor(
    tmp_path: Path, s3: AuthS3
) -> None:
    from lakehouse_assets.definitions import build_definitions
    from sensors.run_once import catch_up

    lake = Lake(tmp_path, s3)
    defs = build_definitions(lake.lh.settings)  # loaded before the task exists, as a running daemon's
    (tmp_path / "raw" / "orders").mkdir(parents=True)
    pq.write_table(pa.table({"v": [1]}), tmp_path / "raw" / "orders" / "x.parquet")
    lake(
        "datascan",
        "add",
        "added",
        "--location",
        str(tmp_path / "raw"),
        "--namespace",
        "shop",
        "--interval",
        "1",
    )
    with dg.instance_for_test() as instance:
        result = catch_up(defs, instance, log_level="ERROR")
    assert result.failed == 0 and result.requested >= 1
    assert lake.sql("select v from shop.orders") == [{"v": 1}]


def test_each_task_is_its_own_sensor_and_daily_tables_have_daily_partitions(
    tmp_path: Path, s3: AuthS3
) -> None:
    from lakehouse_assets.definitions import build_definitions

    lake = Lake(tmp_path, s3)
    store = tmp_path / "raw" / "orders" / "dt=2025-09-17"
    store.mkdir(parents=True)
    pq.write_table(pa.table({"v": [1]}), store / "x.parquet")
    lake(
        "datascan",
        "add",
        "shop",
        "--location",
        str(tmp_path / "raw"),
        "--namespace",
        "shop",
        "--interval",
        "17",
    )
    settings = lake.lh.settings
    defs = build_definitions(settings)
    sensors = {s.name: s for s in defs.sensors or []}  # type: ignore[union-attr]
    assert set(sensors) == {"datascan", "datascan_shop"}
    assert sensors["datascan_shop"].minimum_interval_seconds == 17
    assert "directly under" in (sensors["datascan_shop"].description or "")
    ods = defs.resolve_assets_def(dg.AssetKey(["shop", "orders"]))
    assert isinstance(ods.partitions_def, dg.TimeWindowPartitionsDefinition)  # daily, not dynamic hours
    lake("datascan", "run", "shop")
    assert lake.sql("select v, dt from shop.orders") == [{"v": 1, "dt": "2025-09-17"}]
    lake("datascan", "remove", "shop")
    assert {s.name for s in build_definitions(settings).sensors or []} == {"datascan"}
    assert lake("datascan", "remove", "default", ok=False).exit_code == 1
    # added again under its name, the task holds its table again: no conflict with itself
    pq.write_table(pa.table({"v": [2]}), store / "y.parquet")
    lake("datascan", "add", "shop", "--location", str(tmp_path / "raw"), "--namespace", "shop")
    lake("datascan", "run", "shop")
    assert lake.sql("select v from shop.orders order by v") == [{"v": 1}, {"v": 2}]
    assert lake.sql("select count(*) as n from lakehouse.conflicts") == [{"n": 0}]
