"""What each partition was built from: build records, key changes of dimensions, failed builds.

The part of the catalog database that lakehouse/models/stale.py and reconcile.py read and write;
`CatalogDB` (catalog.py) is a `BuildBook` over its engine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from lakehouse.storage.catalog_schema import builds_t, failures_t, key_changes_t


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class BuildRecord:
    """A built partition: the version of its content (token) and the inputs it was built from."""

    table_name: str
    partition_key: str
    token: str
    inputs: str
    status: str = "ok"
    rows: int | None = None


class BuildBook:
    """Typed access to lakehouse_builds, lakehouse_key_changes and lakehouse_build_failures."""

    engine: sa.Engine

    # --- builds: what each partition was built from (see lakehouse/models/reconcile.py) -------
    def builds(self, namespace: str, table: str | None = None) -> dict[tuple[str, str], BuildRecord]:
        """(table, partition key) -> its build record, for a namespace (or one table of it)."""
        query = sa.select(builds_t).where(builds_t.c.namespace == namespace)
        if table is not None:
            query = query.where(builds_t.c.table_name == table)
        with self.engine.connect() as conn:
            return {
                (r.table_name, r.partition_key): BuildRecord(
                    r.table_name, r.partition_key, r.token, r.inputs, r.status, r.rows
                )
                for r in conn.execute(query)
            }

    def landed_inputs(self) -> dict[tuple[str, str, str], str]:
        """(namespace, table, partition key) -> the files digest each ODS partition was built from."""
        query = sa.select(
            builds_t.c.namespace, builds_t.c.table_name, builds_t.c.partition_key, builds_t.c.inputs
        ).where(builds_t.c.inputs.like("files:%"))
        with self.engine.connect() as conn:
            return {(r[0], r[1], r[2]): r[3] for r in conn.execute(query)}

    def builds_summary(self, namespace: str) -> list[Any]:
        """[records, latest write, failures, latest failure] of a namespace: one aggregate query each."""
        with self.engine.connect() as conn:
            builds = conn.execute(
                sa.select(sa.func.count(), sa.func.max(builds_t.c.built_at)).where(
                    builds_t.c.namespace == namespace
                )
            ).one()
            failures = conn.execute(
                sa.select(sa.func.count(), sa.func.max(failures_t.c.failed_at)).where(
                    failures_t.c.namespace == namespace
                )
            ).one()
        return [builds[0], str(builds[1]), failures[0], str(failures[1])]

    def build_namespaces(self) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(sa.select(builds_t.c.namespace).distinct()).scalars())

    def record_builds(
        self, namespace: str, records: Iterable[BuildRecord], conn: sa.Connection | None = None
    ) -> None:
        """Upsert build records, in one transaction (the caller's, when given)."""
        rows = [{"namespace": namespace, **r.__dict__, "built_at": utc_now()} for r in records]
        if not rows:
            return
        if conn is None:
            with self.engine.begin() as own:
                self._upsert_builds(own, rows)
        else:
            self._upsert_builds(conn, rows)

    def _upsert_builds(self, conn: sa.Connection, rows: list[dict[str, Any]]) -> None:
        statement = self._insert(builds_t)
        statement = statement.on_conflict_do_update(
            index_elements=[builds_t.c.namespace, builds_t.c.table_name, builds_t.c.partition_key],
            set_={c: statement.excluded[c] for c in ("token", "inputs", "status", "rows", "built_at")},
        )
        conn.execute(statement, rows)

    def bump_inputs(self, namespace: str, table: str, updates: dict[str, tuple[str, str]]) -> int:
        """partition key -> (inputs before, inputs now): record newer inputs that leave the content
        as it is (compare-and-set on the inputs); returns how many were updated."""
        done = 0
        with self.engine.begin() as conn:
            for key, (before, now) in sorted(updates.items()):
                done += conn.execute(
                    sa.update(builds_t)
                    .where(
                        builds_t.c.namespace == namespace,
                        builds_t.c.table_name == table,
                        builds_t.c.partition_key == key,
                        builds_t.c.inputs == before,
                    )
                    .values(inputs=now, built_at=utc_now())
                ).rowcount
        return done

    def _insert(self, table: sa.Table) -> Any:
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        return insert(table)

    # --- key changes of unpartitioned tables -----------------------------------------------
    def begin_key_change(self, namespace: str, table: str, from_token: str) -> bool:
        """Before rewriting `table` built as `from_token`: note the rewrite. Returns True when an
        earlier rewrite from the same build never finished (a crash): its changes are unknown."""
        where = (
            (key_changes_t.c.namespace == namespace)
            & (key_changes_t.c.table_name == table)
            & (key_changes_t.c.from_token == from_token)
            & key_changes_t.c.to_token.is_(None)
        )
        with self.engine.begin() as conn:
            unfinished = conn.execute(sa.select(key_changes_t.c.id).where(where)).first() is not None
            if not unfinished:
                conn.execute(
                    sa.insert(key_changes_t).values(
                        namespace=namespace,
                        table_name=table,
                        from_token=from_token,
                        to_token=None,
                        keys=None,
                        recorded_at=utc_now(),
                    )
                )
        return unfinished

    def finish_key_change(
        self,
        namespace: str,
        table: str,
        from_token: str,
        to_token: str,
        keys: dict[str, list[Any]] | None,
        conn: sa.Connection,
    ) -> None:
        """The rewrite is committed: record from -> to with the changed keys (None = all)."""
        import json

        conn.execute(
            sa.delete(key_changes_t).where(
                key_changes_t.c.namespace == namespace,
                key_changes_t.c.table_name == table,
                key_changes_t.c.from_token == from_token,
                key_changes_t.c.to_token.is_(None),
            )
        )
        if from_token != to_token:
            conn.execute(
                sa.insert(key_changes_t).values(
                    namespace=namespace,
                    table_name=table,
                    from_token=from_token,
                    to_token=to_token,
                    keys=None if keys is None else json.dumps(keys, default=str, sort_keys=True),
                    recorded_at=utc_now(),
                )
            )

    def key_transitions(
        self, namespace: str, table: str
    ) -> list[tuple[str, str, dict[str, list[Any]] | None]]:
        """Every finished rewrite of `table`: (from token, to token, changed keys or None = all)."""
        import json

        query = (
            sa.select(key_changes_t)
            .where(
                key_changes_t.c.namespace == namespace,
                key_changes_t.c.table_name == table,
                key_changes_t.c.to_token.is_not(None),
            )
            .order_by(key_changes_t.c.id)
        )
        with self.engine.connect() as conn:
            return [
                (r.from_token, r.to_token, None if r.keys is None else json.loads(r.keys))
                for r in conn.execute(query)
            ]

    # --- failed builds ------------------------------------------------------------------------
    def build_failures(self, namespace: str) -> dict[tuple[str, str], tuple[str, int, str]]:
        """(table, partition key) -> (wanted inputs digest, attempts, error)."""
        with self.engine.connect() as conn:
            return {
                (r.table_name, r.partition_key): (r.wanted, r.attempts, r.error)
                for r in conn.execute(sa.select(failures_t).where(failures_t.c.namespace == namespace))
            }

    def record_failure(self, namespace: str, table: str, key: str, wanted: str, error: str) -> int:
        """Count a failed build of these inputs; returns the attempts so far."""
        where = (
            (failures_t.c.namespace == namespace)
            & (failures_t.c.table_name == table)
            & (failures_t.c.partition_key == key)
        )
        with self.engine.begin() as conn:
            row = conn.execute(sa.select(failures_t).where(where)).first()
            attempts = row.attempts + 1 if row is not None and row.wanted == wanted else 1
            conn.execute(sa.delete(failures_t).where(where))
            conn.execute(
                sa.insert(failures_t).values(
                    namespace=namespace,
                    table_name=table,
                    partition_key=key,
                    wanted=wanted,
                    attempts=attempts,
                    error=error[:4000],
                    failed_at=utc_now(),
                )
            )
        return attempts

    def clear_failures(self, namespace: str, table: str, keys: Iterable[str], conn: sa.Connection) -> None:
        keys = list(keys)
        if keys:
            conn.execute(
                sa.delete(failures_t).where(
                    failures_t.c.namespace == namespace,
                    failures_t.c.table_name == table,
                    failures_t.c.partition_key.in_(keys),
                )
            )
