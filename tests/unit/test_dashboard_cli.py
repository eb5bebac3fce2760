"""`lakehouse dashboard`'s guards, the Streamlit command and environment it runs with, its launcher
(the server itself: e2e; its attacks: tests/serving/test_security_dashboard.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lakehouse.cli.dashboard import (
    SCRIPT,
    absolute_catalog_uri,
    allowed_hosts,
    child_env,
    dashboard,
    launcher_source,
    streamlit_command,
)
from lakehouse.core.settings import LakehouseSettings
from lakehouse.serving.dashboard import DashboardOptions
from lakehouse.serving.network import is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
        ("example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_a_remote_host_is_refused_without_allow_remote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "lh"))
    result = CliRunner().invoke(dashboard, ["--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert "plain HTTP" in result.output and "--allow-remote" in result.output


def test_the_streamlit_command_is_headless_without_telemetry_or_file_watching() -> None:
    command = streamlit_command("127.0.0.1", 8765)
    assert command[1:5] == ["-m", "streamlit", "run", str(SCRIPT)]
    flags = dict(zip(command[5::2], command[6::2], strict=True))
    assert flags["--server.address"] == "127.0.0.1"
    assert flags["--server.port"] == "8765"
    assert flags["--server.headless"] == "true"
    assert flags["--browser.gatherUsageStats"] == "false"
    assert flags["--server.fileWatcherType"] == "none"
    assert flags["--client.showErrorDetails"] == "none"
    assert SCRIPT.name == "dashboard.py" and SCRIPT.parent.name == "serving"


def test_streamlits_security_settings_are_pinned_as_flags() -> None:
    """Flags rank above config files and STREAMLIT_* variables: these hold whatever they say."""
    command = streamlit_command("127.0.0.1", 8765, Path("/run/launcher.py"), ["dash.example.com"], Path("/x"))
    pairs = list(zip(command[5::2], command[6::2], strict=True))
    flags = dict(pairs)
    assert command[4] == "/run/launcher.py"
    for name, value in {
        "server.enableXsrfProtection": "true",
        "server.enableCORS": "true",
        "server.enableStaticServing": "false",
        "server.enableAgentApi": "false",
        "server.scriptHealthCheckEnabled": "false",
        "server.headless": "true",
        "global.developmentMode": "false",
        "client.toolbarMode": "minimal",
        "client.disableDataExport": "true",
        "client.allowedOrigins": "",
        "server.corsAllowedOrigins": "",
        "server.trustedUserHeaders": "{}",
    }.items():
        assert flags[f"--{name}"] == value, name
    hosts = [v for k, v in pairs if k == "--server.allowedHosts"]
    assert hosts == ["127.0.0.1", "localhost", "::1", "dash.example.com"]
    assert flags["--secrets.files"] == "/x"
    assert not any("cookieSecret" in part for part in command)  # never on a command line


def test_the_child_environment_has_no_streamlit_variable_and_absolute_locations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = LakehouseSettings.from_env(
        {"LAKEHOUSE_HOME": "lh", "LAKEHOUSE_CATALOG_URI": "sqlite:///rel/catalog.db"}
    )
    base = {
        "PATH": "/usr/bin",
        "STREAMLIT_SERVER_ENABLE_XSRF_PROTECTION": "false",
        "streamlit_client_toolbar_mode": "developer",
        "STREAMLIT_SERVER_COOKIE_SECRET": "known-to-the-attacker",
        "FORWARDED_ALLOW_IPS": "*",
    }
    env = child_env(base, settings)
    assert env["PATH"] == "/usr/bin"
    assert [k for k in env if k.upper().startswith("STREAMLIT_")] == ["STREAMLIT_SERVER_COOKIE_SECRET"]
    assert env["STREAMLIT_SERVER_COOKIE_SECRET"] != "known-to-the-attacker"
    assert len(env["STREAMLIT_SERVER_COOKIE_SECRET"]) == 64
    assert env["FORWARDED_ALLOW_IPS"] == "127.0.0.1,::1"
    assert child_env(base, settings, ["10.0.0.5"])["FORWARDED_ALLOW_IPS"] == "10.0.0.5"
    assert env["LAKEHOUSE_HOME"] == str(tmp_path / "lh")
    assert env["LAKEHOUSE_CATALOG_URI"] == f"sqlite:///{tmp_path}/rel/catalog.db"
    assert absolute_catalog_uri("postgresql+psycopg2://u:p@h/db") == "postgresql+psycopg2://u:p@h/db"
    assert absolute_catalog_uri("sqlite:////abs/c.db") == "sqlite:////abs/c.db"


def test_a_trusted_proxy_is_one_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKEHOUSE_HOME", str(tmp_path / "lh"))
    result = CliRunner().invoke(dashboard, ["--trusted-proxy", "*"])
    assert result.exit_code == 2 and "not an IP address" in result.output


def test_the_launcher_runs_the_dashboard_with_the_flags_options() -> None:
    options = DashboardOptions(
        failed_login_attempts=3,
        password_lock_seconds=2.5,
        allow_owner=True,
        idle_timeout_seconds=60.0,
        absolute_timeout_seconds=600.0,
    )
    called: list[DashboardOptions] = []
    namespace: dict[str, object] = {}
    source = launcher_source(options).replace(
        "from lakehouse.serving.dashboard import DashboardOptions, main",
        "from lakehouse.serving.dashboard import DashboardOptions",
    )
    namespace["main"] = called.append
    exec(compile(source, "launcher", "exec"), namespace)  # noqa: S102 - our own generated source
    assert called == [options]
    assert DashboardOptions() == DashboardOptions(5, 1.0, False, 1800.0, 43200.0)


def test_allowed_hosts_follow_the_listening_address() -> None:
    assert allowed_hosts("127.0.0.1") == ["127.0.0.1", "localhost", "::1"]
    assert allowed_hosts("[::1]") == ["::1", "localhost", "127.0.0.1"]
    assert allowed_hosts("192.168.1.5", ["dash.example.com"]) == ["192.168.1.5", "dash.example.com"]
    wildcard = allowed_hosts("0.0.0.0")
    assert "0.0.0.0" not in wildcard and {"localhost", "127.0.0.1"} <= set(wildcard)
