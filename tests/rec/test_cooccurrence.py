"""The co-occurrence prior: EASE weights, standardized blending, NDCG under each weight."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from shopkeeper.rec import EASEScorer, Histories, TrainingData
from shopkeeper.rec._cooccurrence import (
    CooccurrencePrior,
    blend,
    blend_ndcg_sums,
    gram,
    kept_items,
    standardize,
)


def test_the_prior_scores_as_the_ease_baseline() -> None:
    rng = np.random.default_rng(0)
    rows = [rng.choice(12, size=rng.integers(1, 6), replace=False).tolist() for _ in range(40)]
    h = Histories.from_lists(rows, 12)
    keep = kept_items(np.bincount(h.items, minlength=12), 12)
    prior = CooccurrencePrior.from_gram(gram(h, keep), keep, 12, l2=5.0)
    ease = EASEScorer(l2=5.0).fit(TrainingData(h))
    np.testing.assert_allclose(prior.score(h), ease.score(h), rtol=1e-5, atol=1e-6)


def test_a_restricted_prior_scores_only_its_items() -> None:
    h = Histories.from_lists([[0, 1], [0, 1], [0, 2], [3]], 4)
    keep = kept_items(np.bincount(h.items, minlength=4), 2)
    assert keep.tolist() == [0, 1]
    scores = CooccurrencePrior.from_gram(gram(h, keep), keep, 4, l2=1.0).score(h)
    assert scores.shape == (4, 4)
    assert (scores[:, 2:] == 0).all()
    assert scores[2, 1] > 0  # user 2 has item 0, which goes with item 1
    assert scores[3].sum() == 0  # item 3 is outside the prior


@given(arrays(np.float32, (3, 7), elements=st.floats(-1e3, 1e3, width=32)))
def test_standardize_keeps_each_rows_order(s: np.ndarray) -> None:
    z = standardize(s)
    assert np.isfinite(z).all()
    for row, zrow in zip(s, z, strict=True):
        order = np.argsort(-row, kind="stable")
        assert (np.diff(zrow[order]) <= 0).all()  # a higher score never standardizes lower
        if row.std() > 1e-3 * max(1.0, np.abs(row).max()):
            assert abs(float(zrow.mean())) < 1e-3


def test_blend_with_weight_zero_is_the_sequence_model() -> None:
    seq = np.array([[3.0, 1.0, 2.0]], np.float32)
    assert blend(seq, np.array([[0.0, 9.0, 0.0]], np.float32), 0.0) is seq
    mixed = blend(seq, np.array([[0.0, 9.0, 0.0]], np.float32), 2.0)
    assert int(np.argmax(mixed)) == 1


def test_ndcg_sums_by_hand() -> None:
    """Two users, target item 2; the prior puts it first, the sequence model third."""
    seq = np.array([[3.0, 2.0, 1.0, 0.0], [3.0, 2.0, 1.0, 0.0]], np.float32)
    prior = np.array([[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0]], np.float32)
    seen = Histories.from_lists([[0], []], 4)  # user 0 has item 0: it is not ranked
    target = np.array([2, 2])
    sums = blend_ndcg_sums(seq, prior, seen, target, weights=(0.0, 10.0))
    # weight 0: user 0 ranks 2 second (1 / log2 3), user 1 third (1 / log2 4)
    assert sums[0] == np.float64(1 / np.log2(3) + 1 / np.log2(4))
    assert sums[1] == 2.0  # the prior decides: first for both
