"""The lakehouse's domain: storage, engines, landing, models, governance and the `Lakehouse` facade.

Nothing in this package imports Dagster: the Dagster wing (`lakehouse_assets/`, `sensors/`,
`resources/`) wraps it. See docs/architecture.md for where a new table, source, format, engine or
serving surface goes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lakehouse.facade import Lakehouse

__all__ = ["Lakehouse"]


def __getattr__(name: str) -> Any:
    # Lazy: `import lakehouse.core.settings` should not pay for the facade's imports.
    if name == "Lakehouse":
        from lakehouse.facade import Lakehouse

        return Lakehouse
    raise AttributeError(f"module 'lakehouse' has no attribute {name!r}")
