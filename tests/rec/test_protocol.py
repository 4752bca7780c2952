"""The protocol on a split small enough to work out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shopkeeper.rec import (
    EvalConfig,
    Histories,
    ItemKNNScorer,
    PopularityScorer,
    Split,
    TrainingData,
    evaluate_scorer,
)


@pytest.fixture
def split() -> Split:
    """Popularity in training: item 0 (3 users) > 1 (2) > 2 (1) > 3 (0)."""
    return Split(
        kind="leave_one_out",
        train=Histories.from_lists([[0, 1], [0], [0, 2], [1]], 4),
        test=Histories.from_lists([[2], [3], [1], [0]], 4),
    )


def evaluate(split: Split, **cfg: object) -> dict[str, dict[str, float]]:
    scorer = PopularityScorer().fit(TrainingData(split.train))
    return evaluate_scorer(scorer, split, EvalConfig.model_validate({"ks": [1, 2], **cfg}))


def test_popularity_by_hand(split: Split) -> None:
    """Seen items excluded, the rankings are u0 [2, 3], u1 [1, 2, 3], u2 [1, 3], u3 [0, 2, 3].

    Targets 2, 3, 1, 0 sit at ranks 1, 3, 1, 1.
    """
    m = evaluate(split, cold_user_threshold=2, cold_item_threshold=2)
    assert m["all"]["users"] == 4
    assert m["all"]["HR@1"] == pytest.approx(0.75)
    assert m["all"]["HR@2"] == pytest.approx(0.75)
    assert m["all"]["MRR@2"] == pytest.approx(0.75)
    assert m["all"]["coverage@1"] == pytest.approx(0.75)  # items 2, 1, 1, 0 come first
    info = {i: -math.log2((c + 1) / 5) for i, c in {0: 3, 1: 2, 2: 1}.items()}
    assert m["all"]["novelty@1"] == pytest.approx((info[2] + 2 * info[1] + info[0]) / 4)
    # cold users (< 2 training items): u1 and u3; cold items (< 2 users): 2 and 3
    assert m["cold_users"]["users"] == 2
    assert m["cold_users"]["HR@1"] == pytest.approx(0.5)
    assert m["cold_items"]["users"] == 2  # u0 (item 2) and u1 (item 3)
    assert m["cold_items"]["HR@1"] == pytest.approx(0.5)


def test_keeping_seen_items(split: Split) -> None:
    """Without exclusion everyone gets [0, 1, 2, 3]: only u3's target 0 is at rank 1."""
    m = evaluate(split, exclude_seen=False)
    assert m["all"]["HR@1"] == pytest.approx(0.25)
    assert m["all"]["HR@2"] == pytest.approx(0.5)  # u2's item 1 at rank 2
    assert m["all"]["NDCG@2"] == pytest.approx((1 + 1 / math.log2(3)) / 4)


def test_batching_and_sampling_do_not_change_the_figures(rng: np.random.Generator) -> None:
    rows = [rng.choice(30, size=int(rng.integers(1, 8)), replace=False).tolist() for _ in range(90)]
    train = Histories.from_lists([r[:-1] for r in rows], 30)
    test = Histories.from_lists([r[-1:] for r in rows], 30)
    split = Split(kind="leave_one_out", train=train, test=test)
    scorer = ItemKNNScorer(neighbours=5).fit(TrainingData(train))
    whole = evaluate_scorer(scorer, split, EvalConfig(batch_size=1024))
    batched = evaluate_scorer(scorer, split, EvalConfig(batch_size=7))
    assert whole.keys() == batched.keys()
    for seg in whole:
        assert whole[seg] == pytest.approx(batched[seg])
    a = evaluate_scorer(scorer, split, EvalConfig(max_users=20, seed=3))
    b = evaluate_scorer(scorer, split, EvalConfig(max_users=20, seed=3))
    assert a == b
    assert a["all"]["users"] == 20


def test_no_test_users_gives_zeros_not_errors() -> None:
    """Every user has one interaction: leave-one-out tests nobody."""
    split = Split(
        kind="leave_one_out",
        train=Histories.from_lists([[0], [1]], 3),
        test=Histories.from_lists([[], []], 3),
    )
    m = evaluate(split)
    assert {seg: v["users"] for seg, v in m.items()} == {
        "all": 0,
        "cold_users": 0,
        "cold_items": 0,
    }
    assert m["all"]["NDCG@2"] == 0.0
    assert m["cold_users"]["novelty@1"] == 0.0
    assert "novelty@1" not in m["cold_items"]
