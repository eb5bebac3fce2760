"""The configuration contract: every knob is an environment variable with a documented default."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.core.settings import ConfigError, LakehouseSettings, S3Credentials

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def from_env(home: Path, **env: str) -> LakehouseSettings:
    return LakehouseSettings.from_env({"LAKEHOUSE_HOME": str(home), **env})


def test_defaults_live_under_lakehouse_home(tmp_path: Path) -> None:
    s = from_env(tmp_path / "lh")
    home = str((tmp_path / "lh").resolve())
    assert s.home == home
    assert s.landing_uri == f"{home}/landing"
    assert s.warehouse_uri == f"{home}/warehouse"
    assert s.catalog_uri == f"sqlite:///{home}/catalog.db"  # four slashes: an absolute sqlite path
    assert s.catalog_uri.startswith("sqlite:////")
    assert (s.table_format, s.scan_interval_seconds, s.distance_method) == ("iceberg", 300, "haversine")
    assert s.s3 == S3Credentials()


def test_relative_home_becomes_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = LakehouseSettings.from_env({"LAKEHOUSE_HOME": "rel/lh"})
    assert s.home == str((tmp_path / "rel" / "lh").resolve())
    assert s.landing_uri == str((tmp_path / "rel" / "lh" / "landing").resolve())


def test_home_defaults_to_dot_lakehouse_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert LakehouseSettings.from_env({}).home == str((tmp_path / ".lakehouse").resolve())


def test_home_must_be_local() -> None:
    with pytest.raises(ConfigError, match="LAKEHOUSE_HOME"):
        LakehouseSettings.from_env({"LAKEHOUSE_HOME": "s3://bucket/lakehouse"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{tmp}/land", "{tmp}/land"),
        ("{tmp}/land/", "{tmp}/land"),
        ("{tmp}/a/../land", "{tmp}/land"),
        ("file://{tmp}/land", "{tmp}/land"),
        ("file://{tmp}/land/", "{tmp}/land"),
        ("s3://raw-bucket/landing", "s3://raw-bucket/landing"),
        ("s3://raw-bucket/landing/", "s3://raw-bucket/landing"),
    ],
)
def test_landing_uri_override(tmp_path: Path, value: str, expected: str) -> None:
    tmp = str(tmp_path.resolve())
    s = from_env(tmp_path / "lh", LAKEHOUSE_LANDING_URI=value.format(tmp=tmp))
    assert s.landing_uri == expected.format(tmp=tmp)
    # the other locations keep their defaults
    assert s.warehouse_uri == f"{tmp}/lh/warehouse"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{tmp}/wh", "{tmp}/wh"),
        ("file://{tmp}/wh", "{tmp}/wh"),
        ("s3://lake/warehouse/", "s3://lake/warehouse"),
    ],
)
def test_warehouse_uri_override(tmp_path: Path, value: str, expected: str) -> None:
    tmp = str(tmp_path.resolve())
    s = from_env(tmp_path / "lh", LAKEHOUSE_WAREHOUSE_URI=value.format(tmp=tmp))
    assert s.warehouse_uri == expected.format(tmp=tmp)
    assert s.landing_uri == f"{tmp}/lh/landing"


@pytest.mark.parametrize("url", ["postgresql+psycopg://lake:pw@db:5432/catalog", "sqlite:////srv/catalog.db"])
def test_catalog_uri_override_is_kept_verbatim(tmp_path: Path, url: str) -> None:
    assert from_env(tmp_path, LAKEHOUSE_CATALOG_URI=url).catalog_uri == url


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("iceberg", "iceberg"),
        ("delta", "delta"),
        ("DELTA", "delta"),
        ("Iceberg", "iceberg"),
        ("", "iceberg"),
    ],
)
def test_table_format(tmp_path: Path, value: str, expected: str) -> None:
    assert from_env(tmp_path, LAKEHOUSE_TABLE_FORMAT=value).table_format == expected


@pytest.mark.parametrize("value", ["hudi", "parquet", "iceberg2"])
def test_bad_table_format_names_the_variable(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match=f"LAKEHOUSE_TABLE_FORMAT.*'{value}'"):
        from_env(tmp_path, LAKEHOUSE_TABLE_FORMAT=value)


@pytest.mark.parametrize(("value", "expected"), [("", 300), ("42", 42), ("1", 1), ("3600", 3600)])
def test_scan_interval(tmp_path: Path, value: str, expected: int) -> None:
    assert from_env(tmp_path, LAKEHOUSE_SCAN_INTERVAL_SECONDS=value).scan_interval_seconds == expected


def test_scan_interval_defaults_to_five_minutes(tmp_path: Path) -> None:
    assert from_env(tmp_path).scan_interval_seconds == 300


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("five", "whole number of seconds, got 'five'"),
        ("1.5", "whole number of seconds, got '1.5'"),
        ("5m", "whole number of seconds, got '5m'"),
        ("0", "at least 1, got 0"),
        ("-30", "at least 1, got -30"),
    ],
)
def test_bad_scan_interval_names_the_variable(tmp_path: Path, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"LAKEHOUSE_SCAN_INTERVAL_SECONDS must be .*{message}"):
        from_env(tmp_path, LAKEHOUSE_SCAN_INTERVAL_SECONDS=value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "haversine"),
        ("haversine", "haversine"),
        ("planar", "planar"),
        ("PLANAR", "planar"),
    ],
)
def test_distance_method(tmp_path: Path, value: str | None, expected: str) -> None:
    env = {} if value is None else {"LAKEHOUSE_DISTANCE_METHOD": value}
    assert from_env(tmp_path, **env).distance_method == expected


def test_bad_distance_method_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="LAKEHOUSE_DISTANCE_METHOD.*'euclid'"):
        from_env(tmp_path, LAKEHOUSE_DISTANCE_METHOD="euclid")


def test_config_error_is_a_value_error() -> None:
    # callers that only know ValueError still catch configuration mistakes
    assert issubclass(ConfigError, ValueError)


def test_s3_credentials_come_from_the_standard_aws_variables(tmp_path: Path) -> None:
    s = from_env(
        tmp_path,
        AWS_ENDPOINT_URL="http://127.0.0.1:9000",
        AWS_ACCESS_KEY_ID="AKIAEXAMPLE",
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_REGION="eu-central-1",
    )
    assert s.s3 == S3Credentials(
        endpoint_url="http://127.0.0.1:9000",
        access_key_id="AKIAEXAMPLE",
        secret_access_key=SECRET,
        region="eu-central-1",
    )


def test_aws_default_region_is_a_fallback(tmp_path: Path) -> None:
    assert from_env(tmp_path, AWS_DEFAULT_REGION="us-west-2").s3.region == "us-west-2"
    assert from_env(tmp_path, AWS_DEFAULT_REGION="us-west-2", AWS_REGION="eu-west-1").s3.region == "eu-west-1"


def test_empty_aws_variables_mean_unset(tmp_path: Path) -> None:
    # an empty AWS_ENDPOINT_URL must not turn into endpoint "" (botocore would fail on it)
    s = from_env(tmp_path, AWS_ENDPOINT_URL="", AWS_ACCESS_KEY_ID="", AWS_SECRET_ACCESS_KEY="", AWS_REGION="")
    assert s.s3 == S3Credentials()


def test_the_secret_never_appears_in_repr(tmp_path: Path) -> None:
    s = from_env(tmp_path, AWS_ACCESS_KEY_ID="AKIAEXAMPLE", AWS_SECRET_ACCESS_KEY=SECRET)
    assert s.s3.secret_access_key == SECRET  # it is there to be used ...
    for text in (repr(s), str(s), repr(s.s3), str(s.s3), f"{s}", f"{s.s3!r}"):
        assert SECRET not in text  # ... but never printed
        assert "AKIAEXAMPLE" in text  # while the (non-secret) key id still helps debugging


def test_from_env_reads_the_mapping_it_is_given_not_os_environ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEHOUSE_TABLE_FORMAT", "delta")
    monkeypatch.setenv("LAKEHOUSE_SCAN_INTERVAL_SECONDS", "7")
    s = from_env(tmp_path)
    assert (s.table_format, s.scan_interval_seconds) == ("iceberg", 300)


def test_from_env_without_a_mapping_reads_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "lh"))
    monkeypatch.setenv("LAKEHOUSE_TABLE_FORMAT", "delta")
    monkeypatch.setenv("LAKEHOUSE_SCAN_INTERVAL_SECONDS", "7")
    s = LakehouseSettings.from_env()
    assert (s.home, s.table_format, s.scan_interval_seconds) == (str((tmp_path / "lh").resolve()), "delta", 7)


def test_for_home_applies_overrides(tmp_path: Path) -> None:
    s = LakehouseSettings.for_home(tmp_path, table_format="delta", scan_interval_seconds=42)
    assert (s.table_format, s.scan_interval_seconds) == ("delta", 42)
    assert s.landing_uri == f"{tmp_path.resolve()}/landing"


def test_the_datascan_sensor_runs_at_the_configured_interval(tmp_path: Path) -> None:
    from lakehouse_assets.definitions import build_definitions

    defs = build_definitions(LakehouseSettings.for_home(tmp_path, scan_interval_seconds=42))
    assert defs.resolve_sensor_def("datascan").minimum_interval_seconds == 42


def test_the_datascan_sensor_interval_follows_the_environment(tmp_path: Path) -> None:
    from lakehouse_assets.definitions import build_definitions

    settings = from_env(tmp_path, LAKEHOUSE_SCAN_INTERVAL_SECONDS="17")
    assert build_definitions(settings).resolve_sensor_def("datascan").minimum_interval_seconds == 17


def test_resource_overrides_are_validated_like_the_environment(tmp_path) -> None:
    from resources.lakehouse import LakehouseResource

    good = LakehouseResource(home=str(tmp_path), table_format="DELTA", distance_method="planar").settings()
    assert (good.table_format, good.distance_method, good.home) == ("delta", "planar", str(tmp_path))
    with pytest.raises(ConfigError, match="LAKEHOUSE_TABLE_FORMAT"):
        LakehouseResource(home=str(tmp_path), table_format="parquet").settings()


def test_governed_query_limits_default_to_a_minute_and_a_quarter_of_memory(tmp_path: Path) -> None:
    import os

    settings = LakehouseSettings.from_env({"LAKEHOUSE_HOME": str(tmp_path)})
    assert settings.query_timeout_seconds == 60.0
    total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20
    assert settings.query_memory_limit == f"{total_mb // 4}MB"


@pytest.mark.parametrize(("timeout", "memory"), [("2.5", "512MB"), ("120", "4GB"), ("1", "1.5GiB")])
def test_governed_query_limits_from_the_environment(tmp_path: Path, timeout: str, memory: str) -> None:
    env = {"LAKEHOUSE_HOME": str(tmp_path), "LAKEHOUSE_QUERY_TIMEOUT_SECONDS": timeout}
    settings = LakehouseSettings.from_env({**env, "LAKEHOUSE_QUERY_MEMORY_LIMIT": memory})
    assert (settings.query_timeout_seconds, settings.query_memory_limit) == (float(timeout), memory)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LAKEHOUSE_QUERY_TIMEOUT_SECONDS", "0"),
        ("LAKEHOUSE_QUERY_TIMEOUT_SECONDS", "-3"),
        ("LAKEHOUSE_QUERY_TIMEOUT_SECONDS", "soon"),
        ("LAKEHOUSE_QUERY_TIMEOUT_SECONDS", "inf"),
        ("LAKEHOUSE_QUERY_MEMORY_LIMIT", "lots"),
        ("LAKEHOUSE_QUERY_MEMORY_LIMIT", "80%"),
        ("LAKEHOUSE_QUERY_MEMORY_LIMIT", "4 parsecs"),
    ],
)
def test_bad_query_limits_name_the_variable(tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"{variable} must be .*'{value}'"):
        LakehouseSettings.from_env({"LAKEHOUSE_HOME": str(tmp_path), variable: value})
