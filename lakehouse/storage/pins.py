"""Pinned snapshots: table versions that must stay readable (a trained model read them).

The part of the catalog database that table maintenance (lakehouse/maintenance/), the Iceberg
store's bounded expiry and training (lakehouse/ml/train.py) read and write; `CatalogDB`
(catalog.py) is a `PinBook` over its engine. Plain SQLAlchemy: SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from lakehouse.storage.builds import utc_now
from lakehouse.storage.catalog_schema import snapshot_pins_t


@dataclass(frozen=True)
class SnapshotPin:
    namespace: str
    table_name: str
    snapshot_id: str
    pinned_by: str


class PinBook:
    """Typed access to lakehouse_snapshot_pins."""

    engine: sa.Engine

    def pin_snapshot(self, namespace: str, table: str, snapshot_id: str, pinned_by: str) -> bool:
        """Pin one snapshot of a table for `pinned_by`; True when the pin is new (pinning twice is one pin)."""
        where = (
            (snapshot_pins_t.c.namespace == namespace)
            & (snapshot_pins_t.c.table_name == table)
            & (snapshot_pins_t.c.snapshot_id == str(snapshot_id))
            & (snapshot_pins_t.c.pinned_by == pinned_by)
        )
        with self.engine.connect() as conn:
            if conn.execute(sa.select(snapshot_pins_t.c.snapshot_id).where(where)).first() is not None:
                return False
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    sa.insert(snapshot_pins_t).values(
                        namespace=namespace,
                        table_name=table,
                        snapshot_id=str(snapshot_id),
                        pinned_by=pinned_by,
                        pinned_at=utc_now(),
                    )
                )
        except sa.exc.IntegrityError:
            return False  # pinned by another process between our look and our insert
        return True

    def pinned_snapshots(self, namespace: str, table: str) -> set[str]:
        """The snapshot ids of the table that something pinned."""
        query = sa.select(snapshot_pins_t.c.snapshot_id).where(
            snapshot_pins_t.c.namespace == namespace, snapshot_pins_t.c.table_name == table
        )
        with self.engine.connect() as conn:
            return {row[0] for row in conn.execute(query)}

    def snapshot_pins(self) -> list[SnapshotPin]:
        query = sa.select(snapshot_pins_t).order_by(*snapshot_pins_t.primary_key)
        with self.engine.connect() as conn:
            return [
                SnapshotPin(r.namespace, r.table_name, r.snapshot_id, r.pinned_by)
                for r in conn.execute(query)
            ]

    def unpin_snapshot(
        self, namespace: str, table: str, snapshot_id: str, pinned_by: str | None = None
    ) -> int:
        """Remove the pins of one snapshot (all of them, or only `pinned_by`'s); returns how many."""
        query = sa.delete(snapshot_pins_t).where(
            snapshot_pins_t.c.namespace == namespace,
            snapshot_pins_t.c.table_name == table,
            snapshot_pins_t.c.snapshot_id == str(snapshot_id),
        )
        if pinned_by is not None:
            query = query.where(snapshot_pins_t.c.pinned_by == pinned_by)
        with self.engine.begin() as conn:
            return int(conn.execute(query).rowcount or 0)
