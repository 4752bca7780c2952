"""The ANN index: exact below the threshold, HNSW above, recall against exact search."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shopkeeper.errors import NotFoundError
from shopkeeper.features import (
    INDEX_ASSET,
    FeaturesConfig,
    IndexConfig,
    ItemEncoder,
    build_ann,
    build_features,
    load_item_index,
    read_embeddings,
)
from shopkeeper.features._index import AnnIndex
from shopkeeper.warehouse import Warehouse, Workspace
from tests.features.catalog import ingest_items, item_rows, write_items


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def recall_at_k(approx: np.ndarray, exact: np.ndarray, k: int) -> float:
    """Mean share of each query's exact top-k that the approximate top-k found."""
    return float(
        np.mean([len(set(a[:k]) & set(e[:k])) / k for a, e in zip(approx, exact, strict=True)])
    )


def test_hnsw_recall_at_10_against_exact(rng: np.random.Generator) -> None:
    """Default HNSW settings on 3,000 random 384-d vectors (a hard case: no structure)."""
    data, queries = _unit(rng, 3000, 384), _unit(rng, 300, 384)
    cfg = IndexConfig(exact_max_items=1000)
    exact, kind_exact = build_ann(data[:1000], cfg)
    assert kind_exact == "flat"
    exact, _ = build_ann(data, IndexConfig())
    hnsw, kind = build_ann(data, cfg)
    assert kind == "hnsw"
    _, truth = exact.search(queries, 10)
    _, found = hnsw.search(queries, 10)
    assert recall_at_k(found, truth, 10) >= 0.95
    _, truth_self = exact.search(data[:300], 10)  # `similar` queries are indexed items
    _, found_self = hnsw.search(data[:300], 10)
    assert recall_at_k(found_self, truth_self, 10) >= 0.95


def test_exact_index_is_exact(rng: np.random.Generator) -> None:
    data, queries = _unit(rng, 500, 32), _unit(rng, 20, 32)
    index, kind = build_ann(data, IndexConfig())
    assert kind == "flat"
    scores, rows = index.search(queries, 5)
    brute = queries @ data.T
    np.testing.assert_array_equal(rows, np.argsort(-brute, axis=1)[:, :5])
    np.testing.assert_allclose(scores, np.sort(brute, axis=1)[:, ::-1][:, :5], atol=1e-5)


def test_similar_leaves_the_item_out(rng: np.random.Generator) -> None:
    data = _unit(rng, 50, 16)
    data[7] = data[3]  # a duplicate: it must still be listed, first
    index, kind = build_ann(data, IndexConfig())
    ann = AnnIndex(index, [f"i{n}" for n in range(50)], kind)
    hits = ann.similar("i3", 4)
    assert len(hits) == 4
    assert "i3" not in {h["item_id"] for h in hits}
    assert hits[0] == {"item_id": "i7", "score": pytest.approx(1.0, abs=1e-5)}
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    with pytest.raises(NotFoundError):
        ann.similar("nope", 3)


def test_index_versions_are_immutable_artifacts(
    items_workspace: Workspace, tiny_encoder: ItemEncoder, tmp_path: Path
) -> None:
    out = build_features(items_workspace, encoder=tiny_encoder)
    assert out["index"] == {
        "asset": INDEX_ASSET,
        "version": 1,
        "status": "written",
        "type": "flat",
        "items": 120,
    }
    v1 = load_item_index(items_workspace)
    before = v1.similar("SKU00001", 5)
    with Warehouse(items_workspace, read_only=True) as wh:
        ids, vecs = read_embeddings(wh, 1)
        (index_file,) = wh.files(INDEX_ASSET, 1, "artifact")
        _, rows = wh.query("SELECT count(*) FROM item_index")
    assert rows == [(120,)]
    exact = vecs @ vecs[ids.index("SKU00001")]
    top = [ids[i] for i in np.argsort(-exact)[1:6]]
    assert [h["item_id"] for h in before] == top
    mtime = index_file.stat().st_mtime_ns
    ingest_items(items_workspace, write_items(tmp_path / "more.csv", item_rows(2, start=900)))
    cfg = FeaturesConfig.model_validate({"index": {"exact_max_items": 100}})
    out = build_features(items_workspace, cfg, encoder=tiny_encoder)
    assert out["index"]["version"] == 2
    assert out["index"]["type"] == "hnsw"
    assert len(load_item_index(items_workspace).item_ids) == 122
    old = load_item_index(items_workspace, version=1)
    assert old.similar("SKU00001", 5) == before
    assert index_file.stat().st_mtime_ns == mtime


def test_no_index_yet(items_workspace: Workspace) -> None:
    with pytest.raises(NotFoundError, match="features build"):
        load_item_index(items_workspace)
