"""Governed access: reads made on behalf of a user, under its grants and masks, always audited.

Raw values of masked columns never enter the engine connection that runs a user's query: the tables
the query reads (only the columns it mentions) are masked in Arrow first, and only the masked data is
registered. So joins, filters, aggregates, functions and subqueries all see masked values.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId
from lakehouse.governance.store import OWNER, Mask, PermissionDenied, Principal

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.engines.base import Engine
    from lakehouse.facade import Lakehouse


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

    id: int
    tables: list[TableId] = field(default_factory=list)
    masks: dict[TableId, dict[str, Mask]] = field(default_factory=dict)
    rows: int | None = None


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

    def engine(self, seconds_left: float) -> Engine:
        """The engine for one governed query: its memory limit, and the time the query has left."""
        from lakehouse.engines import open_engine

        settings = self.lakehouse.settings
        return open_engine(
            memory_limit=settings.query_memory_limit,
            timeout_seconds=seconds_left,
            timeout_limit=settings.query_timeout_seconds,
        )

    def _deadline(self) -> float:
        return time.monotonic() + self.lakehouse.settings.query_timeout_seconds

    def _left(self, deadline: float, doing: str) -> float:
        """Seconds left before the deadline, or QueryLimitExceeded naming what was being done."""
        from lakehouse.engines.base import QueryLimitExceeded

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
            return lh.governance.resolve(storable(user), storable(role))
        except PermissionDenied as exc:
            who = OWNER if user is None else lh.governance.stored_user(storable(user)) or audit_name(user)
            roles = [] if role is None else [lh.governance.stored_role(storable(role)) or audit_name(role)]
            attempt = lh.audit.begin(who, roles, kind, statement)
            lh.audit.end(attempt, [], [], None, "denied", storable(str(exc)))
            raise

    @contextmanager
    def attempt(self, principal: Principal, kind: str, statement: str) -> Iterator[Attempt]:
        """Audit one governed attempt: the row is written now and completed when the block ends."""
        lh = self.lakehouse
        record = Attempt(lh.audit.begin(principal.audit_user, principal.roles, kind, storable(statement)))
        try:
            yield record
        except Exception as exc:
            status = "denied" if isinstance(exc, PermissionDenied) else "error"
            reason = storable(str(exc))
            lh.audit.end(record.id, record.tables, masked_column_list(record.masks), None, status, reason)
            raise
        lh.audit.end(record.id, record.tables, masked_column_list(record.masks), record.rows, "ok", None)

    def sql(self, query: str, principal: Principal, project: str | None) -> pa.Table:
        """A governed query: only tables the principal may SELECT, masked columns masked before the
        engine sees them. The engine's connection holds nothing but the (masked) tables the query
        names, so no function, file, catalog view or time travel can reach a raw value."""
        from lakehouse.engines.base import QueryError
        from lakehouse.engines.sql import ensure_governed_query, query_identifiers, referenced_tables

        lh = self.lakehouse
        deadline = self._deadline()  # parsing, masking and running all count
        with self.attempt(principal, "query", query) as record:
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
            record.masks = lh.governance.authorize(principal, record.tables)
            needed = query_identifiers(query)
            sources: dict[TableId | str, Any] = {
                ident: self._source(ident, record.masks[ident], needed, deadline) for ident in record.tables
            }
            engine = self.engine(self._left(deadline, "masking the tables it reads"))
            result = engine.query(query, sources, default_namespace=project)
            record.rows = result.num_rows
        return result

    def read_table(
        self,
        table: TableId | str,
        principal: Principal,
        columns: list[str] | None = None,
        partition: dict[str, str] | None = None,
    ) -> pa.Table:
        """The table as the principal may see it (granted, masked), audited."""
        import pyarrow as pa

        lh = self.lakehouse
        with self.attempt(principal, "read_table", str(table)) as record:
            ident = TableId.parse(table) if isinstance(table, str) else table
            ident = lh.canonical(ident.namespace, ident.name)
            record.tables.append(ident)
            record.masks = lh.governance.authorize(principal, [ident])
            deadline = self._deadline()
            schema, batches = self.masked_batches(ident, record.masks[ident], columns, partition, deadline)
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
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """The table's current snapshot as record batches with the masked columns masked (within
        the query time limit when a `deadline` is given).

        A partition filter on a masked column is refused: it would select rows by the raw values
        (an oracle for them) before any masking."""
        import pyarrow as pa

        from lakehouse.governance.masking import lookup, mask_table, result_type

        for key in partition or {}:
            if lookup(masks, key) is not None:
                raise PermissionDenied(f"{ident}: cannot filter by masked column {key!r}")
        self.lakehouse.check_partition(ident, partition)
        dataset = self.lakehouse.tables.dataset(ident, partition)
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

    def _source(
        self, ident: TableId, masks: Mapping[str, Mask], needed: set[str] | None, deadline: float
    ) -> Any:
        import pyarrow as pa

        dataset = self.lakehouse.tables.dataset(ident)
        if not masks:
            return dataset  # nothing hidden from this principal: a lazy scan with pushdown is fine
        names = [n for n in dataset.schema.names if needed is None or n.lower() in needed]
        # count(*) alone needs no column: read the cheapest unmasked one (or the first) for the rows
        plain = [n for n in dataset.schema.names if n not in masks]
        fallback = plain[:1] or dataset.schema.names[:1]
        schema, batches = self.masked_batches(ident, masks, names or fallback, deadline=deadline)
        return pa.Table.from_batches(list(batches), schema=schema)  # only masked values, materialized
