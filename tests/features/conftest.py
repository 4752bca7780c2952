"""Fixtures: a tiny random sentence-transformers model and a workspace with items."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from shopkeeper.features import ItemEncoder, packaged_model_path
from shopkeeper.warehouse import IngestRequest, Workspace, ingest

ITEM_COLUMNS = ("item_id", "title", "brand", "category", "tags", "description", "price")
_NOUNS = ("shirt", "mug", "lamp", "candle", "hose", "chair", "kettle", "scarf", "vase", "rug")
_ADJS = ("red", "blue", "cotton", "ceramic", "garden", "wooden", "steel", "wool", "glass", "linen")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialized 2-layer BERT with MiniLM's tokenizer, as a ST model folder."""
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
    root = tmp_path_factory.mktemp("tiny-st")
    hf = root / "hf"
    hf.mkdir()
    src = packaged_model_path()
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(src / name, hf / name)
    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
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


@pytest.fixture
def tiny_encoder(tiny_model_dir: Path) -> ItemEncoder:
    """A fresh fp32 encoder over the tiny model (its `texts_encoded` starts at 0)."""
    return ItemEncoder(model_path=tiny_model_dir, precision="fp32", batch_size=16, chunk_size=64)


def item_rows(n: int, start: int = 0) -> list[dict[str, str]]:
    """`n` synthetic catalog rows with every text field filled in some and empty in others."""
    rows = []
    for i in range(start, start + n):
        adj, noun = _ADJS[i % len(_ADJS)], _NOUNS[(i // len(_ADJS)) % len(_NOUNS)]
        rows.append(
            {
                "item_id": f"SKU{i:05d}",
                "title": f"{adj} {noun} model {i}",
                "brand": f"Brand{i % 7}" if i % 3 else "",
                "category": f"Home > {noun.title()}s",
                "tags": f"{adj}|{noun}" if i % 2 else "",
                "description": f"A {adj} {noun} made with care, item number {i}. " * (i % 4),
                "price": f"{5 + i % 50}.99",
            }
        )
    return rows


def write_items(path: Path, rows: list[dict[str, str]]) -> Path:
    """Write catalog rows as a generic items CSV."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=ITEM_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return path


def ingest_items(ws: Workspace, path: Path) -> None:
    """Ingest a generic items file into `ws`."""
    ingest(ws, IngestRequest(path, "generic", "items"))


@pytest.fixture
def items_workspace(workspace: Workspace, tmp_path: Path) -> Workspace:
    """A workspace holding 120 synthetic items (items v1)."""
    ingest_items(workspace, write_items(tmp_path / "items.csv", item_rows(120)))
    return workspace
