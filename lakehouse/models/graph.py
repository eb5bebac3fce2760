"""The model graph: which models read which tables, and how partitions of one relate to the other."""

from __future__ import annotations

from lakehouse.core.ids import TableId
from lakehouse.core.partitioning import Partitioning
from lakehouse.models.spec import ModelError, SqlModel


class ModelGraph:
    """The models and the tables they read, with how partitions of one relate to the other."""

    def __init__(self, models: list[SqlModel]) -> None:
        self.ordered = models
        self.models = {m.table: m for m in models}
        self._readers: dict[TableId, list[SqlModel]] = {}
        for model in models:
            for dep in model.deps:
                self._readers.setdefault(dep, []).append(model)
        for model in models:
            for dep in model.deps:
                self._validate_edge(model, dep)

    def partitioning(self, table: TableId) -> Partitioning:
        """Models declare theirs; every other table is an hourly landing (ODS) table."""
        model = self.models.get(table)
        return model.partitioning if model else Partitioning.HOURLY

    def day_index(self, table: TableId) -> str | None:
        model = self.models.get(table)
        return model.day_index if model else None

    def readers(self, table: TableId) -> list[SqlModel]:
        return self._readers.get(table, [])

    def _validate_edge(self, reader: SqlModel, dep: TableId) -> None:
        kind = self.partitioning(dep)
        if reader.partitioning is Partitioning.HOURLY and kind is Partitioning.DAILY:
            raise ModelError(f"{reader.path}: an hourly model cannot read the daily table {dep}")
        if (
            reader.partitioning is Partitioning.DAILY
            and kind is Partitioning.HOURLY
            and not self.day_index(dep)
        ):
            raise ModelError(
                f"{reader.path}: a daily model reads the hourly table {dep}, which has no day_index; "
                f"declare `day_index: <date column>` in {dep}'s model"
            )
        spec = reader.input(dep)
        if spec.changes_by and not (reader.partitioning is Partitioning.HOURLY and kind is Partitioning.NONE):
            raise ModelError(
                f"{reader.path}: changes_by applies to an hourly model reading an unpartitioned one"
            )
