"""`lakehouse dashboard`'s guards and the Streamlit command it runs (the server itself: e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from lakehouse.cli.dashboard import SCRIPT, dashboard, streamlit_command
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
