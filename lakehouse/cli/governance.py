"""Governance: policy as code, secure sharing, the access audit."""

from __future__ import annotations

from typing import Any

import click

from lakehouse.cli.options import format_option, open_lakehouse, render
from lakehouse.governance.store import POLICY_VIEWS


@click.group()
def policy() -> None:
    """Roles, grants and data masking as code (MaxCompute's statements)."""


@policy.command("apply")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--project", required=True, help="Namespace that unqualified table names resolve in.")
def policy_apply(file: str, project: str) -> None:
    """Apply the statements of FILE atomically (all or nothing); re-applying changes nothing."""
    from pathlib import Path

    text = Path(file).read_text(encoding="utf-8")
    report = open_lakehouse().apply_policy(text, project, source=file)
    for line, change in report.changes:
        click.echo(f"{file}:{line}: {change}")
    click.echo(f"{report.statements} statement(s), {len(report.changes)} change(s)")


@policy.command("show")
@click.argument("kind", type=click.Choice(list(POLICY_VIEWS)), default="grants")
@format_option
def policy_show(kind: str, fmt: str) -> None:
    """SHOW GRANTS (default) / ROLES / USERS / MEMBERS / POLICIES / BINDINGS / CHANGES, or MASKING
    (the seed's SHOW MASKING POLICIES: every policy with the columns it is bound to)."""
    rows, columns = open_lakehouse().governance.view(kind)
    click.echo(render(rows, columns, fmt))


@click.group()
def share() -> None:
    """Secure sharing: masked, granted data for another team (e.g. Spark)."""


@share.command("export")
@click.option("--user", required=True, help="Export as this user: its grants and masks apply.")
@click.option("--role", help="Only this one of the user's roles.")
@click.option("--table", "table", required=True, help="namespace.table")
@click.option("--to", "target", required=True, help="Local folder or s3://bucket/prefix (must be empty).")
@click.option("--overwrite", is_flag=True, help="Replace a previous share at the target.")
def share_export(user: str, role: str | None, table: str, target: str, overwrite: bool) -> None:
    """Write the table as USER sees it (masked) as Parquet files plus _manifest.json."""
    manifest = open_lakehouse().export_share(table, target, user=user, role=role, overwrite=overwrite)
    masked = ", ".join(f"{c['name']}:{c['masking']}" for c in manifest["columns"] if c["masking"]) or "none"
    click.echo(
        f"exported {manifest['rows']} rows of {manifest['table']} in {len(manifest['files'])} file(s) to {target}"
    )
    click.echo(f"masked columns: {masked}")


@click.group(invoke_without_command=True)
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@format_option
@click.pass_context
def audit(ctx: click.Context, limit: int, fmt: str) -> None:
    """The latest governed queries, table reads and exports (who, role, tables, rows, outcome);
    `lakehouse audit verify` checks the trail's chain.

    Every attempt has a row, written before it runs (status started) and completed after. The whole
    log is the system table lakehouse.audit (owner only)."""
    if ctx.invoked_subcommand is not None:
        return
    rows = open_lakehouse().audit.recent(limit)
    columns = [
        "id",
        "at",
        "user_name",
        "roles",
        "kind",
        "tables",
        "masked_columns",
        "rows",
        "status",
        "reason",
    ]
    click.echo(render(rows, columns, fmt))


@audit.command("verify")
def audit_verify() -> None:
    """Recompute the audit trail's chain: exit 1 naming each row that was changed, inserted or deleted."""
    report = open_lakehouse().audit.verify()
    unchained = report.rows - report.chained
    detail = f" ({unchained} older row(s) from before the chain)" if unchained else ""
    if not report.ok:
        for problem in report.problems:
            click.echo(problem, err=True)
        raise click.ClickException(
            f"audit trail NOT intact: {len(report.problems)} problem(s) in {report.rows} rows"
        )
    click.echo(
        f"audit trail intact: {report.chained} chained row(s){detail}, "
        f"{report.started} attempt(s) never completed"
    )


@share.command("spark")
@click.option("--user", required=True, help="Publish as this user: its grants and masks apply.")
@click.option("--role", help="Only this one of the user's roles.")
@click.option("--table", "table", required=True, help="namespace.table")
@click.option(
    "--to", "root", required=True, help="A folder the Spark cluster reads too; one subfolder per snapshot."
)
@click.option("--spark-table", required=True, help="database.view to create in the Spark cluster's catalog.")
@click.option(
    "--watch",
    "every",
    type=click.FloatRange(min=1),
    default=None,
    metavar="SECONDS",
    help="Keep going: publish each new snapshot, checking every SECONDS (until Ctrl-C or SIGTERM).",
)
def share_spark(
    user: str, role: str | None, table: str, root: str, spark_table: str, every: float | None
) -> None:
    """Publish the table as USER sees it (masked) as a view of the Spark cluster at
    LAKEHOUSE_SPARK_REMOTE, refreshed on new snapshots: the Spark team reads it with
    spark.table("<database.view>")."""
    import contextlib
    import signal

    from lakehouse.governance.share_spark import publish_to_spark, watch

    lakehouse = open_lakehouse()
    remote = lakehouse.settings.spark_remote
    if not remote:
        raise click.ClickException(
            "set LAKEHOUSE_SPARK_REMOTE=sc://host:port (`lakehouse spark start` prints one)"
        )

    def publish() -> dict[str, Any]:
        return publish_to_spark(lakehouse, table, root, spark_table, user=user, remote=remote, role=role)

    def report(result: dict[str, Any]) -> None:
        if result["published"]:
            click.echo(
                f"published {result['rows']} rows of {table} (version {result['version']}) as "
                f"{spark_table}, reading {result['folder']}"
            )
        else:
            click.echo(f"{spark_table} unchanged: already reads version {result['version']} of {table}")

    if every is None:
        report(publish())
        return
    stopping = [False]
    signal.signal(signal.SIGTERM, lambda *_: stopping.__setitem__(0, True))
    with contextlib.suppress(KeyboardInterrupt):
        watch(publish, every, report, stop=lambda: stopping[0])
