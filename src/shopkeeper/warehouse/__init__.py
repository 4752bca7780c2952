"""The embedded warehouse: versioned Parquet assets, the DuckDB catalog, lineage, quality."""

from __future__ import annotations

from shopkeeper.warehouse._lineage import lineage_graph
from shopkeeper.warehouse._loader import IngestRequest, ingest
from shopkeeper.warehouse._privacy import rotate_pseudonym_key
from shopkeeper.warehouse._warehouse import AssetVersion, Warehouse
from shopkeeper.warehouse._workspace import Workspace

__all__ = [
    "AssetVersion",
    "IngestRequest",
    "Warehouse",
    "Workspace",
    "ingest",
    "lineage_graph",
    "rotate_pseudonym_key",
]
