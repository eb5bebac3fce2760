"""The house rules the layout promises (docs/architecture.md), checked on the real modules."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers.paths import REPO

IMPORT_ALL = """
import importlib, pkgutil, sys
import {package}
for m in pkgutil.walk_packages({package}.__path__, "{package}."):
    if not m.name.endswith(".__main__"):  # `python -m` entry points run a command when imported
        importlib.import_module(m.name)
print(sorted(name for name in {forbidden} if name in sys.modules))
"""


def _loaded(package: str, forbidden: set[str]) -> str:
    code = IMPORT_ALL.format(package=package, forbidden=sorted(forbidden))
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=True
    )
    return proc.stdout.strip()


def test_the_domain_package_imports_no_dagster() -> None:
    assert _loaded("lakehouse", {"dagster"}) == "[]"


def test_the_domain_loads_format_and_engine_libraries_only_when_used() -> None:
    assert _loaded("lakehouse", {"pyiceberg", "deltalake", "duckdb"}) == "[]"


def test_the_dagster_wing_imports_no_format_or_engine_library() -> None:
    for package in ("lakehouse_assets", "sensors", "resources"):
        assert _loaded(package, {"pyiceberg", "deltalake", "duckdb"}) == "[]", package
