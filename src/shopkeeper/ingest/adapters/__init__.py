"""Built-in source adapters, resolved lazily by short name."""

from __future__ import annotations

from shopkeeper.ingest.adapters._base import (
    Adapter,
    AdapterContext,
    adapter_names,
    get_adapter,
)

__all__ = ["Adapter", "AdapterContext", "adapter_names", "get_adapter"]
