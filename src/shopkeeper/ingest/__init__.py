"""Read source files into staged DuckDB tables and plan the assets they become."""

from __future__ import annotations

from shopkeeper.ingest._files import (
    SourceFile,
    detect_encoding,
    hashes_reused,
    inspect_source,
    payload_bytes,
    sha256_file,
)
from shopkeeper.ingest._mapping import (
    ColumnSource,
    ColumnSpec,
    MappingConfig,
    ReadOptions,
    quote_ident,
    resolve_columns,
    sql_list,
    sql_literal,
)
from shopkeeper.ingest._plan import AssetPlan, ExtraRule
from shopkeeper.ingest._readers import StagedTable, stage_source
from shopkeeper.ingest.adapters import Adapter, AdapterContext, adapter_names, get_adapter

__all__ = [
    "Adapter",
    "AdapterContext",
    "AssetPlan",
    "ColumnSource",
    "ColumnSpec",
    "ExtraRule",
    "MappingConfig",
    "ReadOptions",
    "SourceFile",
    "StagedTable",
    "adapter_names",
    "detect_encoding",
    "get_adapter",
    "hashes_reused",
    "inspect_source",
    "payload_bytes",
    "quote_ident",
    "resolve_columns",
    "sha256_file",
    "sql_list",
    "sql_literal",
    "stage_source",
]
