"""Asset checks of a model: each check as SQL counting failing rows, all of a partition in one query,
with the model's partition metrics (header `metrics:`) computed by the same query, in one scan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lakehouse.core.ids import TableId
from lakehouse.engines.sql import quote_ident
from lakehouse.models.inputs import model_params
from lakehouse.models.spec import Check, Metric, ModelError

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


def metric_value(value: Any) -> int | float | None:
    """A metric's value as a plain number (DuckDB's HUGEINT and DECIMAL arrive as Decimal)."""
    if value is None or isinstance(value, int | float):
        return int(value) if isinstance(value, bool) else value
    if isinstance(value, Decimal):
        return (
            int(value)
            if value == value.to_integral_value() and value.as_tuple().exponent == 0
            else float(value)
        )
    raise TypeError(f"{value!r} is not a number")


def evaluate_checks(
    lh: Lakehouse,
    session: Session,
    checks: tuple[Check, ...],
    data: Any,
    run: ModelRun,
    sources: Mapping[TableId | str, Any],
    metrics: tuple[Metric, ...] = (),
) -> list[CheckOutcome]:
    """Every check of one partition in ONE query (one engine session, one scan setup).

    The partition's metrics ride along in the same query (one pass over the partition, all metrics
    together) and land in `run.metrics`. A metric is a figure, not a gate: if the query fails only
    with them (say sum() of a string column), the checks run alone and `run.metrics_error` says why."""
    if metrics:
        try:
            outcomes = _evaluate(lh, session, checks, data, run, sources, metrics)
            run.metrics_error = None
            return outcomes
        except Exception as exc:  # noqa: BLE001 - the build stands; its figures say what went wrong
            run.metrics = {}
            run.metrics_error = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    return _evaluate(lh, session, checks, data, run, sources, ())


def _evaluate(
    lh: Lakehouse,
    session: Session,
    checks: tuple[Check, ...],
    data: Any,
    run: ModelRun,
    sources: Mapping[TableId | str, Any],
    metrics: tuple[Metric, ...],
) -> list[CheckOutcome]:
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
    if queries or metrics:
        select = ", ".join(
            [f"({sql}) as c{i}" for i, (_, sql) in enumerate(queries)]
            + [f"metrics.m{i}" for i in range(len(metrics))]
        )
        # All metrics in one subquery: one scan of the partition for all of them. A metric's text
        # may end in a -- comment, hence the newlines.
        from_ = (
            " from (select "
            + ", ".join(f"(\n{m.sql}\n) as m{i}" for i, m in enumerate(metrics))
            + " from this) as metrics"
            if metrics
            else ""
        )
        what = ", ".join([c.name for c, _ in queries] + [f"metric {m.name}" for m in metrics])
        result = session.query(
            f"select {select}{from_}",
            {**sources, "this": data},
            params,
            default_namespace=run.model.table.namespace,
            statement_name=f"{run.model.path}: checks {what}",
        ).to_pylist()[0]
        run.metrics = {m.name: metric_value(result[f"m{i}"]) for i, m in enumerate(metrics)}
        for i, (check, _) in enumerate(queries):
            failing = int(result[f"c{i}"] or 0)
            outcomes[check.name] = CheckOutcome(
                check, failing == 0, failing, f"{failing} failing row(s): {check.description}"
            )
    return [outcomes[c.name] for c in checks]
