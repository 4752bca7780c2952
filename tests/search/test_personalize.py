"""Personalized search: the blend of query score and user vector, and the user lookup."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from shopkeeper.features import (
    EMBEDDINGS_ASSET,
    USER_VECTORS_ASSET,
    FeaturesConfig,
    ItemEncoder,
    build_features,
    read_embeddings,
)
from shopkeeper.features._users import weighted_vectors
from shopkeeper.search import (
    ItemVectors,
    PersonalizationConfig,
    Ranked,
    Searcher,
    SearchFilters,
    load_user_profiles,
    personalize,
)
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest
from tests.search.test_filters import SHOP, write_shop


def _pool(rng: np.random.Generator, q: int, width: int) -> Ranked:
    """Random pools, best first, some padded with -1."""
    rows = np.stack([rng.permutation(50)[:width] for _ in range(q)]).astype(np.int64)
    scores = -np.sort(-rng.random((q, width)).astype(np.float32), axis=1)
    short = rng.integers(1, width + 1, size=q)
    pad = np.arange(width)[None, :] >= short[:, None]
    return Ranked(np.where(pad, -1, rows), np.where(pad, 0, scores).astype(np.float32))


def test_zero_weight_keeps_the_retrieval_order(rng: np.random.Generator) -> None:
    pool = _pool(rng, 20, 12)
    affinity = rng.uniform(-1, 1, pool.rows.shape).astype(np.float32)
    got = personalize(pool, affinity, 0.0, 5)
    assert (got.ranked.rows == pool.rows[:, :5]).all()
    assert np.allclose(got.retrieval, np.where(pool.rows[:, :5] >= 0, pool.scores[:, :5], 0))


def test_full_weight_orders_by_the_user_and_stages_add_up(rng: np.random.Generator) -> None:
    pool = _pool(rng, 20, 12)
    affinity = rng.uniform(-1, 1, pool.rows.shape).astype(np.float32)
    by_user = personalize(pool, affinity, 1.0, 12)
    for q in range(20):
        valid = pool.rows[q] >= 0
        want = pool.rows[q][valid][np.argsort(-affinity[q][valid], kind="stable")]
        assert by_user.ranked.rows[q][: valid.sum()].tolist() == want.tolist()
        assert (by_user.ranked.rows[q][valid.sum() :] == -1).all()
    w = 0.3
    got = personalize(pool, affinity, w, 4)
    for q in range(20):
        valid = pool.rows[q] >= 0
        s = pool.scores[q][valid]
        span = s.max() - s.min() or 1.0
        for j, row in enumerate(got.ranked.rows[q]):
            if row < 0:
                continue
            col = int(np.flatnonzero(pool.rows[q] == row)[0])
            assert got.retrieval[q, j] == pytest.approx(pool.scores[q, col])
            assert got.affinity[q, j] == pytest.approx(affinity[q, col])
            norm = (pool.scores[q, col] - s.min()) / span
            assert got.ranked.scores[q, j] == pytest.approx((1 - w) * norm + w * affinity[q, col])


def test_a_brand_history_moves_that_brand_up(rng: np.random.Generator) -> None:
    # 3 brands x 6 items; an item's vector is its brand's direction plus its own noise.
    brands = np.repeat(np.arange(3), 6)
    centres = np.linalg.qr(rng.normal(size=(32, 3)))[0].T
    vecs = centres[brands] + 0.8 * rng.normal(size=(18, 32)) / np.sqrt(32)
    vecs = (vecs / np.linalg.norm(vecs, axis=1, keepdims=True)).astype(np.float32)
    # The shopper bought four brand-0 items; the features code turns that into a vector.
    bought = np.array([0, 1, 2, 3])
    user = weighted_vectors(["u"], bought, np.zeros(4, np.int64), np.full(4, 4.0), vecs)
    items = ItemVectors(vecs, np.arange(18, dtype=np.int64), "m")
    aff = items.affinity(user)[:, 0]
    # The query favours brands 1 and 2: brand 0's unbought items 4 and 5 rank last.
    rows = np.array([[6, 12, 7, 13, 8, 14, 4, 5]], np.int64)
    scores = np.linspace(1.0, 0.6, 8, dtype=np.float32)[None, :]
    pool = Ranked(rows, scores)
    plain = personalize(pool, aff[rows], 0.0, 8).ranked.rows[0].tolist()
    assert plain == rows[0].tolist()
    moved = personalize(pool, aff[rows], 0.3, 8).ranked.rows[0].tolist()
    assert moved.index(4) < plain.index(4)
    assert moved.index(5) < plain.index(5)
    top3 = personalize(pool, aff[rows], 0.7, 3).ranked.rows[0].tolist()
    assert set(top3) >= {4, 5}


@pytest.fixture
def encoder(tiny_model_dir: Path) -> ItemEncoder:
    return ItemEncoder(model_path=tiny_model_dir, precision="fp32", batch_size=16)


def _events(path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "item_id", "event_type", "ts"])
        for day, item in enumerate(["D1", "D3", "S1"], 1):  # alice buys DeWalt
            w.writerow(["alice", item, "purchase", f"2024-01-0{day}T10:00:00Z"])
        for day, item in enumerate(["P1", "P2"], 1):
            w.writerow(["bob", item, "purchase", f"2024-01-0{day}T10:00:00Z"])
    return path


@pytest.fixture
def shoppers(workspace: Workspace, tmp_path: Path, encoder: ItemEncoder) -> Workspace:
    ingest(workspace, IngestRequest(write_shop(tmp_path / "data"), "generic", "items"))
    ingest(workspace, IngestRequest(_events(tmp_path / "events.csv"), "generic", "events"))
    build_features(workspace, FeaturesConfig(encoder=encoder.cfg), encoder)
    return workspace


def _stored_cosines(ws: Workspace, user: str) -> dict[str, float]:
    """Cosine of the user's stored vector to every item, computed apart from search."""
    pseudo = ws.keys.load(create=False).pseudonymize(user)
    with Warehouse(ws, read_only=True) as wh:
        ids, vecs = read_embeddings(wh, wh.version(EMBEDDINGS_ASSET).version)
        (file,) = wh.files(USER_VECTORS_ASSET, wh.version(USER_VECTORS_ASSET).version)
    table = pq.read_table(file).to_pylist()
    (vec,) = [np.array(r["vector"], np.float32) for r in table if r["user_id"] == pseudo]
    return dict(zip(ids, (vecs @ vec).tolist(), strict=True))


