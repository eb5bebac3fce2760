"""Failpoints: kill this process with SIGKILL at a named point, to test crash recovery for real.

`LAKEHOUSE_FAILPOINT=<point>[:<table>][@<n>]` kills the process the n-th time (default 1st) it
reaches `<point>` (for `<table>` only, when given). Unset, a failpoint costs one dictionary lookup.
Points (see `POINTS`) sit where a crash is most harmful: mid-write, right after a table commit and
inside a bookkeeping transaction. The crash suite (tests/integration/test_crash.py) sets it in a
child process; nothing else should.
"""

from __future__ import annotations

import os
import signal

VARIABLE = "LAKEHOUSE_FAILPOINT"
POINTS = {
    "ods.write": "while an ODS partition's rows stream into its write (before the commit)",
    "ods.committed": "an ODS partition committed, its manifest and build record not yet",
    "model.write": "while a model partition's rows stream into its write (or a range is computed)",
    "model.committed": "a model partition (or a range of days) committed, its build record not yet",
    "catalog.commit": "inside the transaction that records builds, before it commits",
    "reconcile.pass": "between two tables of a reconcile pass",
}
_hits: dict[str, int] = {}


def failpoint(point: str, table: str | None = None) -> None:
    spec = os.environ.get(VARIABLE)
    if not spec:
        return
    target, _, nth = spec.partition("@")
    name, _, only = target.partition(":")
    if name != point or (only and only != table):
        return
    _hits[target] = _hits.get(target, 0) + 1
    if _hits[target] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
