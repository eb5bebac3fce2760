"""Asset checks of a model: each check as SQL counting failing rows, all of a partition in one query."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId
from lakehouse.engines.sql import quote_ident
from lakehouse.models.inputs import model_params
from lakehouse.models.spec import Check, ModelError

if TYPE_CHECKING:
    from lakehouse.engines.base import Session
    from lakehouse.facade import Lakehouse
    from lakehouse.models.run import ModelRun


@dataclass(frozen=True)
class CheckOutcome:
    check: Check
    passed: bool
    failing_rows: int
    detail: str


def check_sql(check: Check, i: int) -> tuple[str, dict[str, Any]]:
    """One check as a scalar query counting failing rows over `this` (the written partition)."""
    if check.kind == "sql":
        assert check.query is not None
        return check.query, {}
    cols = [quote_ident(c) for c in check.columns]
    if check.kind == "not_null":
        return f"select count(*) from this where {' or '.join(f'{c} is null' for c in cols)}", {}
    if check.kind == "unique":
        group = ", ".join(cols)
        return (
            f"select coalesce(sum(n - 1), 0) from (select count(*) n from this group by {group} having n > 1)",
            {},
        )
    if check.kind == "accepted_range":
        conds, params = [], {}
        if check.min is not None:
            conds.append(f"{cols[0]} < $min_{i}")
            params[f"min_{i}"] = check.min
        if check.max is not None:
            conds.append(f"{cols[0]} > $max_{i}")
            params[f"max_{i}"] = check.max
        return f"select count(*) from this where {' or '.join(conds) or 'false'}", params
    raise ModelError(f"unknown check kind {check.kind!r}")


def evaluate_checks(
    lh: Lakehouse,
    session: Session,
    checks: tuple[Check, ...],
    data: Any,
    run: ModelRun,
    sources: Mapping[TableId | str, Any],
) -> list[CheckOutcome]:
    """Every check of one partition in ONE query (one engine session, one scan setup)."""
    outcomes: dict[str, CheckOutcome] = {}
    queries, params = [], model_params(lh, run.partition)
    for i, check in enumerate(checks):
        if check.kind == "reconcile":
            total = run.rows + run.rejected_rows
            outcomes[check.name] = CheckOutcome(
                check,
                run.source_rows == total,
                abs((run.source_rows or 0) - total),
                f"{run.model.reconcile_with}: {run.source_rows} rows; table {run.rows} + rejected {run.rejected_rows}",
            )
            continue
        sql, check_params = check_sql(check, i)
        queries.append((check, sql))
        params.update(check_params)
    if queries:
        select = ", ".join(f"({sql}) as c{i}" for i, (_, sql) in enumerate(queries))
        result = session.query(
            f"select {select}",
            {**sources, "this": data},
            params,
            default_namespace=run.model.table.namespace,
            statement_name=f"{run.model.path}: checks {', '.join(c.name for c, _ in queries)}",
        ).to_pylist()[0]
        for i, (check, _) in enumerate(queries):
            failing = int(result[f"c{i}"] or 0)
            outcomes[check.name] = CheckOutcome(
                check, failing == 0, failing, f"{failing} failing row(s): {check.description}"
            )
    return [outcomes[c.name] for c in checks]
