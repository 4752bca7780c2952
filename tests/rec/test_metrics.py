"""Ranking metrics against hand-computed cases, and top-k against a full sort."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from shopkeeper.rec import ranking_metrics, self_information, top_k


def test_single_target_at_rank_three() -> None:
    hits = np.array([[False, False, True, False]])
    m = ranking_metrics(hits, np.array([1]), [2, 4])
    assert m["HR@2"][0] == 0.0
    assert m["NDCG@2"][0] == 0.0
    assert m["MRR@2"][0] == 0.0
    assert m["HR@4"][0] == 1.0
    assert m["Recall@4"][0] == 1.0
    assert m["NDCG@4"][0] == pytest.approx(1 / math.log2(4))  # 0.5
    assert m["MRR@4"][0] == pytest.approx(1 / 3)


def test_two_targets_by_hand() -> None:
    """Targets at ranks 1 and 3 of 3 shown, two targets in all.

    DCG = 1/log2(2) + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3) = 1.6309; NDCG = 0.9197.
    """
    hits = np.array([[True, False, True]])
    m = ranking_metrics(hits, np.array([2]), [1, 3])
    assert m["Recall@1"][0] == pytest.approx(0.5)
    assert m["NDCG@1"][0] == pytest.approx(1.0)  # ideal at k=1 is one hit
    assert m["Recall@3"][0] == pytest.approx(1.0)
    assert m["NDCG@3"][0] == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert m["MRR@3"][0] == 1.0


def test_more_targets_than_k_caps_the_ideal() -> None:
    """Five targets, both shown slots hit: NDCG@2 = 1, Recall@2 = 2/5."""
    m = ranking_metrics(np.array([[True, True]]), np.array([5]), [2])
    assert m["NDCG@2"][0] == pytest.approx(1.0)
    assert m["Recall@2"][0] == pytest.approx(0.4)


def test_batch_rows_are_independent() -> None:
    hits = np.array([[True, False], [False, False], [False, True]])
    m = ranking_metrics(hits, np.array([1, 1, 1]), [2])
    np.testing.assert_allclose(m["HR@2"], [1, 0, 1])
    np.testing.assert_allclose(m["MRR@2"], [1, 0, 0.5])
    np.testing.assert_allclose(m["NDCG@2"], [1, 0, 1 / math.log2(3)])


def test_cutoff_beyond_the_list_counts_as_the_list() -> None:
    m = ranking_metrics(np.array([[False, True]]), np.array([1]), [10])
    assert m["HR@10"][0] == 1.0
    assert m["NDCG@10"][0] == pytest.approx(1 / math.log2(3))


def test_self_information() -> None:
    """p = (users of i + 1) / (users + 1): 7 of 7 users -> 0 bits, 0 of 7 -> 3 bits."""
    np.testing.assert_allclose(self_information(np.array([7, 0, 3]), 7), [0.0, 3.0, 1.0])


def test_top_k_ties_and_small_catalogs() -> None:
    scores = np.array([[1.0, 3.0, 3.0, 2.0], [0.0, 0.0, 0.0, 0.0]], dtype=np.float32)
    assert top_k(scores, 2).tolist() == [[1, 2], [0, 1]]
    assert top_k(scores, 3).tolist() == [[1, 2, 3], [0, 1, 2]]
    assert top_k(scores, 10).tolist() == [[1, 2, 3, 0], [0, 1, 2, 3]]
    assert top_k(scores, 0).shape == (2, 0)
    with_inf = np.array([[-np.inf, 0.5, -np.inf]], dtype=np.float32)
    assert top_k(with_inf, 1).tolist() == [[1]]


@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 5), st.integers(1, 40)),
        elements=st.sampled_from([-np.inf, -1.0, 0.0, 0.5, 1.0, 2.5]),
    ),
    st.integers(1, 45),
)
def test_top_k_matches_a_stable_full_sort(scores: np.ndarray, k: int) -> None:
    """Ties included: equal scores come in index order, as a stable sort puts them."""
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(top_k(scores, k), expected)
