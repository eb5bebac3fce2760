"""What a serving process (the SQL endpoint, the dashboard) remembers between queries, and why it is
safe: Arrow tables keyed by the snapshots read and the principal, and grant decisions kept only until
the next entry in the policy change trail."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.governance.store import Mask, Principal
    from lakehouse.storage.tables.base import Pinned


SERVING_CACHE_BYTES = 256 * 1024 * 1024
"""Masked tables, small tables and results a serving process keeps (least recently used dropped first)."""
RESULT_CACHE_BYTES = 8 * 1024 * 1024
"""Serving remembers a query's result (per snapshot and principal) when it is at most this big."""
SMALL_TABLE_BYTES = 32 * 1024 * 1024
"""Serving keeps a whole table in memory (per snapshot and principal) when its files are this small."""


class SnapshotCache:
    """Arrow tables a serving process keeps: masked copies of tables, small tables whole, results;
    every key holds the snapshots read and the principal (and its masks).

    A new snapshot is a new key (the next query sees the new materialization), and two principals
    never share an entry, even with the same masks. Thread-safe: the SQL endpoint queries from a pool."""

    def __init__(self, max_bytes: int = SERVING_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[Any, ...], pa.Table] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...]) -> pa.Table | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: tuple[Any, ...], table: pa.Table) -> None:
        size = table.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = table
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= dropped.nbytes


class PolicyMemory:
    """Principals and grant decisions, remembered (when `enabled`: serving only) until the policy
    version changes; `version()` reads it from the catalog."""

    def __init__(self, version: Callable[[], Any]) -> None:
        self.enabled = False
        self._version = version
        self._decisions: dict[Any, Any] = {}
        self._decisions_version: Any = None
        self._lock = threading.Lock()
        self._scope = threading.local()

    @contextmanager
    def one_version(self) -> Iterator[None]:
        """Within the block (one query), this thread looks the policy version up once."""
        if not self.enabled or getattr(self._scope, "version", None) is not None:
            yield
            return
        self._scope.version = (self._version(),)
        try:
            yield
        finally:
            self._scope.version = None

    def remembered(self, key: Any, decide: Any) -> Any:
        """`decide()`, remembered until the policy version changes; refusals are not remembered
        (they are raised, and audited by the caller)."""
        if not self.enabled:
            return decide()
        scoped = getattr(self._scope, "version", None)
        version = scoped[0] if scoped is not None else self._version()
        with self._lock:
            if version != self._decisions_version:
                self._decisions = {}
                self._decisions_version = version
            if key in self._decisions:
                return self._decisions[key]
        decided = decide()
        with self._lock:
            if self._decisions_version == version and len(self._decisions) < 10_000:
                self._decisions[key] = decided
        return decided


def result_key(
    principal: Principal,
    query: str,
    project: str | None,
    pins: Mapping[TableId, Pinned],
    masks: Mapping[TableId, Mapping[str, Mask]],
) -> tuple[Any, ...]:
    """The key of one remembered result: the principal (user, roles, held roles), the query text, its
    project, the snapshot of every table it reads and the masks applied."""
    return (
        "result",
        principal.user,
        tuple(sorted(principal.roles)),
        tuple(sorted(principal.held)),
        query,
        project,
        tuple(sorted((str(i), p.version) for i, p in pins.items())),
        tuple(
            sorted(
                (str(i), c, m.policy, m.function, m.args) for i, ms in masks.items() for c, m in ms.items()
            )
        ),
    )
