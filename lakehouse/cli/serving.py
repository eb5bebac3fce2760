"""Serving: passwords, the MySQL-protocol SQL endpoint, the web dashboard."""

from __future__ import annotations

import sys
from typing import Any

import click

from lakehouse.cli.options import open_lakehouse


@click.group()
def user() -> None:
    """Logins for `lakehouse serve` and `lakehouse dashboard` (users come from policy files)."""


@user.command("password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def user_password(name: str, password_stdin: bool) -> None:
    """Set the password of NAME (a user a policy added, or `owner`); only a verifier is stored."""
    from lakehouse.serving.auth import set_password

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    found = set_password(open_lakehouse(), name, password)
    click.echo(f"password set for {found.label}")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=9030, show_default=True, help="0: any free port."
)
@click.option(
    "--tls-cert", type=click.Path(exists=True, dir_okay=False), help="PEM certificate: clients may use TLS."
)
@click.option(
    "--tls-key", type=click.Path(exists=True, dir_okay=False), help="PEM private key of --tls-cert."
)
@click.option(
    "--allow-insecure-remote",
    is_flag=True,
    help="Listen on a non-loopback address without TLS (passwords stay hashed; data travels in clear).",
)
@click.option(
    "--no-result-cache",
    is_flag=True,
    help="Run every query (results are otherwise remembered per snapshot, principal and query text).",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=8,
    show_default=True,
    help="Statements answered at once (worker threads); one account uses at most all but two.",
)
@click.option(
    "--memory-limit",
    default=None,
    help="Memory the server process may use (its data segment, RLIMIT_DATA), e.g. 4GB; each query's "
    "engine gets a share of it. Default: a quarter of this machine's memory, at least 2GB.",
)
@click.option(
    "--max-result-rows",
    type=click.IntRange(1),
    default=None,
    help="Rows one query may return [default: LAKEHOUSE_QUERY_MAX_ROWS, else 1,000,000].",
)
@click.option(
    "--max-result-bytes",
    default=None,
    help="Bytes one query may return, e.g. 256MB [default: LAKEHOUSE_QUERY_MAX_BYTES, else 256MiB].",
)
@click.option(
    "--failed-login-attempts",
    type=click.IntRange(1),
    default=5,
    show_default=True,
    help="Failed logins in a row before a user (or, at twice as many, a client address) is locked.",
)
@click.option(
    "--password-lock-seconds",
    type=click.FloatRange(0.001),
    default=1.0,
    show_default=True,
    help="The first lock; it doubles with every further failure, up to 15 minutes.",
)
@click.option(
    "--connect-timeout",
    type=click.FloatRange(0.1),
    default=10.0,
    show_default=True,
    help="Seconds a client has to complete the handshake and login (MySQL's connect_timeout).",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(1),
    default=900.0,
    show_default=True,
    help="Seconds a connection may stay silent between statements (MySQL's wait_timeout).",
)
@click.option(
    "--max-connections", type=click.IntRange(1), default=256, show_default=True, help="Connections at once."
)
@click.option(
    "--max-allowed-packet",
    default="4MiB",
    show_default=True,
    help="Largest command a client may send; larger closes its connection.",
)
def serve(
    host: str,
    port: int,
    tls_cert: str | None,
    tls_key: str | None,
    allow_insecure_remote: bool,
    no_result_cache: bool,
    workers: int,
    memory_limit: str | None,
    max_result_rows: int | None,
    max_result_bytes: str | None,
    failed_login_attempts: int,
    password_lock_seconds: float,
    connect_timeout: float,
    idle_timeout: float,
    max_connections: int,
    max_allowed_packet: str,
) -> None:
    """The SQL endpoint: the MySQL protocol, as StarRocks' frontend on 9030 (mysql CLI, PyMySQL,
    SQLAlchemy mysql+pymysql://, BI tools). Log in as `owner` or a policy's user (passwords: `lakehouse
    user password`); every statement is governed like `lakehouse sql --user` and audited, within the
    limits above (docs/security.md)."""
    import asyncio
    import contextlib
    import logging
    import signal
    import ssl

    from lakehouse.serving.auth import LoginThrottle
    from lakehouse.serving.mysql import serve as run_server
    from lakehouse.serving.network import is_loopback
    from lakehouse.serving.wire import WireLimits

    if bool(tls_cert) != bool(tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together")
    context = None
    if tls_cert and tls_key:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(tls_cert, tls_key)
    if not is_loopback(host) and context is None and not allow_insecure_remote:
        raise click.UsageError(
            f"--host {host} is not a loopback address: give --tls-cert/--tls-key, or --allow-insecure-remote"
        )
    budget = _size(memory_limit, "--memory-limit") if memory_limit else _default_budget()
    packet = _size(max_allowed_packet, "--max-allowed-packet")
    lh = _limited(open_lakehouse(), budget, workers, max_result_rows, max_result_bytes)
    lh = lh.for_serving(result_cache=not no_result_cache)
    _limit_memory(budget)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("mysql_mimic").setLevel(logging.CRITICAL)  # it logs failed queries with tracebacks
    throttle = LoginThrottle(free_failures=failed_login_attempts, lock_seconds=password_lock_seconds)
    limits = WireLimits(
        max_packet=packet,
        handshake_seconds=connect_timeout,
        idle_seconds=idle_timeout,
        max_connections=max_connections,
    )

    def ready(sockname: tuple[str, int]) -> None:
        click.echo(
            f"lakehouse SQL endpoint (MySQL protocol) listening on {sockname[0]}:{sockname[1]}", err=True
        )
        click.echo(f"mysql -h {sockname[0]} -P {sockname[1]} -u owner -p", err=True)

    async def main() -> None:
        server = run_server(
            lh,
            host=host,
            port=port,
            ssl=context,
            ready=ready,
            workers=workers,
            throttle=throttle,
            limits=limits,
        )
        task = asyncio.create_task(server)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):  # SIGTERM / SIGINT: a clean stop
            await task

    asyncio.run(main())
    click.echo("lakehouse SQL endpoint stopped", err=True)


