"""Discovery as MaxLake configures it: `lakehouse connection ...` (named credentials) and
`lakehouse datascan ...` (scan tasks: a location, a namespace, a cycle, a connection).

Nothing secret is stored or printed: a connection keeps the *names* of the environment variables
that hold its keys. `datascan run` drives Dagster, so it lives in sensors/scan_command.py (like
`lakehouse scan`) and is imported only when invoked.
"""

from __future__ import annotations

from typing import Any

import click

from lakehouse.cli.options import LazyGroup, format_option, open_lakehouse, render
from lakehouse.storage.discovery import ConnectionRecord, DuplicateError, TaskRecord


@click.group()
def connection() -> None:
    """Named connections to object stores (endpoint, region, role to assume; no secret stored)."""


@connection.command("add")
@click.argument("name")
@click.option(
    "--endpoint",
    required=True,
    metavar="URL",
    help="The S3 API endpoint: https://..., or http:// on a loopback address (http://127.0.0.1:9000).",
)
@click.option("--region", metavar="R", help="Region name (default: AWS_REGION or us-east-1).")
@click.option(
    "--role-arn",
    metavar="ARN",
    help="A role to assume through STS at the endpoint (refreshed before expiry).",
)
@click.option("--sts-endpoint", metavar="URL", help="Where STS is asked for the role (default: --endpoint).")
@click.option(
    "--access-key-env",
    metavar="VAR",
    help="The NAME of the variable holding the access key id: LAKEHOUSE_CONN_<NAME>_<...>, e.g. "
    "LAKEHOUSE_CONN_TEAM_B_ACCESS_KEY_ID for connection team_b (team-b too).",
)
@click.option(
    "--secret-key-env",
    metavar="VAR",
    help="The NAME of the variable holding the secret key: LAKEHOUSE_CONN_<NAME>_<...>, e.g. "
    "LAKEHOUSE_CONN_TEAM_B_SECRET_ACCESS_KEY.",
)
@click.option(
    "--allow-http",
    is_flag=True,
    help="Allow plain http to a host that is not loopback (keys and data cross that network in clear; "
    "only for a network you trust). Stored with the connection.",
)
def connection_add(
    name: str,
    endpoint: str,
    region: str | None,
    role_arn: str | None,
    sts_endpoint: str | None,
    access_key_env: str | None,
    secret_key_env: str | None,
    allow_http: bool,
) -> None:
    """Add connection NAME. Its keys come from the variables named, which must be named
    LAKEHOUSE_CONN_<NAME>_<...> (NAME upper-cased, - as _), so that no connection can name the
    platform's own secrets. Without them it signs with the lakehouse's own AWS_* keys, and then only
    at the lakehouse's own AWS_ENDPOINT_URL or AWS's S3/STS endpoints. Endpoints are https unless
    loopback or --allow-http. Every rule is checked again whenever the connection is used."""
    from lakehouse.landing.connections import validate

    record = ConnectionRecord(
        name,
        endpoint.rstrip("/"),
        region,
        role_arn,
        access_key_env,
        secret_key_env,
        sts_endpoint.rstrip("/") if sts_endpoint else None,
        allow_http,
    )
    try:
        validate(record)
        open_lakehouse().catalog.add_connection(record)
    except (ValueError, DuplicateError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"connection {name} added: {_describe(record)}")


def _fields(row: dict[str, Any]) -> str:
    """One record as `name  value` lines."""
    width = max(len(k) for k in row)
    return "\n".join(f"{k.ljust(width)}  {'' if v is None else v}" for k, v in row.items())


def _describe(record: ConnectionRecord) -> str:
    keys = (
        f"keys from ${record.access_key_env} / ${record.secret_key_env}"
        if record.access_key_env
        else "the lakehouse's own keys (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
    )
    role = f", assumes {record.role_arn}" if record.role_arn else ""
    http = ", plain http allowed (--allow-http)" if record.allow_http else ""
    return f"{record.endpoint}{f' ({record.region})' if record.region else ''}, {keys}{role}{http}"


def _connection_rows(lh: Any) -> list[dict[str, Any]]:
    tasks = lh.catalog.tasks()
    return [
        {
            **c.__dict__,
            "tasks": ", ".join(t.name for t in tasks if t.connection == c.name),
        }
        for c in lh.catalog.connections()
    ]


CONNECTION_COLUMNS = [
    "name",
    "endpoint",
    "region",
    "role_arn",
    "sts_endpoint",
    "access_key_env",
    "secret_key_env",
    "allow_http",
    "tasks",
]


@connection.command("list")
@format_option
def connection_list(fmt: str) -> None:
    """Every connection (no secret: only the names of the variables holding the keys)."""
    click.echo(render(_connection_rows(open_lakehouse()), CONNECTION_COLUMNS, fmt))


@connection.command("show")
@click.argument("name")
@click.option("--check", is_flag=True, help="Authenticate now (assume the role) and say as whom.")
@format_option
def connection_show(name: str, check: bool, fmt: str) -> None:
    """One connection, the tasks using it, and with --check whether it authenticates."""
    lh = open_lakehouse()
    rows = [r for r in _connection_rows(lh) if r["name"] == name]
    if not rows:
        raise click.ClickException(f"no connection {name!r} (see `lakehouse connection list`)")
    row = rows[0]
    if check:
        from lakehouse.landing.connections import ConnectionFailed, whoami

        record = lh.catalog.connection(name)
        assert record is not None
        try:
            row["authenticated_as"] = whoami(record)
        except ConnectionFailed as exc:
            raise click.ClickException(str(exc)) from None
    if fmt == "table":
        click.echo(_fields(row))
    else:
        click.echo(render([row], list(row), fmt))


