"""Serving: passwords, the MySQL-protocol SQL endpoint, the web dashboard."""

from __future__ import annotations

import sys

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
def serve(
    host: str,
    port: int,
    tls_cert: str | None,
    tls_key: str | None,
    allow_insecure_remote: bool,
    no_result_cache: bool,
) -> None:
    """The SQL endpoint: the MySQL protocol, as StarRocks' frontend on 9030 (mysql CLI, PyMySQL,
    SQLAlchemy mysql+pymysql://, BI tools). Log in as `owner` or a policy's user (passwords: `lakehouse
    user password`); every query is governed like `lakehouse sql --user` and audited."""
    import asyncio
    import contextlib
    import logging
    import signal
    import ssl

    from lakehouse.serving.mysql import serve as run_server
    from lakehouse.serving.network import is_loopback

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
    lh = open_lakehouse().for_serving(result_cache=not no_result_cache)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("mysql_mimic").setLevel(logging.CRITICAL)  # it logs failed queries with tracebacks

    def ready(sockname: tuple[str, int]) -> None:
        click.echo(
            f"lakehouse SQL endpoint (MySQL protocol) listening on {sockname[0]}:{sockname[1]}", err=True
        )
        click.echo(f"mysql -h {sockname[0]} -P {sockname[1]} -u owner -p", err=True)

    async def main() -> None:
        task = asyncio.create_task(run_server(lh, host=host, port=port, ssl=context, ready=ready))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):  # SIGTERM / SIGINT: a clean stop
            await task

    asyncio.run(main())
    click.echo("lakehouse SQL endpoint stopped", err=True)
