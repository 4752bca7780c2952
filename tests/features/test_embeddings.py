"""Item embeddings as a versioned asset: incremental rebuilds, lineage, reuse keys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shopkeeper.errors import NotFoundError
from shopkeeper.features import (
    EMBEDDINGS_ASSET,
    FeaturesConfig,
    ItemEncoder,
    ItemTextConfig,
    build_features,
    read_embeddings,
)
from shopkeeper.warehouse import Warehouse, Workspace, lineage_graph
from tests.features.catalog import ingest_items, item_rows, write_items


def _vectors(ws: Workspace, version: int) -> dict[str, np.ndarray]:
    with Warehouse(ws, read_only=True) as wh:
        ids, vecs = read_embeddings(wh, version)
    return dict(zip(ids, vecs, strict=True))


def test_first_build_encodes_every_item(
    items_workspace: Workspace, tiny_encoder: ItemEncoder
) -> None:
    out = build_features(items_workspace, encoder=tiny_encoder)
    assert out["asset"] == EMBEDDINGS_ASSET
    assert (out["version"], out["status"], out["items"]) == (1, "written", 120)
    assert out["encoded"] == tiny_encoder.texts_encoded == 120
    assert out["reused"] == 0
    assert out["model_id"] == tiny_encoder.model_id
    with Warehouse(items_workspace, read_only=True) as wh:
        _, rows = wh.query(
            "SELECT count(*), count(DISTINCT item_id), min(len(embedding)), "
            "max(abs(list_dot_product(embedding, embedding) - 1)) FROM item_embeddings"
        )
        assert rows[0][:3] == (120, 120, tiny_encoder.dim)
        assert rows[0][3] < 1e-4
        _, text = wh.query("SELECT text FROM item_embeddings WHERE item_id = 'SKU00005'")
        assert text[0][0] == (
            "wooden shirt model 5. Brand: Brand5. Category: Home > Shirts. "
            "Tags: wooden, shirt. A wooden shirt made with care, item number 5."
        )


def test_unchanged_catalog_is_a_no_op(
    items_workspace: Workspace, tiny_encoder: ItemEncoder
) -> None:
    build_features(items_workspace, encoder=tiny_encoder)
    again = build_features(items_workspace, encoder=tiny_encoder)
    assert again["status"] == "unchanged"
    assert (again["version"], again["encoded"], again["reused"]) == (1, 0, 120)
    assert again["index"]["status"] == "unchanged"
    assert tiny_encoder.texts_encoded == 120


def test_small_change_encodes_only_new_and_changed_items(
    items_workspace: Workspace, tiny_encoder: ItemEncoder, tmp_path: Path
) -> None:
    build_features(items_workspace, encoder=tiny_encoder)
    before = _vectors(items_workspace, 1)
    changed = item_rows(3, start=10)
    for r in changed:
        r["title"] += " (new edition)"
    price_only = item_rows(1, start=20)
    price_only[0]["price"] = "999.99"  # not in the text: must be reused
    added = item_rows(2, start=500)
    ingest_items(
        items_workspace, write_items(tmp_path / "update.csv", changed + price_only + added)
    )
    out = build_features(items_workspace, encoder=tiny_encoder)
    assert (out["version"], out["status"], out["items"]) == (2, "written", 122)
    assert out["encoded"] == 5
    assert tiny_encoder.texts_encoded == 120 + 5
    assert out["reused"] == 117
    after = _vectors(items_workspace, 2)
    touched = {r["item_id"] for r in changed + added}
    for item, vec in after.items():
        if item in touched:
            continue
        np.testing.assert_array_equal(vec, before[item])  # copied, bit for bit
    for r in changed:
        assert not np.allclose(after[r["item_id"]], before[r["item_id"]])
    fresh = ItemEncoder(tiny_encoder.cfg)
    with Warehouse(items_workspace, read_only=True) as wh:
        _, rows = wh.query("SELECT text FROM item_embeddings WHERE item_id = 'SKU00500'")
    np.testing.assert_allclose(after["SKU00500"], fresh.encode([rows[0][0]])[0], atol=1e-5)
    assert set(_vectors(items_workspace, 1)) == set(before)  # v1 is immutable


def test_new_model_or_template_reencodes_everything(
    items_workspace: Workspace, tiny_encoder: ItemEncoder, tiny_model_dir: Path
) -> None:
    build_features(items_workspace, encoder=tiny_encoder)
    int8 = ItemEncoder(model_path=tiny_model_dir, precision="int8")
    out = build_features(items_workspace, encoder=int8)
    assert (out["version"], out["encoded"], out["reused"]) == (2, 120, 0)
    assert out["model_id"] == int8.model_id != tiny_encoder.model_id
    cfg = FeaturesConfig(text=ItemTextConfig(template=["{title}"]))
    out = build_features(items_workspace, cfg, encoder=tiny_encoder)
    assert (out["version"], out["encoded"]) == (3, 120)
    back = build_features(items_workspace, encoder=tiny_encoder)  # v1's key again: reused
    assert (back["version"], back["encoded"], back["reused"]) == (4, 0, 120)


def test_lineage_reaches_items_and_model(
    items_workspace: Workspace, tiny_encoder: ItemEncoder
) -> None:
    build_features(items_workspace, encoder=tiny_encoder)
    with Warehouse(items_workspace, read_only=True) as wh:
        graph = lineage_graph(wh, "item_index")
        v = wh.version(EMBEDDINGS_ASSET)
    edges = {(e["from"], e["to"], e["relation"]) for e in graph["edges"]}
    assert ("asset:item_embeddings@v1", "asset:item_index@v1", "indexed_from") in edges
    assert ("asset:items@v1", "asset:item_embeddings@v1", "encoded_from") in edges
    model_file = f"file:{tiny_encoder.model_dir}"
    assert graph["nodes"][model_file]["sha256"] == tiny_encoder.model_digest[0]
    assert v.params["model_id"] == tiny_encoder.model_id
    assert v.kind == "embeddings"
    assert v.quality["load"] == {
        "input_rows": 120,
        "clean_rows": 120,
        "quarantined_rows": 0,
        "duplicate_rows": 0,
        "items": 120,
        "encoded": 120,
        "reused": 0,
    }


def test_no_items_yet(workspace: Workspace, tiny_encoder: ItemEncoder) -> None:
    with pytest.raises(NotFoundError, match="no items asset"):
        build_features(workspace, encoder=tiny_encoder)
