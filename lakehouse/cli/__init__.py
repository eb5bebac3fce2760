"""The `lakehouse` command line (entry point `lakehouse.cli:main`)."""

from lakehouse.cli.main import main

__all__ = ["main"]
