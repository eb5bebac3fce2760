"""Governed access: reads made on behalf of a user, under its grants and masks, always audited.

Raw values of masked columns never enter the engine connection that runs a user's query: the tables
the query reads (only the columns it mentions) are masked in Arrow first, and only the masked data is
registered. So joins, filters, aggregates, functions and subqueries all see masked values.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId
from lakehouse.governance.store import Mask, PermissionDenied, Principal

if TYPE_CHECKING:
    import pyarrow as pa

    from lakehouse.facade import Lakehouse


class GovernedAccess:
    """The governed half of the facade: principals, governed SQL and reads, masked batches."""

    def __init__(self, lakehouse: Lakehouse) -> None:
        self.lakehouse = lakehouse

    def principal(self, user: str | None, role: str | None, kind: str, statement: str) -> Principal:
        """Who asks (the owner without user and role); a refused login is audited, then raised."""
        gov = self.lakehouse.governance
        try:
            return gov.resolve(user, role)
        except PermissionDenied as exc:
            asked = Principal(user, frozenset({role}) if role else frozenset())
            gov.record_access(asked, kind, [], None, None, "denied", str(exc), statement)
            raise

    def sql(self, query: str, principal: Principal, project: str | None) -> pa.Table:
        """A governed query: only tables the principal may SELECT, masked columns masked before the
        engine sees them. The engine's connection holds nothing but the (masked) tables the query
        names, so no function, file, catalog view or time travel can reach a raw value."""
        from lakehouse.engines.base import QueryError
        from lakehouse.engines.sql import ensure_governed_query, query_identifiers, referenced_tables

        lh = self.lakehouse
        idents: list[TableId] = []
        masks: dict[TableId, dict[str, Mask]] = {}
        try:
            ensure_governed_query(query)
            for namespace, name in referenced_tables(query):
                if namespace is None and project is None:
                    raise QueryError(
                        f"table {name!r} must be qualified as namespace.table (or pass a project)"
                    )
                idents.append(lh.canonical(namespace or project or "", name))
            masks = lh.governance.authorize(principal, idents)
            needed = query_identifiers(query)
            sources: dict[TableId | str, Any] = {
                ident: self._source(ident, masks[ident], needed) for ident in idents
            }
            result = lh.engine.query(query, sources, default_namespace=project)
        except Exception as exc:
            status = "denied" if isinstance(exc, PermissionDenied) else "error"
            lh.governance.record_access(principal, "query", idents, masks, None, status, str(exc), query)
            raise
        lh.governance.record_access(principal, "query", idents, masks, result.num_rows, "ok", None, query)
        return result

    def read_table(
        self,
        ident: TableId,
        principal: Principal,
        columns: list[str] | None = None,
        partition: dict[str, str] | None = None,
    ) -> pa.Table:
        """The table as the principal may see it (granted, masked), audited."""
        import pyarrow as pa

        lh = self.lakehouse
        ident = lh.canonical(ident.namespace, ident.name)
        masks: dict[TableId, dict[str, Mask]] = {}
        try:
            masks = lh.governance.authorize(principal, [ident])
            schema, batches = self.masked_batches(ident, masks[ident], columns, partition)
            result = pa.Table.from_batches(list(batches), schema=schema)
        except Exception as exc:
            status = "denied" if isinstance(exc, PermissionDenied) else "error"
            lh.governance.record_access(principal, "read_table", [ident], masks, None, status, str(exc))
            raise
        lh.governance.record_access(principal, "read_table", [ident], masks, result.num_rows, "ok")
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
    ) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
        """The table's current snapshot as record batches with the masked columns masked.

        A partition filter on a masked column is refused: it would select rows by the raw values
        (an oracle for them) before any masking."""
        import pyarrow as pa

        from lakehouse.governance.masking import lookup, mask_table, result_type

        for key in partition or {}:
            if lookup(masks, key) is not None:
                raise PermissionDenied(f"{ident}: cannot filter by masked column {key!r}")
        dataset = self.lakehouse.tables.dataset(ident, partition)
        names = columns if columns is not None else dataset.schema.names
        spec = {c: (m.function, m.args) for c, m in masks.items()}
        salt = self._salt(masks)

        def field(n: str) -> pa.Field:
            found = lookup(spec, n)
            plain = dataset.schema.field(n)
            return plain if found is None else plain.with_type(result_type(found[0], plain.type))

        schema = pa.schema([field(n) for n in names])

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in dataset.to_batches(columns=names):
                masked = mask_table(pa.Table.from_batches([batch]), spec, salt)
                yield from masked.cast(schema).to_batches()

        return schema, batches()

    def _source(self, ident: TableId, masks: Mapping[str, Mask], needed: set[str] | None) -> Any:
        import pyarrow as pa

        dataset = self.lakehouse.tables.dataset(ident)
        if not masks:
            return dataset  # nothing hidden from this principal: a lazy scan with pushdown is fine
        names = [n for n in dataset.schema.names if needed is None or n.lower() in needed]
        schema, batches = self.masked_batches(ident, masks, names or dataset.schema.names[:1])
        return pa.Table.from_batches(list(batches), schema=schema)  # only masked values, materialized
