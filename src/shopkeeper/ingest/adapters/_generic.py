"""The generic adapter: canonical column names, or a YAML mapping."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shopkeeper.errors import ConfigError
from shopkeeper.ingest._mapping import MappingConfig, resolve_columns
from shopkeeper.ingest._plan import AssetPlan
from shopkeeper.schema import ASSET_KINDS, AssetKind

if TYPE_CHECKING:
    from pathlib import Path

    from shopkeeper.ingest.adapters._base import AdapterContext


def infer_kind(path: Path) -> AssetKind | None:
    """The kind named in a file name, e.g. `shop_events.csv.gz` -> events.

    >>> from pathlib import Path
    >>> infer_kind(Path("exports/items-2024.jsonl"))
    'items'
    >>> infer_kind(Path("x.csv")) is None
    True
    """
    stem = path.name.lower()
    found = [k for k in ASSET_KINDS if k in stem]
    return found[0] if len(found) == 1 else None


class GenericAdapter:
    """One file of one kind; columns matched by canonical name or mapped."""

    name = "generic"

    def plan(
        self,
        ctx: AdapterContext,
        path: Path,
        kind: AssetKind | None,
        mapping: MappingConfig | None,
    ) -> list[AssetPlan]:
        """Stage `path` and plan one asset of `kind`."""
        m = mapping or MappingConfig()
        chosen = kind or m.kind or infer_kind(path)
        if chosen is None:
            raise ConfigError(
                f"cannot tell what {path.name} holds; pass --kind one of {list(ASSET_KINDS)}",
                path=str(path),
            )
        if path.is_dir():
            raise ConfigError("the generic adapter takes one file, not a folder", path=str(path))
        staged = ctx.stage(path, m.read)
        sources = resolve_columns(m, chosen, staged.columns, str(path))
        return [
            AssetPlan(
                asset=m.asset or chosen,
                kind=chosen,
                stage=staged,
                sources=sources,
                transform="generic",
                params={"mapping": m.model_dump(mode="json"), "kind": chosen},
                cleaning=m.cleaning,
                fx_rates=dict(m.fx_rates),
                base_currency=m.base_currency,
                depends_on_items=chosen in ("events", "reviews", "judgments"),
            )
        ]
