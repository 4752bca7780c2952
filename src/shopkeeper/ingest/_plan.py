"""What an adapter hands to cleaning: one plan per asset to write."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from shopkeeper.ingest._mapping import ColumnSource
    from shopkeeper.ingest._readers import StagedTable
    from shopkeeper.schema import AssetKind

WriteMode = Literal["append", "upsert"]
UPSERT_KEYS: dict[AssetKind, tuple[str, ...]] = {
    "items": ("item_id",),
    "users": ("user_id",),
    "queries": ("query_id",),
    "judgments": ("query_id", "item_id"),
}
"""Kinds with a key: within one load the latest row per key wins."""
WRITE_MODES: dict[AssetKind, WriteMode] = {
    "events": "append",
    "reviews": "append",
    "judgments": "append",
    "items": "upsert",
    "users": "upsert",
    "queries": "upsert",
}


@dataclass(frozen=True)
class ExtraRule:
    """An adapter-specific quarantine rule: rows where `condition` (SQL) holds."""

    code: str
    condition: str
    column: str | None = None


@dataclass
class AssetPlan:
    """Everything needed to clean one staged source into one asset version."""

    asset: str
    kind: AssetKind
    stage: StagedTable
    sources: dict[str, ColumnSource]
    """Canonical column -> source expression and parse spec."""
    transform: str
    """Name of the adapter transform, recorded in the catalog."""
    params: dict[str, Any] = field(default_factory=dict)
    cleaning: dict[str, Any] = field(default_factory=dict)
    extra_rules: list[ExtraRule] = field(default_factory=list)
    where: str | None = None
    """Rows of the stage this asset takes (others count as not applicable: none today)."""
    fx_rates: dict[str, float] = field(default_factory=dict)
    base_currency: str | None = None
    pack_attributes: bool = True
    """Items/users: put unmapped source columns into `attributes` as JSON."""
    depends_on_items: bool = False
    """Check item ids against the items asset, including one written by the same load.

    Applies to events, reviews and judgments."""

    @property
    def mode(self) -> WriteMode:
        """Append or upsert, by kind."""
        return WRITE_MODES[self.kind]

    @property
    def user_source_columns(self) -> tuple[str, ...]:
        """Source columns holding raw user ids (pseudonymized in the quarantine too)."""
        src = self.sources.get("user_id")
        return src.source_columns if src else ()