def _size(text: str, flag: str) -> int:
    from lakehouse.core.settings import size_bytes

    try:
        return size_bytes(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a size such as 512MB or 4GB", param_hint=flag) from None


def _default_budget() -> int:
    import os

    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return max(total // 4, 2 * 2**30)


BASELINE_BYTES = 768 * 2**20
"""What the server holds besides its queries (interpreter, libraries, caches, thread stacks)."""


def _limited(lh: Any, budget: int, workers: int, rows: int | None, size: str | None) -> Any:
    """The lakehouse with the serving limits: each of `workers` queries gets an engine memory limit
    that together with the others fits the budget, and the result limits the flags set."""
    import dataclasses

    from lakehouse.core.settings import size_bytes
    from lakehouse.facade import Lakehouse

    if budget < BASELINE_BYTES + 64 * 2**20 * workers:
        raise click.BadParameter(
            f"{budget:,} bytes cannot hold {workers} queries of at least 64MB beside the server itself",
            param_hint="--memory-limit",
        )
    settings = lh.settings
    share = (budget - BASELINE_BYTES) // workers // 2  # half for the engine, half for results and masking
    configured = size_bytes(settings.query_memory_limit)
    changes: dict[str, Any] = {"query_memory_limit": f"{min(configured, share) // 2**20}MB"}
    if rows is not None:
        changes["query_max_rows"] = rows
    limit = _size(size, "--max-result-bytes") if size is not None else settings.query_max_bytes
    changes["query_max_bytes"] = min(limit, share)
    return Lakehouse(dataclasses.replace(settings, **changes))


def _limit_memory(budget: int) -> None:
    """Bound the process's data segment: past it an allocation fails (DuckDB reports an out-of-memory
    error for the query) instead of the machine swapping or the kernel killing the server. Scalar
    functions such as repeat() or lpad() allocate outside DuckDB's own memory_limit."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    wanted = budget if hard == resource.RLIM_INFINITY else min(budget, hard)
    if soft == resource.RLIM_INFINITY or soft > wanted:
        resource.setrlimit(resource.RLIMIT_DATA, (wanted, hard))
