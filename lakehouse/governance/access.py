"""Governed access: reads made on behalf of a user, under its grants and masks, always audited.

Raw values of masked columns never enter the engine connection that runs a user's query: the tables
the query reads (only the columns it mentions) are masked in Arrow first, and only the masked data is
registered. So joins, filters, aggregates, functions and subqueries all see masked values.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId
from lakehouse.governance.memory import (
    RESULT_CACHE_BYTES,
    SMALL_TABLE_BYTES,
    PolicyMemory,
    SnapshotCache,
    result_key,
)
from lakehouse.governance.store import OWNER, Mask, PermissionDenied, Principal

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.engines.base import Engine
    from lakehouse.facade import Lakehouse
    from lakehouse.storage.tables.base import Pinned


MAX_QUERY_CHARS = 100_000
"""Longest governed query text (parsing a huge one is work no limit of the engine's would bound)."""
MAX_NAME = 255
"""Longest user or role name (the catalog's column width); longer is refused, not stored."""


def storable(text: Any) -> Any:
    """Text as the catalog can store it: lone surrogates (undecodable bytes from a shell) escaped."""
    if isinstance(text, str):
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


@dataclass
class Attempt:
    """What one audited attempt touched, filled in as it goes."""

    id: int | None
    """Its audit row, once written (None: nothing read yet; see GovernedAccess.attempt)."""
    tables: list[TableId] = field(default_factory=list)
    masks: Mapping[TableId, Mapping[str, Mask]] = field(default_factory=dict)
    rows: int | None = None
    begin: Callable[[], int] | None = None

    def start(self) -> None:
        """Write the audit row (status started) now, before any data is read."""
        if self.id is None and self.begin is not None:
            self.id = self.begin()


def masked_column_list(masks: Mapping[Any, Mapping[str, Mask]] | None) -> list[str]:
    """table.column:FUNCTION for each masked column, as the audit records them."""
    return [
        f"{table}.{column}:{mask.function}"
        for table, columns in (masks or {}).items()
        for column, mask in sorted(columns.items())
    ]


class GovernedAccess:
    """The governed half of the facade: principals, governed SQL and reads, masked batches.

    Every attempt is audited: a refused principal as one complete row; anything else as a row written
    before the work starts (so a killed query leaves its row, status started) and completed after."""

    def __init__(self, lakehouse: Lakehouse) -> None:
        self.lakehouse = lakehouse
        self.cache = SnapshotCache()
        self.memory = PolicyMemory(self._policy_version)
        self.remember_results = False
        """Serving with the result cache (see cached_result)."""

    @property
    def keep_small_tables(self) -> bool:
        """Long-lived readers (the SQL endpoint, the dashboard) set this: masked tables and small
        tables are then kept in memory per snapshot and principal instead of read by every query,
        and principals and their grants are remembered until the policy changes."""
        return self.memory.enabled

    @keep_small_tables.setter
    def keep_small_tables(self, value: bool) -> None:
        self.memory.enabled = value

    def one_policy_version(self) -> AbstractContextManager[None]:
        """Within the block (one query), this thread looks the policy version up once."""
        return self.memory.one_version()

    def _policy_version(self) -> Any:
        """What changes whenever a principal, grant, membership, mask or project setting does: the
        last entry of the policy change trail (`lakehouse policy apply` records every change it makes,
        in the same transaction)."""
        import sqlalchemy as sa

        from lakehouse.governance import schema as g

        with self.lakehouse.governance.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.max(g.changes_t.c.id))).scalar()

    def engine(self, seconds_left: float) -> Engine:
        """The engine for one governed query: its memory limit, and the time the query has left."""
        from lakehouse.engines import open_engine
        from lakehouse.engines.base import ResultLimits

        settings = self.lakehouse.settings
        return open_engine(
            memory_limit=settings.query_memory_limit,
            timeout_seconds=seconds_left,
            timeout_limit=settings.query_timeout_seconds,
            pooled=True,
            limits=ResultLimits(settings.query_max_rows, settings.query_max_bytes),
        )

    def _deadline(self) -> float:
        return time.monotonic() + self.lakehouse.settings.query_timeout_seconds

    def _left(self, deadline: float, doing: str) -> float:
        """Seconds left before the deadline, or QueryLimitExceeded naming what was being done."""
        from lakehouse.engines.base import QueryLimitExceeded, current_scope

        scope = current_scope()
        if scope is not None:
            scope.check()  # KILL QUERY: stop between the Python steps too
        left = deadline - time.monotonic()
        if left <= 0:
            limit = self.lakehouse.settings.query_timeout_seconds
            raise QueryLimitExceeded(
                f"query: cancelled after {limit:g} s while {doing}, the limit LAKEHOUSE_QUERY_TIMEOUT_SECONDS sets"
            )
        return left

    def principal(self, user: Any, role: Any, kind: str, statement: Any) -> Principal:
        """Who asks (the owner without user and role); a refused principal is audited, then raised.

        Anything that is not a name (not text, too long, not encodable) is refused like an unknown
        name, and audited: no attempt goes unrecorded."""
        from lakehouse.governance.store import audit_name

        lh = self.lakehouse
        statement = storable(statement)
        try:
            for what, value in (("user", user), ("role", role)):
                if value is not None and (not isinstance(value, str) or len(value) > MAX_NAME):
                    raise PermissionDenied(f"{what} {audit_name(value)} is not a {what} name")
            return self.memory.remembered(
                ("principal", user, role), lambda: lh.governance.resolve(storable(user), storable(role))
            )
        except PermissionDenied as exc:
            who = OWNER if user is None else lh.governance.stored_user(storable(user)) or audit_name(user)
            roles = [] if role is None else [lh.governance.stored_role(storable(role)) or audit_name(role)]
            lh.audit.complete(who, roles, kind, statement, [], [], None, "denied", storable(str(exc)))
            raise

    @contextmanager
    def attempt(
        self, principal: Principal, kind: str, statement: str, lazy: bool = False
    ) -> Iterator[Attempt]:
        """Audit one governed attempt: the row is written now (`lazy`: when `start()` is called,
        before any data is read) and completed when the block ends. An attempt that never started
        (refused while checking it, or answered from a remembered result) is one complete row."""
        lh = self.lakehouse
        text = storable(statement)

        def begin() -> int:
            return lh.audit.begin(principal.audit_user, principal.roles, kind, text)

        record = Attempt(None if lazy else begin(), begin=begin)

        def finish(rows: int | None, status: str, reason: str | None) -> None:
            masked = masked_column_list(record.masks)
            if record.id is None:
                lh.audit.complete(
                    principal.audit_user,
                    principal.roles,
                    kind,
                    text,
                    record.tables,
                    masked,
                    rows,
                    status,
                    reason,
                )
            else:
                lh.audit.end(record.id, record.tables, masked, rows, status, reason)

        try:
            yield record
        except Exception as exc:
            finish(None, "denied" if isinstance(exc, PermissionDenied) else "error", storable(str(exc)))
            raise
        finish(record.rows, "ok", None)

    def sql(
        self, query: str, principal: Principal, project: str | None, as_of: str | None = None
    ) -> pa.Table:
        """A governed query: only tables the principal may SELECT, masked columns masked before the
        engine sees them. The engine's connection holds nothing but the (masked) tables the query
        names, so no function, file, catalog view or time travel can reach a raw value."""
        from lakehouse.engines.base import QueryError
        from lakehouse.engines.sql import ensure_governed_query, query_identifiers, referenced_tables

        lh = self.lakehouse
        deadline = self._deadline()  # parsing, masking and running all count
        statement = query if as_of is None else f"{query} /* as of {as_of} */"
        with self.attempt(principal, "query", statement, lazy=True) as record:
            if len(query) > MAX_QUERY_CHARS:
                raise QueryError(
                    f"the query is {len(query):,} characters; a governed query may have {MAX_QUERY_CHARS:,}"
                )
            ensure_governed_query(query)
            for namespace, name in referenced_tables(query):
                if namespace is None and project is None:
                    raise QueryError(
                        f"table {name!r} must be qualified as namespace.table (or pass a project)"
                    )
                record.tables.append(lh.canonical(namespace or project or "", name))
            record.masks = self.memory.remembered(
                ("authorize", principal, tuple(record.tables)),
                lambda: lh.governance.authorize(principal, record.tables),
            )
            pins = lh.pin_all(record.tables, as_of)  # masks apply to an old snapshot as to the current

            def run() -> pa.Table:
                record.start()  # the row exists before any data is read: a kill leaves it started
                needed = query_identifiers(query)
                sources: dict[TableId | str, Any] = {
                    ident: self.source(principal, ident, record.masks[ident], needed, deadline, pins[ident])
                    for ident in record.tables
                }
                engine = self.engine(self._left(deadline, "masking the tables it reads"))
                return engine.query(query, sources, default_namespace=project)

            result = self.cached_result(principal, query, project, pins, record.masks, run)
            record.rows = result.num_rows
        return result

    def sql_over(
        self,
        query: str,
        principal: Principal,
        sources: Mapping[str, Any],
        label: Callable[[str], str] = str,
        statement: str | None = None,
    ) -> pa.Table:
        """A governed query over sources the caller built for this principal alone (the SQL
        endpoint's information_schema, SHOW and session listings, as the principal may list them):
        the checks, limits and audit of `sql`, and no table of the catalog (a name that is not one
        of the sources is an error). `label(source)` is how the audit names a source it read;
        `statement`, the text it records (the client's, when `query` was derived from it)."""
        from lakehouse.engines.base import QueryError
        from lakehouse.engines.sql import ensure_governed_query, referenced_tables

        deadline = self._deadline()
        with self.attempt(principal, "query", statement or query, lazy=True) as record:
            if len(query) > MAX_QUERY_CHARS:
                raise QueryError(
                    f"the query is {len(query):,} characters; a governed query may have {MAX_QUERY_CHARS:,}"
                )
            ensure_governed_query(query)
            known = {name.lower(): name for name in sources}
            for namespace, name in referenced_tables(query):
                if namespace is not None or name.lower() not in known:
                    raise QueryError(f"table {name!r} does not exist")
                record.tables.append(TableId.parse(label(known[name.lower()])))
            record.start()
            engine = self.engine(self._left(deadline, "listing the catalog"))
            bound: dict[TableId | str, Any] = {name: source for name, source in sources.items()}
            result = engine.query(query, bound)
            record.rows = result.num_rows
        return result

    def read_table(
        self,
        table: TableId | str,
        principal: Principal,
        columns: list[str] | None = None,
        partition: dict[str, str] | None = None,
        snapshot: str | None = None,
    ) -> pa.Table:
        """The table as the principal may see it (granted, masked), audited; of the snapshot
        `snapshot` names when given (the masks of today apply to it)."""
        import pyarrow as pa

        lh = self.lakehouse
        statement = str(table) if snapshot is None else f"{table} as of snapshot {snapshot}"
        with self.attempt(principal, "read_table", statement) as record:
            ident = TableId.parse(table) if isinstance(table, str) else table
            ident = lh.canonical(ident.namespace, ident.name)
            record.tables.append(ident)
            record.masks = lh.governance.authorize(principal, [ident])
            deadline = self._deadline()
            dataset = None if snapshot is None else lh.tables.pinned(ident, str(snapshot)).dataset
            schema, batches = self.masked_batches(
                ident, record.masks[ident], columns, partition, deadline, dataset=dataset
            )
            result = pa.Table.from_batches(list(batches), schema=schema)
            record.rows = result.num_rows
        return result

    def _salt(self, masks: Mapping[str, Mask]) -> bytes | None:
        from lakehouse.governance.masking import masking_salt

        if any(m.function == "MASKED_HASH" for m in masks.values()):
            return masking_salt(self.lakehouse.settings.home)
        return None

    def masked_batches(
        self,
        ident: TableId,
        masks: Mapping[str, Mask],
        columns: list[str] | None = None,
        partition: dict[str, str] | None = None,
        deadline: float | None = None,
        dataset: Any = None,
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """The table's current snapshot as record batches with the masked columns masked (within
        the query time limit when a `deadline` is given); of `dataset` when given (a pinned snapshot).

        A partition filter on a masked column is refused: it would select rows by the raw values
        (an oracle for them) before any masking."""
        import pyarrow as pa

        from lakehouse.governance.masking import lookup, mask_table, result_type

        for key in partition or {}:
            if lookup(masks, key) is not None:
                raise PermissionDenied(f"{ident}: cannot filter by masked column {key!r}")
        self.lakehouse.check_partition(ident, partition)
        if dataset is None:
            dataset = self.lakehouse.tables.dataset(ident, partition)
        else:
            from lakehouse.facade import partition_filtered

            dataset = partition_filtered(dataset, partition)
        names = columns if columns is not None else dataset.schema.names
        spec = {c: (m.function, m.args) for c, m in masks.items()}
        salt = self._salt(masks)

        def masked_field(n: str) -> pa.Field:
            found = lookup(spec, n)
            plain = dataset.schema.field(n)
            return plain if found is None else plain.with_type(result_type(found[0], plain.type))

        schema = pa.schema([masked_field(n) for n in names])

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in dataset.to_batches(columns=names):
                if deadline is not None:
                    self._left(deadline, f"masking {ident}")
                masked = mask_table(pa.Table.from_batches([batch]), spec, salt)
                yield from masked.cast(schema).to_batches()

        return schema, batches()

    def cached_result(
        self,
        principal: Principal,
        query: str,
        project: str | None,
        pins: Mapping[TableId, Pinned],
        masks: Mapping[TableId, Mapping[str, Mask]],
        run: Any,
    ) -> pa.Table:
        """`run()`'s result, remembered when serving: keyed by the principal, the query text, its
        project, the snapshot of every table it reads and the masks applied, so a new materialization
        or policy is a new key and no result serves another principal. Queries that read the clock or
        a random source are run every time, as are results over RESULT_CACHE_BYTES."""
        from lakehouse.engines.sql import is_volatile

        pinned_all = bool(pins) and all(p.version is not None for p in pins.values())
        if not (self.remember_results and pinned_all) or is_volatile(query):
            return run()
        key = result_key(principal, query, project, pins, masks)
        found = self.cache.get(key)
        if found is not None:
            return found
        result: pa.Table = run()
        if result.nbytes <= RESULT_CACHE_BYTES:
            self.cache.put(key, result)
        return result

    def source(
        self,
        principal: Principal,
        ident: TableId,
        masks: Mapping[str, Mask],
        needed: set[str] | None,
        deadline: float | None,
        pinned: Pinned | None = None,
    ) -> Any:
        """What the engine may see of one table for this principal, from one pinned snapshot: the
        masked columns the query needs, materialized; unmasked, the lazy scan (or, for a small table
        when `keep_small_tables`, the whole table in memory). Kept per snapshot and principal."""
        import pyarrow as pa

        pinned = pinned or self.lakehouse.tables.pinned(ident)
        dataset = pinned.dataset
        who = (principal.user, tuple(sorted(principal.roles)), tuple(sorted(principal.held)))
        if not masks:
            small = pinned.bytes is not None and pinned.bytes <= SMALL_TABLE_BYTES
            if not (self.keep_small_tables and small and pinned.version is not None):
                return dataset  # nothing hidden from this principal: a lazy scan with pushdown
            key: tuple[Any, ...] = (*who, ident, pinned.version, None, ())
            found = self.cache.get(key)
            if found is None:
                found = dataset.to_table()
                self.cache.put(key, found)
            return found
        names = [n for n in dataset.schema.names if needed is None or n.lower() in needed]
        # count(*) alone needs no column: read the cheapest unmasked one (or the first) for the rows
        plain = [n for n in dataset.schema.names if n not in masks]
        names = names or plain[:1] or dataset.schema.names[:1]
        spec = tuple(sorted((c, m.policy, m.function, m.args) for c, m in masks.items()))
        key = (*who, ident, pinned.version, tuple(names), spec)
        keep = self.keep_small_tables and pinned.version is not None  # serving only
        cached = self.cache.get(key) if keep else None
        if cached is not None:
            return cached
        schema, batches = self.masked_batches(ident, masks, names, deadline=deadline, dataset=dataset)
        table = pa.Table.from_batches(list(batches), schema=schema)  # only masked values, materialized
        if keep:
            self.cache.put(key, table)
        return table
