"""Language-model features: item text, the encoder, embeddings, ANN index, and what derives
from them: near-duplicate items, structured item features, user representations and
training examples.

Importing this package needs no torch; the encoder and the index import torch,
sentence-transformers and FAISS (the `ml` extra) when they are first used.
"""

from __future__ import annotations

from shopkeeper.features._build import FeaturesConfig, build_features
from shopkeeper.features._datasets import TRAINING_ASSET, DatasetConfig, build_training_examples
from shopkeeper.features._duplicates import (
    DUPLICATES_ASSET,
    DuplicatePair,
    DuplicatesConfig,
    build_item_duplicates,
    find_duplicate_items,
)
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
from shopkeeper.features._structured import (
    ATTRIBUTE_COLUMNS,
    ITEM_FEATURES_ASSET,
    StructuredConfig,
    build_item_features,
    read_item_attributes,
)
from shopkeeper.features._text import TEXT_FIELDS, ItemTextConfig, item_text_sql, read_item_texts
from shopkeeper.features._users import (
    SESSION_VECTORS_ASSET,
    USER_SEQUENCES_ASSET,
    USER_VECTORS_ASSET,
    UserConfig,
    build_user_features,
)

__all__ = [
    "ATTRIBUTE_COLUMNS",
    "DUPLICATES_ASSET",
    "EMBEDDINGS_ASSET",
    "INDEX_ASSET",
    "ITEM_FEATURES_ASSET",
    "PACKAGED_MODEL",
    "SESSION_VECTORS_ASSET",
    "TEXT_FIELDS",
    "TRAINING_ASSET",
    "USER_SEQUENCES_ASSET",
    "USER_VECTORS_ASSET",
    "AnnIndex",
    "DatasetConfig",
    "DuplicatePair",
    "DuplicatesConfig",
    "EmbeddingsResult",
    "EncoderConfig",
    "FeaturesConfig",
    "IndexConfig",
    "ItemEncoder",
    "ItemTextConfig",
    "StructuredConfig",
    "UserConfig",
    "build_ann",
    "build_features",
    "build_item_duplicates",
    "build_item_embeddings",
    "build_item_features",
    "build_item_index",
    "build_training_examples",
    "build_user_features",
    "choose_index_type",
    "find_duplicate_items",
    "item_text_sql",
    "load_item_index",
    "packaged_model_path",
    "read_embeddings",
    "read_item_attributes",
    "read_item_texts",
]
