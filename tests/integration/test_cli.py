"""The `lakehouse` command line as a user types it: generate, scan, query, inspect; errors are one line."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from lakehouse.cli.main import main
from tests.helpers.env import UNSET
from tests.helpers.paths import BIN

LAKEHOUSE_BIN = BIN / "lakehouse"
FIRST_HOUR = "iov/ods_vehicle_gps_raw/dt=2025-09-17/hh=18"
SECOND_HOUR = "iov/ods_vehicle_gps_raw/dt=2025-09-17/hh=19"


class Cli:
    """Runs `lakehouse ...` in-process against one LAKEHOUSE_HOME / DAGSTER_HOME."""

    def __init__(self, root: Path, **env: str) -> None:
        self.home = root / "lh"
        (root / "dh").mkdir(parents=True, exist_ok=True)
        self.env: dict[str, str | None] = {k: None for k in UNSET}
        self.env.update(LAKEHOUSE_HOME=str(self.home), DAGSTER_HOME=str(root / "dh"), **env)

    def __call__(self, *args: str, ok: bool = True) -> Result:
        result = CliRunner().invoke(main, list(args), env=self.env, catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.stderr
        return result

    def sql(self, query: str, fmt: str = "json") -> list[dict]:
        return json.loads(self("sql", query, "--format", fmt).stdout)

    def landed(self) -> set[str]:
        landing = self.home / "landing"
        return {p.relative_to(landing).as_posix() for p in landing.rglob("*") if p.is_file()}


def assert_one_line_error(result: Result, *fragments: str) -> None:
    assert result.exit_code != 0
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture(scope="module", params=["iceberg", "delta"])
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """5 vehicles x 2 hours generated (with junk and a corrupt file) and scanned through to ADS."""
    cli = Cli(tmp_path_factory.mktemp(f"cli-{request.param}"), LAKEHOUSE_TABLE_FORMAT=request.param)
    cli("generate", "iov", "--hours", "2", "--vehicles", "5")
    scanned = cli("scan")
    assert "DataScan: 1/1 reconcile run(s) succeeded, 6 partition(s) built" in scanned.stdout
    return cli


# --- generate -----------------------------------------------------------------------------------


def test_generate_writes_data_and_junk_files(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    result = cli("generate", "iov", "--hours", "2", "--vehicles", "5")
    landing = (tmp_path / "lh" / "landing").resolve()
    # 5 vehicles reporting every 30 s for 2 hours
    assert result.stdout.startswith("wrote 1200 rows (")
    assert f"in 2 files and 6 junk files under {landing}" in result.stdout
    data = {f"{FIRST_HOUR}/part-00000.parquet", f"{SECOND_HOUR}/part-00000.orc"}  # --format mixed
    junk = {
        "iov/.DS_Store",
        f"{FIRST_HOUR}/.DS_Store",
        f"{FIRST_HOUR}/_SUCCESS",
        f"{FIRST_HOUR}/empty.parquet",
        f"{FIRST_HOUR}/part-99999.parquet.uploading",
        f"{FIRST_HOUR}/corrupt.parquet",
    }
    assert cli.landed() == data | junk


def test_generate_no_junk_writes_only_data(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    result = cli("generate", "iov", "--hours", "2", "--vehicles", "5", "--no-junk", "--format", "parquet")
    assert "in 2 files and 0 junk files" in result.stdout
    assert cli.landed() == {f"{FIRST_HOUR}/part-00000.parquet", f"{SECOND_HOUR}/part-00000.parquet"}


def test_generate_into_another_landing_folder(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    result = Cli(tmp_path)(
        "generate", "iov", "--hours", "1", "--vehicles", "2", "--no-junk", "--landing", str(other)
    )
    assert f"under {other.resolve()}" in result.stdout
    assert [p.name for p in other.rglob("*") if p.is_file()] == ["part-00000.parquet"]
    assert not (tmp_path / "lh" / "landing").exists()


def test_generate_rejects_an_interval_that_does_not_divide_an_hour(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    assert_one_line_error(
        cli("generate", "iov", "--hours", "1", "--interval-seconds", "7", ok=False),
        "--interval-seconds must divide 3600, got 7",
    )
    assert not (tmp_path / "lh" / "landing").exists() or cli.landed() == set()


# --- sql output formats -------------------------------------------------------------------------


def test_sql_json_prints_only_a_json_array(loaded: Cli) -> None:
    result = loaded("sql", "select count(*) as n from iov.ads_vehicle_hourly_stat", "--format", "json")
    assert json.loads(result.stdout) == [{"n": 10}]  # 5 vehicles x 2 hours


def test_sql_json_rows_are_plain_values(loaded: Cli) -> None:
    rows = loaded.sql(
        "select vin, stat_hour, total_distance, avg_speed from iov.ads_vehicle_hourly_stat "
        "order by stat_hour, vin"
    )
    assert [(r["vin"], r["stat_hour"]) for r in rows[:2]] == [
        ("VIN001", "2025-09-17 18"),
        ("VIN002", "2025-09-17 18"),
    ]
    assert {r["stat_hour"] for r in rows} == {"2025-09-17 18", "2025-09-17 19"}
    assert all(r["total_distance"] > 0 and 0 < r["avg_speed"] <= 140 for r in rows)


def test_sql_csv_has_a_header_line(loaded: Cli) -> None:
    out = loaded(
        "sql",
        "select vin, count(*) as hours from iov.ads_vehicle_hourly_stat group by vin order by vin",
        "--format",
        "csv",
    ).stdout
    assert out.splitlines()[0] == "vin,hours"
    assert list(csv.DictReader(io.StringIO(out)))[0] == {"vin": "VIN001", "hours": "2"}
    assert len(out.splitlines()) == 1 + 5


def test_sql_default_table_format_shows_the_column_name(loaded: Cli) -> None:
    out = loaded("sql", "select count(*) as vehicle_hours from iov.ads_vehicle_hourly_stat").stdout
    lines = [line.strip("|+ ") for line in out.splitlines()]
    assert lines[1] == "vehicle_hours" and lines[3] == "10", out  # header cell, then the one value
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


# --- inspecting the lakehouse -------------------------------------------------------------------


def test_tables_lists_what_the_scan_created(loaded: Cli) -> None:
    rows = json.loads(loaded("tables", "--format", "json").stdout)
    by_name = {(r["namespace"], r["name"]): r for r in rows}
    assert set(by_name) == {
        ("iov", "ods_vehicle_gps_raw"),
        ("iov", "dwd_vehicle_gps"),
        ("iov", "dwd_vehicle_gps_rejected"),
        ("iov", "ads_vehicle_hourly_stat"),
    }
    assert by_name[("iov", "ods_vehicle_gps_raw")]["origin"] == "datascan"
    assert by_name[("iov", "ads_vehicle_hourly_stat")]["origin"] == "model"
    assert {r["format"] for r in rows} == {loaded.env["LAKEHOUSE_TABLE_FORMAT"]}
    assert "ads_vehicle_hourly_stat" in loaded("tables").stdout


def test_partitions_lists_each_hour_with_its_rows(loaded: Cli) -> None:
    rows = json.loads(loaded("partitions", "iov.dwd_vehicle_gps", "--format", "json").stdout)
    assert [(r["dt"], r["hh"]) for r in rows] == [("2025-09-17", "18"), ("2025-09-17", "19")]
    total = loaded.sql("select count(*) as n from iov.dwd_vehicle_gps")[0]["n"]
    assert sum(r["rows"] for r in rows) == total
    assert 0 < total < 1200  # the generator's dirty rows went to dwd_vehicle_gps_rejected


def test_rejected_lists_the_corrupt_file(loaded: Cli) -> None:
    rows = json.loads(loaded("rejected", "--format", "json").stdout)
    assert [r["path"] for r in rows] == [f"{FIRST_HOUR}/corrupt.parquet"]
    assert rows[0]["partition_key"] == "2025-09-17-18"
    assert "parquet" in rows[0]["reason"]
    assert "corrupt.parquet" in loaded("rejected").stdout


def test_system_tables_are_queryable(loaded: Cli) -> None:
    rejected = loaded.sql("select path, table_name, partition_key from lakehouse.rejected_files")
    assert rejected == [
        {
            "path": f"{FIRST_HOUR}/corrupt.parquet",
            "table_name": "ods_vehicle_gps_raw",
            "partition_key": "2025-09-17-18",
        }
    ]
    files = loaded.sql("select path, status from lakehouse.files order by path")
    assert files == [
        {"path": f"{FIRST_HOUR}/corrupt.parquet", "status": "rejected"},
        {"path": f"{FIRST_HOUR}/part-00000.parquet", "status": "loaded"},
        {"path": f"{SECOND_HOUR}/part-00000.orc", "status": "loaded"},
    ]  # junk (.DS_Store, _SUCCESS, empty and half-uploaded files) is not even listed


def test_a_second_scan_with_nothing_new_does_nothing(loaded: Cli) -> None:
    out = loaded("scan").stdout
    assert out.startswith("DataScan: ")
    assert "run(s)" not in out
    assert loaded.sql("select count(*) as n from iov.ads_vehicle_hourly_stat") == [{"n": 10}]


# --- errors are one line on stderr, nothing on stdout -------------------------------------------


@pytest.mark.parametrize(
    ("query", "fragments"),
    [
        ("select * from iov.no_such_table", ["iov.no_such_table does not exist"]),
        ("drop table iov.dwd_vehicle_gps", ["only read-only queries are allowed", "DROP"]),
        ("select * from", ["cannot parse query"]),
        ("selec vin frm iov.dwd_vehicle_gps", ["cannot parse query"]),
        ("select no_such_column from iov.dwd_vehicle_gps", ["no_such_column"]),
        ("select * from dwd_vehicle_gps", ["must be qualified as namespace.table"]),
    ],
)
def test_sql_errors_are_one_line_on_stderr(loaded: Cli, query: str, fragments: list[str]) -> None:
    assert_one_line_error(loaded("sql", query, "--format", "json", ok=False), *fragments)


def test_drop_is_refused_and_the_table_survives(loaded: Cli) -> None:
    loaded("sql", "drop table iov.ads_vehicle_hourly_stat", ok=False)
    assert loaded.sql("select count(*) as n from iov.ads_vehicle_hourly_stat") == [{"n": 10}]


def test_partitions_of_an_unqualified_table_is_a_one_line_error(tmp_path: Path) -> None:
    assert_one_line_error(Cli(tmp_path)("partitions", "dwd_vehicle_gps", ok=False), "must be namespace.table")


def test_a_bad_setting_is_a_one_line_error_naming_the_variable(tmp_path: Path) -> None:
    cli = Cli(tmp_path, LAKEHOUSE_TABLE_FORMAT="hudi")
    assert_one_line_error(cli("tables", ok=False), "LAKEHOUSE_TABLE_FORMAT")


def test_the_installed_console_script_fails_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "dh").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in UNSET}
    env.update(LAKEHOUSE_HOME=str(tmp_path / "lh"), DAGSTER_HOME=str(tmp_path / "dh"))
    proc = subprocess.run(
        [str(LAKEHOUSE_BIN), "sql", "select * from iov.no_such_table", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "Error: QueryError: table iov.no_such_table does not exist (see `lakehouse tables`)"
    ]
