"""Language-model features: item text, the text encoder, versioned embeddings, ANN index.

Importing this package needs no torch; the encoder and the index import torch,
sentence-transformers and FAISS (the `ml` extra) when they are first used.
"""

from __future__ import annotations

from shopkeeper.features._build import FeaturesConfig, build_features
from shopkeeper.features._embeddings import (
    EMBEDDINGS_ASSET,
    EmbeddingsResult,
    build_item_embeddings,
)
from shopkeeper.features._encoder import (
    PACKAGED_MODEL,
    EncoderConfig,
    ItemEncoder,
    packaged_model_path,
)
from shopkeeper.features._index import (
    INDEX_ASSET,
    AnnIndex,
    IndexConfig,
    build_ann,
    build_item_index,
    choose_index_type,
    load_item_index,
    read_embeddings,
)
from shopkeeper.features._text import TEXT_FIELDS, ItemTextConfig, item_text_sql

__all__ = [
    "EMBEDDINGS_ASSET",
    "INDEX_ASSET",
    "PACKAGED_MODEL",
    "TEXT_FIELDS",
    "AnnIndex",
    "EmbeddingsResult",
    "EncoderConfig",
    "FeaturesConfig",
    "IndexConfig",
    "ItemEncoder",
    "ItemTextConfig",
    "build_ann",
    "build_features",
    "build_item_embeddings",
    "build_item_index",
    "choose_index_type",
    "item_text_sql",
    "load_item_index",
    "packaged_model_path",
    "read_embeddings",
]
