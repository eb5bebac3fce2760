"""Run one SQL model for one partition and write the result, like INSERT OVERWRITE ... PARTITION."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lakehouse_assets.models import Check, ModelError, SqlModel
from resources.engine import quote_ident
from resources.table_store import TableId
from sensors.layout import split_partition_key

if TYPE_CHECKING:
    import pyarrow as pa

    from resources.lakehouse import Lakehouse


@dataclass(frozen=True)
class CheckOutcome:
    check: Check
    passed: bool
    failing_rows: int
    detail: str


@dataclass
class ModelRun:
    model: SqlModel
    partition_key: str
    rows: int
    rejected_rows: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    source_rows: int | None = None
    checks: list[CheckOutcome] = field(default_factory=list)
    version: str | None = None


def model_params(lh: Lakehouse, partition_key: str) -> dict[str, Any]:
    dt_value, hh_value = split_partition_key(partition_key)
    return {"dt": dt_value, "hh": hh_value, "distance_method": lh.settings.distance_method}


def _conform_output(model: SqlModel, result: pa.Table) -> pa.Table:
    import pyarrow as pa

    missing = [c.name for c in model.columns if c.name not in result.column_names]
    if missing:
        raise ModelError(f"{model.path}: the query does not return declared column(s) {missing}")
    schema = model.arrow_schema()
    try:
        return pa.Table.from_arrays([result.column(f.name).cast(f.type) for f in schema], schema=schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ModelError(f"{model.path}: result does not fit the declared column types ({exc})") from None


def _with_partition(data: pa.Table, partition_key: str) -> pa.Table:
    import pyarrow as pa

    dt_value, hh_value = split_partition_key(partition_key)
    data = data.drop_columns([c for c in ("dt", "hh") if c in data.column_names])
    data = data.append_column("dt", pa.repeat(pa.scalar(dt_value, pa.string()), data.num_rows))
    return data.append_column("hh", pa.repeat(pa.scalar(hh_value, pa.string()), data.num_rows))


def _evaluate(lh: Lakehouse, check: Check, data: pa.Table, run: ModelRun) -> CheckOutcome:
    if check.kind == "reconcile":
        total = run.rows + run.rejected_rows
        ok = run.source_rows == total
        return CheckOutcome(
            check,
            ok,
            abs((run.source_rows or 0) - total),
            f"{run.model.reconcile_with}: {run.source_rows} rows; table {run.rows} + rejected {run.rejected_rows}",
        )
    cols = [quote_ident(c) for c in check.columns]
    if check.kind == "not_null":
        sql = f"select count(*) from t where {' or '.join(f'{c} is null' for c in cols)}"
    elif check.kind == "unique":
        sql = f"select coalesce(sum(n - 1), 0) from (select count(*) n from t group by {', '.join(cols)} having n > 1)"
    elif check.kind == "accepted_range":
        conds = []
        if check.min is not None:
            conds.append(f"{cols[0]} < $min")
        if check.max is not None:
            conds.append(f"{cols[0]} > $max")
        sql = f"select count(*) from t where {' or '.join(conds) or 'false'}"
    else:
        raise ModelError(f"unknown check kind {check.kind!r}")
    params = {"min": check.min, "max": check.max}
    failing = int(
        lh.engine.query(sql, {"t": data}, params, statement_name=f"check {check.name}").column(0)[0].as_py()
    )
    return CheckOutcome(check, failing == 0, failing, f"{failing} failing row(s): {check.description}")


def run_model(lh: Lakehouse, model: SqlModel, partition_key: str) -> ModelRun:
    """Compute the partition, write it (and its rejected rows), and evaluate the model's checks.

    The result streams from the engine into one atomic partition write, so memory stays bounded;
    checks then run on the partition as it was written."""
    import pyarrow as pa
    import pyarrow.compute as pc

    dt_value, hh_value = split_partition_key(partition_key)
    partition = {"dt": dt_value, "hh": hh_value}
    missing = [d for d in model.deps if not lh.tables.exists(d)]
    if missing:
        raise ModelError(
            f"{model.path}: upstream table(s) {', '.join(map(str, missing))} do not exist yet; "
            "materialize them first (or wait for DataScan)"
        )
    sources: dict[TableId | str, Any] = {k: v for k, v in lh.sources(list(model.deps), partition).items()}
    params = model_params(lh, partition_key)
    schema = model.arrow_schema()
    schema = schema.append(pa.field("dt", pa.string())).append(pa.field("hh", pa.string()))
    lh.tables.ensure_table(model.table, schema, list(model.partitioned_by), origin="model")

    rejected_parts: list[pa.Table] = []
    result_schema: list[pa.Schema] = []
    reason_column = model.reject_reason_column

    def chunks() -> Iterator[pa.Table]:
        rejected_parts.clear()
        with lh.engine.stream(
            model.sql,
            sources,
            params,
            default_namespace=model.table.namespace,
            statement_name=str(model.path),
        ) as batches:
            result_schema[:] = [batches.schema]
            for batch in batches:
                part = pa.Table.from_batches([batch])
                if reason_column:
                    if reason_column not in part.column_names:
                        raise ModelError(
                            f"{model.path}: reject_reason_column {reason_column!r} is not in the result"
                        )
                    is_rejected = pc.is_valid(part[reason_column])
                    rejected = part.filter(is_rejected)
                    if rejected.num_rows:
                        rejected_parts.append(rejected)
                    part = part.filter(pc.invert(is_rejected))
                yield _with_partition(_conform_output(model, part), partition_key)

    run = ModelRun(model, partition_key, rows=0)
    run.rows = lh.tables.overwrite_partition(model.table, chunks, partition)
    if reason_column and model.rejected_table is not None:
        rejected_all = pa.concat_tables(rejected_parts) if rejected_parts else result_schema[0].empty_table()
        rejected_all = _with_partition(rejected_all, partition_key)
        lh.tables.ensure_table(
            model.rejected_table, rejected_all.schema, list(model.partitioned_by), origin="model"
        )
        run.rejected_rows = lh.tables.overwrite_partition(model.rejected_table, rejected_all, partition)
        counts = rejected_all.group_by(reason_column).aggregate([([], "count_all")])
        run.rejected_by_reason = dict(
            zip(counts[reason_column].to_pylist(), counts["count_all"].to_pylist(), strict=True)
        )
    if model.reconcile_with is not None:
        run.source_rows = lh.tables.dataset(model.reconcile_with, partition).count_rows()
    written = lh.tables.dataset(model.table, partition)
    run.checks = [_evaluate(lh, check, written, run) for check in model.checks]
    run.version = lh.tables.version(model.table)
    return run
