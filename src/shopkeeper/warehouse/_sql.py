"""Load the versioned SQL files that ship with the package."""

from __future__ import annotations

from functools import cache
from importlib.resources import files


@cache
def load_sql(name: str) -> str:
    """Text of `sql/<name>.sql`."""
    return (files("shopkeeper.warehouse") / "sql" / f"{name}.sql").read_text(encoding="utf-8")
