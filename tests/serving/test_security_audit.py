"""The audit trail against whoever can write the catalog database: a completed attempt turned back
into 'started' (its outcome columns cleared, as a killed query leaves its row) used to pass
`lakehouse audit verify`; completion is now an entry of its own chain (gov_access_ends)."""

from __future__ import annotations

import dataclasses
import os
import sqlite3
import subprocess
from pathlib import Path

import sqlalchemy as sa

from lakehouse.core.settings import LakehouseSettings
from lakehouse.facade import Lakehouse
from lakehouse.governance import schema as g
from lakehouse.governance.policy_apply import apply_policy
from tests.helpers.env import clean_env
from tests.helpers.serve import BIN

POLICY = "ADD USER RAM$carol;\n"


def _lakehouse(tmp_path: Path) -> Lakehouse:
    lh = Lakehouse(LakehouseSettings.for_home(tmp_path / "lh"))
    apply_policy(lh, POLICY, "iov", "partner.sql")
    lh.sql("select 42 as answer", user="RAM$carol")  # an attempt begun, then completed
    lh.sql("select 43 as answer", user="RAM$carol")
    return lh


def _copy(lh: Lakehouse, tmp_path: Path, name: str) -> tuple[Lakehouse, sa.Engine]:
    target = tmp_path / f"{name}.db"
    with (
        sqlite3.connect(lh.settings.catalog_uri.removeprefix("sqlite:///")) as live,
        sqlite3.connect(target) as copy,
    ):
        live.backup(copy)
    copied = Lakehouse(dataclasses.replace(lh.settings, catalog_uri=f"sqlite:///{target}"))
    return copied, copied.governance.engine


def _reopen(engine: sa.Engine, attempt: int) -> None:
    """What a tamperer does: the outcome wiped, the row back to 'started' like a killed query's."""
    t = g.access_t
    with engine.begin() as conn:
        conn.execute(
            sa.update(t)
            .where(t.c.id == attempt)
            .values(
                status="started",
                finished_at=None,
                rows=None,
                reason=None,
                tables="",
                masked_columns="",
                end_hash=None,
            )
        )


def _first_completed(engine: sa.Engine) -> int:
    t = g.access_t
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.min(t.c.id)).where(t.c.status == "ok")).scalar())


def test_a_completed_attempt_turned_back_into_started_is_reported(tmp_path: Path) -> None:
    lh = _lakehouse(tmp_path)
    assert lh.audit.verify().ok
    reopened, engine = _copy(lh, tmp_path, "reopened")
    attempt = _first_completed(engine)
    _reopen(engine, attempt)
    problems = reopened.audit.verify().problems
    assert any(f"row {attempt}: completed" in p and "turned back into started" in p for p in problems), (
        problems
    )
    env = clean_env(
        dict(os.environ), LAKEHOUSE_HOME=lh.settings.home, LAKEHOUSE_CATALOG_URI=reopened.settings.catalog_uri
    )
    done = subprocess.run(
        [str(BIN / "lakehouse"), "audit", "verify"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1 and "NOT intact" in done.stderr, done.stdout + done.stderr


def test_deleting_the_completion_too_breaks_the_chain_of_completions(tmp_path: Path) -> None:
    lh = _lakehouse(tmp_path)
    hidden, engine = _copy(lh, tmp_path, "hidden")
    attempt = _first_completed(engine)
    _reopen(engine, attempt)
    with engine.begin() as conn:
        conn.execute(sa.delete(g.access_ends_t).where(g.access_ends_t.c.attempt_id == attempt))
    problems = hidden.audit.verify().problems
    assert any("a completion was deleted or inserted" in p for p in problems), problems


def test_an_outcome_edited_together_with_its_hash_is_reported(tmp_path: Path) -> None:
    """Rewriting the outcome and its end_hash (without the key) does not match the completion entry."""
    lh = _lakehouse(tmp_path)
    edited, engine = _copy(lh, tmp_path, "edited")
    attempt = _first_completed(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.update(g.access_t).where(g.access_t.c.id == attempt).values(rows=0, end_hash="0" * 64)
        )
    problems = edited.audit.verify().problems
    assert any(f"row {attempt}" in p for p in problems), problems


def test_the_mark_of_where_completions_start_cannot_be_removed(tmp_path: Path) -> None:
    """Deleting every completion and the catalog's mark would make completed rows look older than
    the chain; the mark kept beside the key still says where it starts."""
    lh = _lakehouse(tmp_path)
    wiped, engine = _copy(lh, tmp_path, "wiped")
    with engine.begin() as conn:
        conn.execute(sa.delete(g.access_ends_t))
        conn.execute(sa.delete(g.settings_t).where(g.settings_t.c.key == "lakehouse.audit.ends_from"))
    problems = wiped.audit.verify().problems
    assert any("its completion entry is missing" in p for p in problems), problems
