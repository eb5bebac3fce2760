"""Table identifiers: `namespace.table`, the one way every room names a table."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableId:
    namespace: str
    name: str

    @classmethod
    def parse(cls, text: str, default_namespace: str | None = None) -> TableId:
        parts = text.split(".")
        if len(parts) == 2 and all(parts):
            return cls(parts[0], parts[1])
        if len(parts) == 1 and parts[0] and default_namespace:
            return cls(default_namespace, parts[0])
        raise ValueError(f"table name {text!r} must be namespace.table")

    def __str__(self) -> str:
        return f"{self.namespace}.{self.name}"
