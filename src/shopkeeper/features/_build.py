"""`features build`: item texts -> embeddings -> ANN index -> duplicates check, item
features, user representations and training examples; each step incremental."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from shopkeeper.features._datasets import DatasetConfig, build_training_examples
from shopkeeper.features._duplicates import DuplicatesConfig, build_item_duplicates
from shopkeeper.features._embeddings import build_item_embeddings
from shopkeeper.features._encoder import EncoderConfig, ItemEncoder
from shopkeeper.features._index import IndexConfig, build_item_index
from shopkeeper.features._structured import StructuredConfig, build_item_features
from shopkeeper.features._text import ItemTextConfig
from shopkeeper.features._users import UserConfig, build_user_features
from shopkeeper.logging import Stopwatch, get_logger
from shopkeeper.warehouse import Warehouse, new_build_id

if TYPE_CHECKING:
    from collections.abc import Callable

    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)
T = TypeVar("T")


class FeaturesConfig(BaseModel):
    """Everything `shopkeeper features build` can be told (a YAML file via `--config`)."""

    model_config = ConfigDict(extra="forbid")

    text: ItemTextConfig = Field(default_factory=ItemTextConfig)
    """The item text template."""
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    """The text encoder."""
    index: IndexConfig = Field(default_factory=IndexConfig)
    """The ANN index."""
    duplicates: DuplicatesConfig = Field(default_factory=DuplicatesConfig)
    """The near-duplicate item check."""
    structured: StructuredConfig = Field(default_factory=StructuredConfig)
    """Category, brand, price, popularity and recency features."""
    users: UserConfig = Field(default_factory=UserConfig)
    """User vectors, sequences and session vectors (when there are events)."""
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    """Training examples (when there are events)."""


def build_features(
    ws: Workspace, cfg: FeaturesConfig | None = None, encoder: ItemEncoder | None = None
) -> dict[str, Any]:
    """Build item embeddings, their ANN index, and what derives from them.

    Only new or changed items are encoded; a derived asset whose inputs did not
    change is left as it is (`status: unchanged`).

    Args:
        ws: The workspace (must hold an items asset).
        cfg: Text, encoder and index settings.
        encoder: An already loaded encoder to reuse (its config wins over `cfg.encoder`).

    Returns:
        The embeddings summary (asset, version, status, items, encoded, reused,
        model_id, items_version), `seconds`, `step_seconds` (per step), `index` (the
        index summary), and the summaries of `duplicates`, `item_features`, and where
        there are events, `users` and `training`.
    """
    cfg = cfg or FeaturesConfig()
    encoder = encoder or ItemEncoder(cfg.encoder)
    timer = Stopwatch()
    build_id = new_build_id()
    with ws.write_lock():
        with Warehouse(ws) as wh:
            ws.sweep(wh.referenced_dirs())
        steps: dict[str, float] = {}

        def step(name: str, fn: Callable[[], T]) -> T:
            start = timer.seconds
            result = fn()
            steps[name] = round(timer.seconds - start, 3)
            return result

        try:
            emb = step("embeddings", lambda: build_item_embeddings(ws, cfg.text, encoder, build_id))
            index = step("index", lambda: build_item_index(ws, cfg.index, build_id))
            derived = {
                "duplicates": step(
                    "duplicates", lambda: build_item_duplicates(ws, cfg.duplicates, build_id)
                ),
                "item_features": step(
                    "item_features", lambda: build_item_features(ws, cfg.structured, build_id)
                ),
            }
            with Warehouse(ws, read_only=True) as wh:
                has_events = wh.latest("events") is not None
            if has_events:
                derived["users"] = step(
                    "users", lambda: build_user_features(ws, cfg.users, build_id)
                )
                derived["training"] = step(
                    "training", lambda: build_training_examples(ws, cfg.dataset, build_id)
                )
        finally:
            shutil.rmtree(ws.tmp_dir / build_id, ignore_errors=True)
    out = {
        **emb.summary(),
        "seconds": round(timer.seconds, 3),
        "step_seconds": steps,
        "index": index,
        **derived,
    }
    _log.info("built features", **{k: v for k, v in out.items() if k != "index"})
    return out
