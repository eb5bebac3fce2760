"""`lakehouse dashboard`: the web dashboard (lakehouse/serving/dashboard.py) under Streamlit.

The command decides Streamlit's security settings, whatever a `.streamlit/config.toml` (of the
directory it is started from, or next to a script) or `STREAMLIT_*` variables say: Streamlit runs
from a private, empty run directory (a launcher script there, nothing else: no project config, no
secrets, no `static/` or `pages/` folder, no git checkout for its `load_git_info` message), its
environment has no `STREAMLIT_*` variable but a fresh cookie secret, and every setting that matters
is a command-line flag, which Streamlit ranks above files and variables (STREAMLIT_FLAGS). The
dashboard's own options (logins, sessions) are written into the launcher as one
`DashboardOptions(...)` literal (numbers and booleans only). Relative LAKEHOUSE_* locations are
made absolute first, so the run directory changes nothing about which lakehouse is read.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import FrameType

import click

from lakehouse.cli.options import open_lakehouse
from lakehouse.core.settings import LakehouseSettings
from lakehouse.serving.dashboard import DashboardOptions
from lakehouse.serving.network import is_loopback

SCRIPT = Path(__file__).resolve().parent.parent / "serving" / "dashboard.py"
LAUNCHER = "lakehouse_dashboard.py"
MAX_LOCK_SECONDS = 900
LOOPBACK_PROXIES = ("127.0.0.1", "::1")
MAX_TIMEOUT_SECONDS = 31 * 86400

STREAMLIT_FLAGS: dict[str, str] = {
    # no browser, prompt, telemetry or file watching; nothing reloaded from disk
    "server.headless": "true",  # also refuses the skills install a browser may ask for
    "browser.gatherUsageStats": "false",
    "server.fileWatcherType": "none",
    "server.runOnSave": "false",
    "server.allowRunOnSave": "false",
    "server.showEmailPrompt": "false",
    # the browser boundary
    "server.enableXsrfProtection": "true",
    "server.enableCORS": "true",  # a WebSocket from another origin is refused
    "server.corsAllowedOrigins": "",
    "client.allowedOrigins": "",  # no parent frame (by default *.streamlit.app) may drive the page
    "server.enableStaticServing": "false",
    "server.enableAgentApi": "false",  # no HTTP/MCP client drives the app
    "server.scriptHealthCheckEnabled": "false",  # no HTTP request runs the script
    "server.trustedUserHeaders": "{}",  # no header names a user
    "server.baseUrlPath": "",
    "server.maxUploadSize": "1",  # MB; the dashboard takes no upload
    "global.developmentMode": "false",
    # what the page shows
    "client.showErrorDetails": "none",
    "client.showErrorLinks": "false",
    "client.toolbarMode": "minimal",
    "client.disableDataExport": "true",  # no CSV download or copy of a table (none is shown today)
    "runner.magicEnabled": "false",
}
"""Streamlit settings `lakehouse dashboard` pins (with the address, the port, the allowed hosts and
the secrets files, which depend on the run)."""


def allowed_hosts(host: str, extra: Iterable[str] = ()) -> list[str]:
    """The Host header names a WebSocket may come with (DNS rebinding: a page of another name
    resolved to this server is refused): the listening address, loopback names when it is loopback
    or a wildcard (0.0.0.0, ::; with this machine's names), and the names given with --allowed-host
    (a proxy's public name, the name partners use)."""
    bare = host.strip("[]")
    names = [bare]
    try:
        wildcard = ipaddress.ip_address(bare).is_unspecified
    except ValueError:
        wildcard = False
    if wildcard:
        names = [socket.gethostname(), socket.getfqdn()]
    if wildcard or is_loopback(host):
        names += ["localhost", "127.0.0.1", "::1"]
    names += [n.strip() for n in extra if n.strip()]
    return list(dict.fromkeys(n for n in names if n))


def streamlit_command(
    host: str,
    port: int,
    script: Path = SCRIPT,
    hosts: Iterable[str] = (),
    secrets_file: Path | None = None,
) -> list[str]:
    """The Streamlit server for the dashboard script with every pinned setting as a flag."""
    command = [sys.executable, "-m", "streamlit", "run", str(script)]
    command += ["--server.address", host, "--server.port", str(port)]
    for name, value in STREAMLIT_FLAGS.items():
        command += [f"--{name}", value]
    for name in allowed_hosts(host, hosts):
        command += ["--server.allowedHosts", name]
    if secrets_file is not None:  # a file that does not exist: no secrets.toml is read
        command += ["--secrets.files", str(secrets_file)]
    return command


def launcher_source(options: DashboardOptions) -> str:
    """The script Streamlit runs: the dashboard with these options (numbers and booleans only)."""
    return (
        '"""Written by `lakehouse dashboard`: the dashboard with its command-line options."""\n\n'
        "from lakehouse.serving.dashboard import DashboardOptions, main\n\n"
        f"main({options!r})\n"
    )


def absolute_catalog_uri(url: str) -> str:
    """A SQLite catalog URL with a relative path made absolute (the run directory is not the
    caller's); any other URL as it is."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: the lakehouse will say so
        return url
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return url
    if database.startswith("file:") or os.path.isabs(database):
        return url
    return str(parsed.set(database=os.path.abspath(database)).render_as_string(hide_password=False))


def child_env(
    base: Mapping[str, str], settings: LakehouseSettings, trusted_proxies: Iterable[str] = ()
) -> dict[str, str]:
    """Streamlit's environment: `base` without STREAMLIT_* (they would set options), with a fresh
    cookie secret (never on the command line, which other local users can read), the lakehouse's
    locations absolute, and FORWARDED_ALLOW_IPS (the proxies whose X-Forwarded-For names the client
    address the login throttle counts) set to --trusted-proxy, loopback by default."""
    env = {k: v for k, v in base.items() if not k.upper().startswith("STREAMLIT_")}
    env["STREAMLIT_SERVER_COOKIE_SECRET"] = secrets.token_hex(32)
    env["LAKEHOUSE_HOME"] = settings.home
    env["LAKEHOUSE_LANDING_URI"] = settings.landing_uri
    env["LAKEHOUSE_WAREHOUSE_URI"] = settings.warehouse_uri
    env["LAKEHOUSE_CATALOG_URI"] = absolute_catalog_uri(settings.catalog_uri)
    env["FORWARDED_ALLOW_IPS"] = ",".join(list(trusted_proxies) or LOOPBACK_PROXIES)
    return env


def run_forwarding_signals(
    command: list[str], env: Mapping[str, str] | None = None, cwd: str | Path | None = None
) -> int:
    """Run `command` (in `env`, default this environment; in `cwd`) until it exits; SIGTERM and
    SIGINT sent to this process are passed on to it (stopping this PID stops the server). The child
    has its own session, so a terminal's Ctrl-C reaches it once, through the forwarding, not twice."""
    children: list[subprocess.Popen[bytes]] = []
    stopping: list[int] = []

    def forward(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        child = subprocess.Popen(
            command, env=dict(os.environ if env is None else env), cwd=cwd, start_new_session=True
        )
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


def _proxy(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an IP address (one proxy's address: '*' would let every client name "
            "its own address and dodge the login throttle)"
        ) from None


@click.command("dashboard")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a --host that is not loopback (the dashboard is plain HTTP: put TLS in front of it).",
)
@click.option(
    "--allowed-host",
    "extra_hosts",
    multiple=True,
    metavar="NAME",
    help="A host name browsers reach the dashboard by (a proxy's public name); others are refused. "
    "The listening address (and loopback names) always are allowed. Repeatable.",
)
@click.option(
    "--trusted-proxy",
    "trusted_proxies",
    multiple=True,
    metavar="IP",
    help="A reverse proxy whose X-Forwarded-For names the client address (the login throttle counts "
    "per address). Default: loopback only. Repeatable.",
)
@click.option(
    "--failed-login-attempts",
    type=click.IntRange(1, 1000),
    default=5,
    show_default=True,
    help="Failed logins in a row before a user is locked (a client address: twice as many).",
)
@click.option(
    "--password-lock-seconds",
    type=click.FloatRange(0.1, MAX_LOCK_SECONDS),
    default=1.0,
    show_default=True,
    help=f"The first lock; it doubles with every further failure, up to {MAX_LOCK_SECONDS} s.",
)
@click.option(
    "--allow-owner",
    is_flag=True,
    help="Let `owner` (every table, real values) log in. Refused by default: the dashboard is "
    "partner-facing; the owner has the CLI and the SQL endpoint.",
)
@click.option(
    "--idle-timeout-seconds",
    type=click.FloatRange(1, MAX_TIMEOUT_SECONDS),
    default=1800.0,
    show_default=True,
    help="A session ends after this long without a user action (the auto-refresh is none).",
)
@click.option(
    "--absolute-timeout-seconds",
    type=click.FloatRange(1, MAX_TIMEOUT_SECONDS),
    default=43200.0,
    show_default=True,
    help="A session ends this long after its login, however active.",
)
def dashboard(
    host: str,
    port: int,
    allow_remote: bool,
    extra_hosts: tuple[str, ...],
    trusted_proxies: tuple[str, ...],
    failed_login_attempts: int,
    password_lock_seconds: float,
    allow_owner: bool,
    idle_timeout_seconds: float,
    absolute_timeout_seconds: float,
) -> None:
    """The web dashboard of both seeds behind a login (passwords: `lakehouse user password`)."""
    if not is_loopback(host) and not allow_remote:
        raise click.ClickException(
            f"refusing to listen on {host}: the dashboard is plain HTTP (no TLS); "
            "pass --allow-remote to serve other machines"
        )
    proxies = [_proxy(p) for p in trusted_proxies]
    lh = open_lakehouse()  # a bad setting is the one-line error now, not a broken page later
    if importlib.util.find_spec("streamlit") is None:
        raise click.ClickException("the dashboard needs Streamlit: pip install 'lakehouse[serve]'")
    options = DashboardOptions(
        failed_login_attempts=failed_login_attempts,
        password_lock_seconds=password_lock_seconds,
        allow_owner=allow_owner,
        idle_timeout_seconds=idle_timeout_seconds,
        absolute_timeout_seconds=absolute_timeout_seconds,
    )
    if not is_loopback(host):
        click.echo(f"warning: serving plain HTTP on {host}:{port} (no TLS)", err=True)
    if allow_owner:
        click.echo("warning: the owner may log in to the dashboard (--allow-owner)", err=True)
    click.echo(f"dashboard on http://{host}:{port} (stop with Ctrl-C)", err=True)
    names = ", ".join(allowed_hosts(host, extra_hosts))
    click.echo(f"browsers may reach it as {names} (others: --allowed-host NAME)", err=True)
    with tempfile.TemporaryDirectory(prefix="lakehouse-dashboard-") as run_dir:
        launcher = Path(run_dir) / LAUNCHER
        launcher.write_text(launcher_source(options), encoding="utf-8")
        command = streamlit_command(host, port, launcher, extra_hosts, Path(run_dir) / "no-secrets.toml")
        env = child_env(os.environ, lh.settings, proxies)
        code = run_forwarding_signals(command, env=env, cwd=run_dir)
    if code not in (0, -signal.SIGTERM, -signal.SIGINT):
        raise click.ClickException(f"streamlit exited with status {code}")


if __name__ == "__main__":
    dashboard()
