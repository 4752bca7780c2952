"""Open the retrievers of a workspace: the lexical index (built when stale) and the dense
side (the item index of `features build`, with the encoder its vectors came from)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shopkeeper.errors import ConfigError, NotFoundError
from shopkeeper.features import (
    EMBEDDINGS_ASSET,
    INDEX_ASSET,
    EncoderConfig,
    ItemEncoder,
    load_item_index,
)
from shopkeeper.search._assets import build_search_index, load_search_index
from shopkeeper.search._retrieve import DenseRetriever, LexicalRetriever
from shopkeeper.warehouse import Warehouse

if TYPE_CHECKING:
    from shopkeeper.search._lexical import LexicalConfig
    from shopkeeper.warehouse import Workspace


def open_lexical(
    ws: Workspace, cfg: LexicalConfig | None = None, spelling: bool = True
) -> LexicalRetriever:
    """BM25 over the latest items, the index (re)built first if the items changed."""
    build_search_index(ws, cfg)
    return LexicalRetriever(load_search_index(ws), spelling=spelling)


def has_dense(ws: Workspace) -> bool:
    """Whether `features build` has made an item index here."""
    with Warehouse(ws, read_only=True) as wh:
        return wh.latest(INDEX_ASSET) is not None


def open_dense(
    ws: Workspace, item_ids: list[str], encoder: ItemEncoder | None = None
) -> DenseRetriever:
    """Dense retrieval over the latest item index, queries encoded like the items were.

    Raises:
        NotFoundError: no item index (run `shopkeeper features build`).
        ConfigError: `encoder` is not the model the item vectors came from.
    """
    ann = load_item_index(ws)
    with Warehouse(ws, read_only=True) as wh:
        index_params = wh.version(INDEX_ASSET, ann.version).params
        emb = wh.version(EMBEDDINGS_ASSET, index_params["embeddings_version"])
    if encoder is None:
        if "encoder" not in emb.params:
            raise NotFoundError("the item embeddings do not record their encoder")
        encoder = ItemEncoder(EncoderConfig.model_validate(emb.params["encoder"]))
    if encoder.model_id != emb.params.get("model_id"):
        raise ConfigError(
            f"query encoder {encoder.model_id} differs from the item vectors' model "
            f"{emb.params.get('model_id')}"
        )
    return DenseRetriever(ann, encoder, item_ids)
