"""Where things are: the repository the tests run from, and the installed commands."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
BIN = Path(sys.executable).parent
"""The scripts folder of the environment running the tests (lakehouse, dagster, dagster-daemon)."""
