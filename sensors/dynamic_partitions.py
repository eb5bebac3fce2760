"""Adding dynamic partitions when other processes may be adding the same ones.

Dagster's instance looks for the keys that exist and inserts the rest; two processes doing it at
once (two `lakehouse scan`s, the daemon's sensor and a reconcile run) can both see a key as missing,
and the second insert then fails on the storage's unique constraint. That key exists either way,
which is all the caller wants, so the loser looks again and adds what is still missing.
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg
import sqlalchemy as sa

ATTEMPTS = 5


def add_dynamic_partitions(instance: dg.DagsterInstance, name: str, keys: Iterable[str]) -> list[str]:
    """Make every key a partition of the dynamic partitions definition `name`; returns the keys this
    call added (a key another process added meanwhile is not an error)."""
    wanted = list(dict.fromkeys(keys))
    for attempt in range(ATTEMPTS):
        existing = set(instance.get_dynamic_partitions(name))
        missing = [k for k in wanted if k not in existing]
        if not missing:
            return []
        try:
            instance.add_dynamic_partitions(name, missing)
        except sa.exc.IntegrityError:
            if attempt == ATTEMPTS - 1:
                raise
            continue  # another process inserted some of them between our look and our insert
        return missing
    return []
