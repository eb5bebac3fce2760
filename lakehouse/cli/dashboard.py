"""`lakehouse dashboard`: the web dashboard (lakehouse/serving/dashboard.py) under Streamlit."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType

import click

from lakehouse.cli.options import open_lakehouse
from lakehouse.serving.network import is_loopback

SCRIPT = Path(__file__).resolve().parent.parent / "serving" / "dashboard.py"


def streamlit_command(host: str, port: int) -> list[str]:
    """The Streamlit server for the dashboard script: headless, no telemetry, no file watching, no
    error details in the page."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(SCRIPT),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--server.showEmailPrompt",
        "false",
        "--client.showErrorDetails",
        "none",
        "--client.toolbarMode",
        "minimal",
        "--runner.magicEnabled",
        "false",
        "--global.developmentMode",
        "false",
    ]


def run_forwarding_signals(command: list[str]) -> int:
    """Run `command` with this environment until it exits; SIGTERM and SIGINT sent to this process
    are passed on to it (stopping this PID stops the server). The child has its own session, so a
    terminal's Ctrl-C reaches it once, through the forwarding, not twice."""
    children: list[subprocess.Popen[bytes]] = []
    stopping: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        child = subprocess.Popen(command, env=dict(os.environ), start_new_session=True)
        children.append(child)
        if stopping:  # a signal came before the child existed
            child.send_signal(stopping[0])
        return child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for child in children:
            if child.poll() is None:
                child.terminate()
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()


@click.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a --host that is not loopback (the dashboard is plain HTTP: put TLS in front of it).",
)
def dashboard(host: str, port: int, allow_remote: bool) -> None:
    """The web dashboard of both seeds behind a login (passwords: `lakehouse user password`)."""
    if not is_loopback(host) and not allow_remote:
        raise click.ClickException(
            f"refusing to listen on {host}: the dashboard is plain HTTP (no TLS); "
            "pass --allow-remote to serve other machines"
        )
    open_lakehouse()  # a bad setting is the one-line error now, not a broken page later
    if importlib.util.find_spec("streamlit") is None:
        raise click.ClickException("the dashboard needs Streamlit: pip install 'lakehouse[serve]'")
    if not is_loopback(host):
        click.echo(f"warning: serving plain HTTP on {host}:{port} (no TLS)", err=True)
    click.echo(f"dashboard on http://{host}:{port} (stop with Ctrl-C)", err=True)
    code = run_forwarding_signals(streamlit_command(host, port))
    if code not in (0, -signal.SIGTERM, -signal.SIGINT):
        raise click.ClickException(f"streamlit exited with status {code}")


if __name__ == "__main__":
    dashboard()
