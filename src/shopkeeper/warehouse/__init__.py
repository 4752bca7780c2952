"""The embedded warehouse: versioned Parquet assets, the DuckDB catalog, lineage, quality,
and the commit of derived versions (features, indexes, reports)."""

from __future__ import annotations

from shopkeeper.warehouse._derived import (
    DerivedVersion,
    FileRole,
    built_from,
    commit_derived,
    new_build_id,
)
from shopkeeper.warehouse._lineage import lineage_graph
from shopkeeper.warehouse._loader import IngestRequest, ingest
from shopkeeper.warehouse._privacy import rotate_pseudonym_key
from shopkeeper.warehouse._warehouse import AssetVersion, Warehouse
from shopkeeper.warehouse._workspace import Workspace

__all__ = [
    "AssetVersion",
    "DerivedVersion",
    "FileRole",
    "IngestRequest",
    "Warehouse",
    "Workspace",
    "built_from",
    "commit_derived",
    "ingest",
    "lineage_graph",
    "new_build_id",
    "rotate_pseudonym_key",
]
