"""Fixtures: an encoder over the tiny random model and a workspace with items."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopkeeper.features import ItemEncoder
from shopkeeper.warehouse import Workspace
from tests.features.catalog import ingest_items, item_rows, write_items


@pytest.fixture
def tiny_encoder(tiny_model_dir: Path) -> ItemEncoder:
    """A fresh fp32 encoder over the tiny model (its `texts_encoded` starts at 0)."""
    return ItemEncoder(model_path=tiny_model_dir, precision="fp32", batch_size=16, chunk_size=64)


@pytest.fixture
def items_workspace(workspace: Workspace, tmp_path: Path) -> Workspace:
    """A workspace holding 120 synthetic items (items v1)."""
    ingest_items(workspace, write_items(tmp_path / "items.csv", item_rows(120)))
    return workspace