@pytest.mark.parametrize("model", ["bm25", "hybrid"])
def test_searcher_personalizes_a_known_user(
    shoppers: Workspace, encoder: ItemEncoder, model: str
) -> None:
    s = Searcher.open(shoppers, model, encoder=encoder)  # type: ignore[arg-type]
    cos = _stored_cosines(shoppers, "alice")
    plain = [h["item_id"] for h in s.search(["drill"], k=5)[0]]

    def ranked(w: float, k: int = 5) -> list[dict[str, object]]:
        return s.search(
            ["drill"], k, user="alice", personalization=PersonalizationConfig(weight=w)
        )[0]

    at_zero = ranked(0.0)
    assert [h["item_id"] for h in at_zero] == plain  # w = 0: the order is unchanged
    assert all(h["personalized"] is True for h in at_zero)
    by_user = ranked(1.0, k=20)  # w = 1: the pool in the order of the user's cosine
    got = [h["stages"]["personalization"] for h in by_user]  # type: ignore[index]
    assert got == pytest.approx([cos[str(h["item_id"])] for h in by_user], abs=1e-5)
    assert got == sorted(got, reverse=True)
    # Alice's DeWalt history pulls a DeWalt drill to the top when the user weighs most.
    assert by_user[0]["item_id"] in {"D1", "D3"}
    assert plain.index(str(by_user[0]["item_id"])) > 0
    # The filters still hold under personalization.
    cheap = s.search(["drill"], 5, SearchFilters(max_price=60), user="alice")[0]
    price = {r[0]: float(r[4]) for r in SHOP if r[4]}
    assert cheap
    assert all(price[str(h["item_id"])] <= 60 for h in cheap)


def test_unknown_user_is_searched_unpersonalized_with_a_flag(
    shoppers: Workspace, encoder: ItemEncoder
) -> None:
    s = Searcher.open(shoppers, "bm25", encoder=encoder)
    plain = s.search(["drill"], k=5)[0]
    got = s.search(["drill"], k=5, user="mallory")[0]
    assert [(h["item_id"], h["score"]) for h in got] == [(h["item_id"], h["score"]) for h in plain]
    assert all(h["personalized"] is False for h in got)
    assert all(h["stages"] == {"retrieval": h["score"], "personalization": None} for h in got)
    assert s.profile("mallory").reason == "unknown user"
    assert s.profile("alice").applied
    (other,) = load_user_profiles(shoppers, ["alice"], "another-model@123")
    assert not other.applied
    assert "another-model@123" in str(other.reason)


def test_workspace_without_events_has_no_user_vectors(
    workspace: Workspace, tmp_path: Path, encoder: ItemEncoder
) -> None:
    ingest(workspace, IngestRequest(write_shop(tmp_path / "data"), "generic", "items"))
    s = Searcher.open(workspace, "bm25")
    assert "features build" in str(s.profile("alice").reason)  # no item vectors yet
    build_features(workspace, FeaturesConfig(encoder=encoder.cfg), encoder)
    s = Searcher.open(workspace, "bm25")
    profile = s.profile("alice")
    assert not profile.applied
    assert profile.reason is not None
    assert "no user" in profile.reason
    hits = s.search(["saw"], k=2, user="alice")[0]
    assert [h["personalized"] for h in hits] == [False, False]