@connection.command("remove")
@click.argument("name")
def connection_remove(name: str) -> None:
    """Remove connection NAME (refused while a task uses it)."""
    lh = open_lakehouse()
    users = [t.name for t in lh.catalog.tasks() if t.connection == name]
    if users:
        raise click.ClickException(
            f"connection {name} is used by DataScan task(s) {', '.join(users)}; remove them first"
        )
    if not lh.catalog.remove_connection(name):
        raise click.ClickException(f"no connection {name!r} (see `lakehouse connection list`)")
    click.echo(f"connection {name} removed")


class _DatascanCommands(LazyGroup):
    lazy = {"run": "sensors.scan_command:datascan_run"}  # drives Dagster: imported only when invoked


@click.group(cls=_DatascanCommands)
def datascan() -> None:
    """DataScan tasks: each discovers the table folders under its location into its namespace."""


@datascan.command("add")
@click.argument("task")
@click.option("--location", required=True, metavar="URI", help="s3://bucket/prefix or a local folder.")
@click.option("--namespace", required=True, metavar="NS", help="The namespace its tables go into.")
@click.option("--connection", "connection_name", metavar="NAME", help="The connection to read with.")
@click.option(
    "--interval",
    type=click.IntRange(min=1),
    default=300,
    show_default=True,
    metavar="SECONDS",
    help="The task's cycle (its sensor's minimum interval).",
)
@click.option("--table-prefix", default="", metavar="PREFIX", help="Table name = PREFIX + folder, e.g. ods_.")
def datascan_add(
    task: str, location: str, namespace: str, connection_name: str | None, interval: int, table_prefix: str
) -> None:
    """Add DataScan task TASK (its sensor datascan_TASK runs once the code location is loaded)."""
    from lakehouse.landing.tasks import TaskError, new_task

    lh = open_lakehouse()
    try:
        record = new_task(lh, TaskRecord(task, location, namespace, connection_name, interval, table_prefix))
        lh.catalog.add_task(record)
    except (TaskError, DuplicateError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"DataScan task {task} added: {record.location} -> namespace {namespace}"
        f" (tables {table_prefix}<folder>), every {interval}s"
        + (f", via connection {connection_name}" if connection_name else "")
        + f"; its own sensor datascan_{task} once the code location is (re)loaded, the default sensor datascan until then"
    )


def _task_rows(lh: Any) -> list[dict[str, Any]]:
    from lakehouse.landing.tasks import all_tasks

    claims = lh.catalog.table_claims().values()
    return [
        {
            "name": t.name,
            "location": t.location,
            "namespace": t.namespace or "(folders)",
            "connection": t.connection,
            "interval_seconds": t.interval_seconds,
            "table_prefix": t.table_prefix,
            "sensor": t.sensor_name,
            "tables": sum(1 for c in claims if c.task == t.name),
        }
        for t in all_tasks(lh)
    ]


TASK_COLUMNS = [
    "name",
    "location",
    "namespace",
    "connection",
    "interval_seconds",
    "table_prefix",
    "sensor",
    "tables",
]


@datascan.command("list")
@format_option
def datascan_list(fmt: str) -> None:
    """Every DataScan task, the default one (LAKEHOUSE_LANDING_URI) first."""
    click.echo(render(_task_rows(open_lakehouse()), TASK_COLUMNS, fmt))


@datascan.command("show")
@click.argument("task")
@format_option
def datascan_show(task: str, fmt: str) -> None:
    """One task: its settings, the tables it holds (layout, folder), conflicts and rejected files."""
    from lakehouse.landing.tasks import TaskError, all_tasks, find_task

    lh = open_lakehouse()
    try:
        found = find_task(lh, task)
    except TaskError as exc:
        raise click.ClickException(str(exc)) from None
    row = next(r for r in _task_rows(lh) if r["name"] == task)
    held = sorted(
        (c for c in lh.catalog.table_claims().values() if c.task == task), key=lambda c: (c.namespace, c.name)
    )
    tables = [{"table": f"{c.namespace}.{c.name}", "layout": c.layout, "folder": c.folder} for c in held]
    conflicts = lh.catalog.task_conflicts(task)
    others = [t.base + "/" for t in all_tasks(lh) if t.base and t.name != task]

    def mine(path: str) -> bool:
        if found.base:
            return path.startswith(found.base + "/")
        return not any(path.startswith(base) for base in others)

    rejected = [
        {"path": r["path"], "reason": r["reason"]}
        for r in lh.catalog.file_rows("rejected")
        if mine(r["path"])
    ]
    if fmt != "table":
        click.echo(
            render([{**row, "held": tables, "conflicts": conflicts, "rejected": rejected}], [], "json")
        )
        return
    click.echo(_fields(row))
    for title, rows, columns in (
        ("tables", tables, ["table", "layout", "folder"]),
        ("conflicts", conflicts, ["table", "reason"]),
        ("rejected files", rejected, ["path", "reason"]),
    ):
        if rows:
            click.echo(f"\n{title}:\n{render(rows, columns, 'table')}")


@datascan.command("remove")
@click.argument("task")
def datascan_remove(task: str) -> None:
    """Remove DataScan task TASK; its tables stay as they are, no longer synced."""
    from lakehouse.landing.tasks import DEFAULT_TASK

    if task == DEFAULT_TASK:
        raise click.ClickException(
            "the default task is the settings (LAKEHOUSE_LANDING_URI); it cannot be removed"
        )
    if not open_lakehouse().catalog.remove_task(task):
        raise click.ClickException(f"no DataScan task {task!r} (see `lakehouse datascan list`)")
    click.echo(
        f"DataScan task {task} removed: its tables stay as they are, no longer synced, held by its name "
        "(`lakehouse datascan add` it again to sync them)"
    )
