"""Per-query limits on every governed path, not only the endpoint: `lakehouse sql --user`, the
facade's governed `sql` (the dashboard's and the endpoint's call) stop a result past
LAKEHOUSE_QUERY_MAX_ROWS / LAKEHOUSE_QUERY_MAX_BYTES with an error that names the limit; before,
a governed cross join was read into memory whole."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from pathlib import Path

import pytest

from lakehouse.core.settings import ConfigError, LakehouseSettings
from lakehouse.engines.base import ResultTooLarge
from lakehouse.facade import Lakehouse
from lakehouse.governance.policy_apply import apply_policy
from tests.helpers.env import clean_env
from tests.helpers.serve import BIN


@pytest.fixture
def lh(tmp_path: Path) -> Lakehouse:
    found = Lakehouse(LakehouseSettings.for_home(tmp_path / "lh"))
    apply_policy(found, "ADD USER RAM$dave;\n", "iov", "dave.sql")
    return found


def test_the_governed_path_stops_at_the_row_and_byte_limits(lh: Lakehouse) -> None:
    rows = Lakehouse(dataclasses.replace(lh.settings, query_max_rows=1000))
    with pytest.raises(ResultTooLarge, match="more than 1,000 rows, the limit LAKEHOUSE_QUERY_MAX_ROWS"):
        rows.sql("select * from range(100000) a, range(100000) b", user="RAM$dave")
    assert rows.sql("select count(*) as n from range(100000) a, range(1000) b", user="RAM$dave").num_rows == 1
    size = Lakehouse(dataclasses.replace(lh.settings, query_max_bytes=1_000_000))
    with pytest.raises(
        ResultTooLarge, match="larger than 1,000,000 bytes, the limit LAKEHOUSE_QUERY_MAX_BYTES"
    ):
        size.sql("select repeat('x', 1000) as s from range(10000)", user="RAM$dave")
    audit = lh.sql("select status, reason from lakehouse.audit where kind = 'query' order by id").to_pylist()
    assert [r["status"] for r in audit[-3:]] == ["error", "ok", "error"], audit


def test_lakehouse_sql_as_a_user_honours_the_limit(lh: Lakehouse) -> None:
    env = clean_env(dict(os.environ), LAKEHOUSE_HOME=lh.settings.home, LAKEHOUSE_QUERY_MAX_ROWS="50")
    done = subprocess.run(
        [str(BIN / "lakehouse"), "sql", "--user", "RAM$dave", "select * from range(100)"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1 and "LAKEHOUSE_QUERY_MAX_ROWS" in done.stderr, done.stderr


@pytest.mark.parametrize(
    ("variable", "value"), [("LAKEHOUSE_QUERY_MAX_ROWS", "0"), ("LAKEHOUSE_QUERY_MAX_BYTES", "lots")]
)
def test_a_bad_limit_is_a_clear_error(tmp_path: Path, variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        LakehouseSettings.from_env({"LAKEHOUSE_HOME": str(tmp_path), variable: value})
