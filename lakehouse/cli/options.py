"""What every command shares: opening the lakehouse, the --format option, rendering, the error contract."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import unicodedata
from collections.abc import Callable
from typing import Any, TypeVar

import click

from lakehouse.core.settings import ConfigError
from lakehouse.facade import Lakehouse

F = TypeVar("F", bound=Callable[..., Any])


def open_lakehouse() -> Lakehouse:
    """The lakehouse the environment describes; a bad setting is a one-line error naming it. A home
    or catalog file that group or others may read or write is warned about on stderr (once per
    path and process), naming the `chmod` that fixes it (lakehouse/core/files.py)."""
    try:
        lh = Lakehouse.from_env()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    warn_exposed(lh)
    return lh


_warned: set[str] = set()


def warn_exposed(lh: Lakehouse) -> None:
    """Warn on stderr about the home and a local SQLite catalog file when group or others may read
    or write them. Only a warning (PostgreSQL refuses such a data directory): a home an operator
    shares on purpose keeps working."""
    from lakehouse.core.files import exposure

    paths = [lh.settings.home]
    url = lh.settings.catalog_uri
    if url.startswith("sqlite:///"):
        paths.append(url.removeprefix("sqlite:///").split("?", 1)[0])
    for path in paths:
        if path in _warned or path in ("", ":memory:"):
            continue
        warning = exposure(path)
        if warning:
            _warned.add(path)
            click.echo(warning, err=True)


def format_option(command: F) -> F:
    """--format table|json|csv (default table)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json", "csv"]),
        default="table",
        show_default=True,
        help="Output as a table, JSON or CSV. CSV is safe to open in a spreadsheet: a text cell "
        "(or column name) starting with =, +, -, @, a tab or a carriage return gets a leading ' so it "
        "is never run as a formula (OWASP's advice); numbers, negative ones too, stay numbers.",
    )(command)


def _invisible(char: str) -> bool:
    """Control, format (bidi marks, zero-width) and line/paragraph separator characters."""
    return unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp")


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape_invisible(text: str, named: bool = True) -> str:
    """`text` with control, format and separator characters as escapes (`\\n`, `\\u202e`), so a value
    can neither break a line of output nor reorder what a terminal shows."""
    if text.isprintable():
        return text
    return "".join(
        (_NAMED.get(ch) if named else None) or f"\\u{ord(ch):04x}" if _invisible(ch) else ch for ch in text
    )


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
    return escape_invisible(value) if isinstance(value, str) else value


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What makes a spreadsheet (Excel, LibreOffice, Google Sheets) read a CSV cell as a formula."""


def _csv_cell(value: Any) -> Any:
    """A CSV cell: like a table cell, and a text cell a spreadsheet would run as a formula
    (`=HYPERLINK(...)`, `@SUM(...)`, `-2+3`, ...) prefixed with ' (OWASP, CSV injection). Numbers
    (int, float, decimal; a negative one too) are not text: they stay numbers. The test is made on
    the value itself, before control characters are escaped."""
    import decimal

    plain = _plain(value)
    if plain is None or isinstance(plain, int | float | decimal.Decimal):
        return plain
    text = str(plain)
    shown = escape_invisible(text)
    return f"'{shown}" if text.startswith(FORMULA_STARTS) else shown


def render(rows: list[dict[str, Any]], columns: list[str], fmt: str) -> str:
    """Rows as JSON (every field; JSON escapes control characters itself), CSV (the given columns,
    control characters escaped, formulas neutralized: `_csv_cell`) or a table (the given columns,
    control characters escaped)."""
    if fmt == "json":
        text = json.dumps([{k: _plain(v) for k, v in r.items()} for r in rows], ensure_ascii=False)
        return escape_invisible(text, named=False)  # one line, whatever the values (JSON escapes)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([_csv_cell(c) for c in columns])
        writer.writerows([_csv_cell(r.get(c)) for c in columns] for r in rows)
        return out.getvalue().rstrip("\n")
    from tabulate import tabulate

    return tabulate(
        [[_shown(r.get(c)) for c in columns] for r in rows],
        headers=[_shown(c) for c in columns],
        tablefmt="psql",
        disable_numparse=True,
    )


def _where(exc: Exception, text: str) -> str:
    """Name the catalog database (its password hidden) when it is what failed: unreachable, refused
    the login, or went away."""
    import sqlalchemy as sa

    if not isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return text
    from lakehouse.core.settings import LakehouseSettings, redacted_url

    try:
        url = redacted_url(LakehouseSettings.from_env().catalog_uri)
    except ValueError:
        return text
    return f"catalog database {url}: {text}"


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
            text = _where(exc, text)
            raise click.ClickException(
                f"{type(exc).__name__}: {text}" if text else type(exc).__name__
            ) from None


class LazyGroup(LakehouseGroup):
    """A group some of whose commands live in the Dagster wing: `lazy` maps a name to
    "module:attribute", imported only when that command is invoked (the domain never imports Dagster)."""

    lazy: dict[str, str] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy:
            import importlib

            module, attribute = self.lazy[name].split(":")
            command: click.Command = getattr(importlib.import_module(module), attribute)
            return command
        return super().get_command(ctx, name)
