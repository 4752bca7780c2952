"""`features build`: item texts -> embeddings -> ANN index, each step incremental."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from shopkeeper.features._assets import new_build_id
from shopkeeper.features._embeddings import build_item_embeddings
from shopkeeper.features._encoder import EncoderConfig, ItemEncoder
from shopkeeper.features._index import IndexConfig, build_item_index
from shopkeeper.features._text import ItemTextConfig
from shopkeeper.logging import Stopwatch, get_logger
from shopkeeper.warehouse import Warehouse

if TYPE_CHECKING:
    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)


class FeaturesConfig(BaseModel):
    """Everything `shopkeeper features build` can be told (a YAML file via `--config`)."""

    model_config = ConfigDict(extra="forbid")

    text: ItemTextConfig = Field(default_factory=ItemTextConfig)
    """The item text template."""
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    """The text encoder."""
    index: IndexConfig = Field(default_factory=IndexConfig)
    """The ANN index."""


def build_features(
    ws: Workspace, cfg: FeaturesConfig | None = None, encoder: ItemEncoder | None = None
) -> dict[str, Any]:
    """Build item embeddings and their ANN index; only new or changed items are encoded.

    Args:
        ws: The workspace (must hold an items asset).
        cfg: Text, encoder and index settings.
        encoder: An already loaded encoder to reuse (its config wins over `cfg.encoder`).

    Returns:
        The embeddings summary (asset, version, status, items, encoded, reused,
        model_id, items_version), `seconds`, and `index` (the index summary).
    """
    cfg = cfg or FeaturesConfig()
    encoder = encoder or ItemEncoder(cfg.encoder)
    timer = Stopwatch()
    build_id = new_build_id()
    with ws.write_lock():
        with Warehouse(ws) as wh:
            ws.sweep(wh.referenced_dirs())
        try:
            emb = build_item_embeddings(ws, cfg.text, encoder, build_id)
            index = build_item_index(ws, cfg.index, build_id)
        finally:
            shutil.rmtree(ws.tmp_dir / build_id, ignore_errors=True)
    out = {**emb.summary(), "seconds": round(timer.seconds, 3), "index": index}
    _log.info("built features", **{k: v for k, v in out.items() if k != "index"})
    return out
