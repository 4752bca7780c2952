"""Ranking metrics against hand-computed cases, and the two evaluation protocols."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopkeeper.search import Judged, Qrels, mrr_at_k, ndcg_at_k, recall_at_k, rmse


def test_ndcg_graded_by_hand() -> None:
    # Ranked gains 2, 0, 1 with judged gains {2, 1, 1}: DCG = 2 + 0 + 1/log2(4) = 2.5,
    # ideal = 2 + 1/log2(3) + 1/log2(4).
    got = ndcg_at_k(np.array([[2.0, 0.0, 1.0]]), np.array([[1.0, 2.0, 1.0]]), 3)
    assert got[0] == pytest.approx(2.5 / (2 + 1 / math.log2(3) + 0.5))
    # The cut-off drops ranks and ideal entries beyond it: @1 with 0 first is 0.
    assert ndcg_at_k(np.array([[0.0, 2.0]]), np.array([[2.0]]), 1)[0] == 0.0
    # A perfect order is 1, and a query whose judged gains are all 0 has no figure.
    perfect = ndcg_at_k(np.array([[2.0, 1.0], [0.0, 0.0]]), np.array([[1.0, 2.0], [0.0, 0.0]]), 10)
    assert perfect[0] == pytest.approx(1.0)
    assert np.isnan(perfect[1])


def test_recall_mrr_rmse_by_hand() -> None:
    rel = np.array([[False, True, True, False], [False, False, False, False]])
    assert recall_at_k(rel, np.array([3, 2]), 2).tolist() == pytest.approx([1 / 3, 0.0])
    assert recall_at_k(rel, np.array([3, 2]), 4).tolist() == pytest.approx([2 / 3, 0.0])
    assert np.isnan(recall_at_k(rel[:1], np.array([0]), 4)[0])
    assert mrr_at_k(rel, 10).tolist() == [0.5, 0.0]
    assert mrr_at_k(rel, 1).tolist() == [0.0, 0.0]
    assert rmse(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 1.0])) == pytest.approx(
        math.sqrt(5 / 3)
    )


@given(st.lists(st.floats(0, 2, allow_nan=False), min_size=1, max_size=12))
def test_ndcg_is_at_most_one_and_one_for_ideal(gains: list[float]) -> None:
    g = np.array([gains])
    ideal = -np.sort(-g, axis=1)
    shuffled = ndcg_at_k(g, g, 5)[0]
    best = ndcg_at_k(ideal, g, 5)[0]
    if ideal.max() == 0:
        assert np.isnan(best)
    else:
        assert best == pytest.approx(1.0)
        assert shuffled <= best + 1e-12


def _judged() -> Judged:
    # q0 judges items a (3), b (2), c (1); q1 judges d (1) only.
    return Judged(
        ["q0", "q1"],
        ["first", "second"],
        np.array([0, 0, 0, 1]),
        ["a", "b", "c", "d"],
        np.array([3.0, 2.0, 1.0, 1.0]),
    )


def test_qrels_full_catalogue_protocol() -> None:
    catalogue = ["z", "a", "b", "c", "d"]  # rows 0..4
    qrels = Qrels(_judged(), catalogue, min_grade=1.0, relevant_grade=2.0)
    # q0 ranks the unjudged z first, then b, then a: gains 0, 1, 2 against ideal 2, 1, 0.
    ranked = np.array([[0, 2, 1], [4, -1, -1]])
    m = qrels.full_metrics(ranked, k=3, recall_k=2)
    ideal = 2 + 1 / math.log2(3)
    assert m["nDCG@3"][0] == pytest.approx((1 / math.log2(3) + 2 / math.log2(4)) / ideal)
    assert np.isnan(m["nDCG@3"][1])  # q1's only judged item has gain 0
    assert m["Recall@2"][0] == pytest.approx(0.5)  # b of {a, b} within the top 2
    assert m["MRR@3"].tolist() == [0.5, 0.0]


def test_qrels_rerank_protocol_orders_judged_candidates() -> None:
    catalogue = ["a", "b", "c", "d"]
    qrels = Qrels(_judged(), catalogue, min_grade=1.0, relevant_grade=2.0)
    assert qrels.candidates.tolist() == [[0, 1, 2], [3, -1, -1]]
    good = np.array([[3.0, 2.0, 1.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    bad = -good
    assert qrels.rerank_metrics(good, 10, seed=0)["nDCG@10"][0] == pytest.approx(1.0)
    worst = qrels.rerank_metrics(bad, 10, seed=0)["nDCG@10"][0]
    assert worst == pytest.approx((1 / math.log2(3) + 2 / math.log2(4)) / (2 + 1 / math.log2(3)))
