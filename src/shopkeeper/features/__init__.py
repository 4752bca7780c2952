"""Language-model features: item text, the text encoder, versioned embeddings, ANN index.

Importing this package needs no torch; the encoder and the index import torch,
sentence-transformers and FAISS (the `ml` extra) when they are first used.
"""

from __future__ import annotations

from shopkeeper.features._encoder import (
    PACKAGED_MODEL,
    EncoderConfig,
    ItemEncoder,
    packaged_model_path,
)
from shopkeeper.features._text import TEXT_FIELDS, ItemTextConfig, item_text_sql

__all__ = [
    "PACKAGED_MODEL",
    "TEXT_FIELDS",
    "EncoderConfig",
    "ItemEncoder",
    "ItemTextConfig",
    "item_text_sql",
    "packaged_model_path",
]
