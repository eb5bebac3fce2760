"""What every command shares: opening the lakehouse, the --format option, rendering, the error contract."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

import click

from lakehouse.core.settings import ConfigError
from lakehouse.facade import Lakehouse

F = TypeVar("F", bound=Callable[..., Any])


def open_lakehouse() -> Lakehouse:
    """The lakehouse the environment describes; a bad setting is a one-line error naming it."""
    try:
        return Lakehouse.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def format_option(command: F) -> F:
    """--format table|json|csv (default table)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json", "csv"]),
        default="table",
        show_default=True,
        help="Output as a table, JSON or CSV.",
    )(command)


CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""Characters that would break a line or reorder text on a terminal: shown escaped in tables and CSV."""


def _escape(char: re.Match[str]) -> str:
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char.group(), f"\\u{ord(char.group()):04x}")


def _plain(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value


def _shown(value: Any) -> Any:
    """A value as a table or CSV cell: one line, no control characters (a newline in a table name
    must not forge a line of `lakehouse audit`)."""
    value = _plain(value)
    return CONTROL.sub(_escape, value) if isinstance(value, str) else value


def render(rows: list[dict[str, Any]], columns: list[str], fmt: str) -> str:
    """Rows as JSON (every field; JSON escapes control characters itself), CSV or a table (the given
    columns, control characters escaped)."""
    if fmt == "json":
        return json.dumps([{k: _plain(v) for k, v in r.items()} for r in rows], ensure_ascii=False)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows({c: _shown(r.get(c)) for c in columns} for r in rows)
        return out.getvalue().rstrip("\n")
    from tabulate import tabulate

    return tabulate(
        [[_shown(r.get(c)) for c in columns] for r in rows],
        headers=columns,
        tablefmt="psql",
        disable_numparse=True,
    )


class LakehouseGroup(click.Group):
    """Errors end as one line on stderr and a non-zero exit (LAKEHOUSE_DEBUG=1 shows the traceback)."""

    def invoke(self, ctx: click.Context) -> Any:
        import os

        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:  # the CLI's boundary: every failure becomes the one-line contract
            if os.environ.get("LAKEHOUSE_DEBUG"):
                raise
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise click.ClickException(
                f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            ) from None
