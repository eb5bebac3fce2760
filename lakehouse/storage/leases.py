"""One writer per namespace, and knowing which writers are alive.

A process that reconciles (or builds by hand) a namespace registers as a worker and heartbeats
every few seconds from a thread; it writes only while it holds the namespace's lease. A worker is
dead when its heartbeat is older than `ttl`, or at once when it ran on this host and its process is
gone (SIGKILL, OOM): its lease is then taken over by the next worker, and the Dagster run it
belonged to is reported failed by the DataScan sensor. All of it lives in the catalog database, so
it needs no Dagster instance setting (run monitoring) and holds across `lakehouse scan`, the daemon
and hand-started runs alike.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from lakehouse.storage.catalog import utc_now
from lakehouse.storage.catalog_schema import leases_t, workers_t

if TYPE_CHECKING:
    from lakehouse.storage.catalog import CatalogDB

HEARTBEAT_SECONDS = 2.0
TTL_SECONDS = 30.0
HOST = socket.gethostname()


class LeaseTimeout(RuntimeError):
    """Another live worker held the namespace for longer than we were willing to wait."""


@dataclass(frozen=True)
class WorkerRow:
    worker_id: str
    namespace: str
    run_id: str | None
    host: str
    pid: int
    heartbeat_at: dt.datetime


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped by its parent) is dead too
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def alive(worker: WorkerRow, ttl: float = TTL_SECONDS) -> bool:
    if worker.host == HOST and not _pid_alive(worker.pid):
        return False
    return (utc_now() - worker.heartbeat_at).total_seconds() < ttl


def workers(catalog: CatalogDB, namespace: str | None = None) -> list[WorkerRow]:
    query = sa.select(workers_t)
    if namespace is not None:
        query = query.where(workers_t.c.namespace == namespace)
    with catalog.engine.connect() as conn:
        return [
            WorkerRow(r.worker_id, r.namespace, r.run_id, r.host, r.pid, r.heartbeat_at)
            for r in conn.execute(query)
        ]


def live_workers(catalog: CatalogDB, namespace: str | None = None) -> list[WorkerRow]:
    """Workers alive now."""
    return [w for w in workers(catalog, namespace) if alive(w)]


def forget_dead_workers(catalog: CatalogDB, dead: list[WorkerRow]) -> None:
    """Remove dead workers' rows (once the runs they belonged to are reported failed)."""
    if dead:
        with catalog.engine.begin() as conn:
            conn.execute(sa.delete(workers_t).where(workers_t.c.worker_id.in_([w.worker_id for w in dead])))


class Worker:
    """Register, heartbeat, and hold a namespace's lease while working on it:

    with Worker(catalog, "game_db", run_id=...) as worker:
        worker.acquire(timeout=600)
        ...  # the only writer of the namespace
    """

    def __init__(self, catalog: CatalogDB, namespace: str, run_id: str | None = None) -> None:
        self.catalog = catalog
        self.namespace = namespace
        self.run_id = run_id
        self.worker_id = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.held = False

    def __enter__(self) -> Worker:
        now = utc_now()
        with self.catalog.engine.begin() as conn:
            conn.execute(
                sa.insert(workers_t).values(
                    worker_id=self.worker_id,
                    namespace=self.namespace,
                    run_id=self.run_id,
                    host=HOST,
                    pid=os.getpid(),
                    started_at=now,
                    heartbeat_at=now,
                )
            )
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.namespace}", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                with self.catalog.engine.begin() as conn:
                    conn.execute(
                        sa.update(workers_t)
                        .where(workers_t.c.worker_id == self.worker_id)
                        .values(heartbeat_at=utc_now())
                    )
            except sa.exc.SQLAlchemyError:
                pass  # a busy database: the next beat tries again (ttl is many beats)

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self.catalog.engine.begin() as conn:
            conn.execute(
                sa.delete(leases_t).where(
                    leases_t.c.namespace == self.namespace, leases_t.c.worker_id == self.worker_id
                )
            )
            conn.execute(sa.delete(workers_t).where(workers_t.c.worker_id == self.worker_id))
        self.held = False

    def try_acquire(self) -> str | None:
        """Take the lease if it is free or its holder is dead. None when held now, else the holder."""
        with self.catalog.engine.connect() as conn:
            row = conn.execute(sa.select(leases_t).where(leases_t.c.namespace == self.namespace)).first()
        if row is None:
            try:
                with self.catalog.engine.begin() as conn:
                    conn.execute(
                        sa.insert(leases_t).values(
                            namespace=self.namespace, worker_id=self.worker_id, acquired_at=utc_now()
                        )
                    )
            except sa.exc.IntegrityError:
                return "another worker"  # taken between our look and our insert
            self.held = True
            return None
        if row.worker_id == self.worker_id:
            self.held = True
            return None
        holder = next((w for w in workers(self.catalog) if w.worker_id == row.worker_id), None)
        if holder is not None and alive(holder):
            return f"pid {holder.pid} on {holder.host}" + (f" (run {holder.run_id})" if holder.run_id else "")
        with self.catalog.engine.begin() as conn:  # the holder is dead: take over, unless someone was faster
            taken = conn.execute(
                sa.update(leases_t)
                .where(leases_t.c.namespace == self.namespace, leases_t.c.worker_id == row.worker_id)
                .values(worker_id=self.worker_id, acquired_at=utc_now())
            ).rowcount
        self.held = bool(taken)
        return None if taken else "another worker"

    def acquire(self, timeout: float = 3600.0, poll: float = 0.5, on_wait: Any = None) -> None:
        """Wait until this worker holds the lease (`on_wait(holder)` is called once while waiting)."""
        deadline = time.monotonic() + timeout
        told = False
        while (holder := self.try_acquire()) is not None:
            if not told and on_wait is not None:
                on_wait(holder)
                told = True
            if time.monotonic() > deadline:
                raise LeaseTimeout(
                    f"namespace {self.namespace} is being written by {holder} for more than {timeout:.0f}s"
                )
            time.sleep(poll)
