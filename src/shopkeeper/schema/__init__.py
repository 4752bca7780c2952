"""The canonical data model: one Arrow schema per asset kind."""

from __future__ import annotations

from shopkeeper.schema._canonical import (
    ASSET_KINDS,
    AssetKind,
    CanonicalColumn,
    arrow_schema,
    columns,
    duckdb_type,
    required_columns,
)

__all__ = [
    "ASSET_KINDS",
    "AssetKind",
    "CanonicalColumn",
    "arrow_schema",
    "columns",
    "duckdb_type",
    "required_columns",
]
