"""The embedded warehouse: versioned Parquet assets, the DuckDB catalog, lineage, quality,
the commit of derived versions (features, indexes, reports), and privacy: key rotation,
fields encrypted at rest, erasure of a user and the audit log."""

from __future__ import annotations

from shopkeeper.warehouse._audit import read_audit_log
from shopkeeper.warehouse._derived import (
    DerivedVersion,
    FileRole,
    built_from,
    commit_derived,
    new_build_id,
)
from shopkeeper.warehouse._erase import forget_user
from shopkeeper.warehouse._fields import read_user_attributes
from shopkeeper.warehouse._lineage import lineage_graph
from shopkeeper.warehouse._loader import IngestRequest, ingest
from shopkeeper.warehouse._privacy import rotate_field_key, rotate_pseudonym_key
from shopkeeper.warehouse._reports import catalog_entries, quality_report
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
    "catalog_entries",
    "commit_derived",
    "forget_user",
    "ingest",
    "lineage_graph",
    "new_build_id",
    "quality_report",
    "read_audit_log",
    "read_user_attributes",
    "rotate_field_key",
    "rotate_pseudonym_key",
]
