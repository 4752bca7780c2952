"""The `shopkeeper` command line."""

from __future__ import annotations

from shopkeeper.cli import _train  # noqa: F401 - registers `train`
from shopkeeper.cli._app import cli, main

__all__ = ["cli", "main"]
