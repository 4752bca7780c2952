"""The `shopkeeper` command line."""

from __future__ import annotations

from shopkeeper.cli._app import cli, main

__all__ = ["cli", "main"]
