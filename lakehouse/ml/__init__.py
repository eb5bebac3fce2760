"""Training on lakehouse tables: `LakehouseDataset` (dataset.py), a governed, pinned, streaming
PyTorch dataset.

It needs the `ml` extra (torch). The package imports lazily: `from lakehouse.ml import
LakehouseDataset` loads torch, importing another module of the package (or the package) does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lakehouse.ml.dataset import KIND, LakehouseDataset

__all__ = ["KIND", "LakehouseDataset"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from lakehouse.ml import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module 'lakehouse.ml' has no attribute {name!r}")
