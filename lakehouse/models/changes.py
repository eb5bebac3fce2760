"""What a rewrite of a partition changed: the days an hour holds, the keys whose rows differ.

Readers with another partitioning are marked stale from these (see staleness.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lakehouse.engines.sql import quote_ident
from lakehouse.models.spec import SqlModel

if TYPE_CHECKING:
    from lakehouse.engines.base import Session


def day_counts(session: Session, model: SqlModel, written: Any) -> dict[str, int]:
    assert model.day_index
    column = quote_ident(model.day_index)
    counts = session.query(
        f"select cast({column} as varchar) as day, count(*) as n from t where {column} is not null group by 1",
        {"t": written},
        statement_name=f"{model.path}: day index",
    )
    return dict(zip(counts["day"].to_pylist(), counts["n"].to_pylist(), strict=True))


def changed_keys(
    session: Session, model: SqlModel, before: Any, after: Any, columns: set[str]
) -> dict[str, list[Any]]:
    """Values of each column whose rows differ between two versions of an unpartitioned table."""
    names = ", ".join(quote_ident(c.name) for c in model.columns)
    changed: dict[str, list[Any]] = {}
    for column in sorted(columns):
        result = session.query(
            f"select distinct {quote_ident(column)} as k from ("
            f"(select {names} from old except all select {names} from new) union all "
            f"(select {names} from new except all select {names} from old))",
            {"old": before, "new": after},
            statement_name=f"{model.path}: changed {column} values",
        )
        changed[column] = result["k"].to_pylist()
    return changed
