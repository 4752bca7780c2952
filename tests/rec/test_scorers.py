"""Every baseline against the scorer contract, plus hand-checkable cases."""

from __future__ import annotations

import numpy as np
import pytest

from shopkeeper.errors import ConfigError, PluginNotFoundError
from shopkeeper.rec import (
    SCORERS,
    ALSScorer,
    ContentScorer,
    EASEScorer,
    Histories,
    ItemKNNScorer,
    PopularityScorer,
    RandomScorer,
    TrainingData,
    create_scorer,
    get_scorer_class,
)
from shopkeeper.testing.rec import RecScorerContractTests


class TestRandom(RecScorerContractTests):
    scorer_cls = RandomScorer


class TestPopularity(RecScorerContractTests):
    scorer_cls = PopularityScorer


class TestItemKNN(RecScorerContractTests):
    scorer_cls = ItemKNNScorer


class TestEASE(RecScorerContractTests):
    scorer_cls = EASEScorer


class TestContent(RecScorerContractTests):
    scorer_cls = ContentScorer


class TestALS(RecScorerContractTests):
    scorer_cls = ALSScorer


def test_als_learns_the_two_taste_groups() -> None:
    """Two disjoint groups of items: a user of one group gets that group's items first."""
    rows = [[0, 1, 2], [1, 2, 0], [0, 2], [3, 4, 5], [4, 5, 3], [3, 5]] * 5
    data = TrainingData(Histories.from_lists(rows, 6))
    scorer = ALSScorer(factors=4, iterations=10, regularization=0.1).fit(data)
    scores = scorer.score(Histories.from_lists([[0], [3]], 6))
    assert set(np.argsort(-scores[0])[:3].tolist()) == {0, 1, 2}
    assert set(np.argsort(-scores[1])[:3].tolist()) == {3, 4, 5}


def test_registry_names_every_scorer() -> None:
    for name in SCORERS:
        assert get_scorer_class(name).name == name
    with pytest.raises(PluginNotFoundError, match="known: als, content, ease"):
        create_scorer("sasrec-from-the-future")


def test_keyword_shorthand_is_validated() -> None:
    assert EASEScorer(l2=3.0).cfg.l2 == 3.0
    with pytest.raises(ValueError, match="l2"):
        EASEScorer(l2=-1.0)
    with pytest.raises(ConfigError):
        EASEScorer(EASEScorer.config_cls(), l2=2.0)


def test_ease_two_items_by_hand() -> None:
    """Users {0, 1} and {0}, λ = 1: B01 = x0·x1 / (x0·x0 + λ) = 1/3, B10 = 1/(1 + 1) = 1/2.

    With a zero diagonal, column j of B is the ridge regression of item j on the other
    items, which for two items is that one-dimensional formula.
    """
    data = TrainingData(Histories.from_lists([[0, 1], [0]], 2))
    scorer = EASEScorer(l2=1.0).fit(data)
    scores = scorer.score(Histories.from_lists([[0], [1], [0, 1]], 2))
    np.testing.assert_allclose(scores, [[0.0, 1 / 3], [1 / 2, 0.0], [1 / 2, 1 / 3]], rtol=1e-6)


def test_ease_three_items_matches_the_constrained_least_squares() -> None:
    """B from the closed form satisfies (G + λI) B = G - diag(μ) with diag(B) = 0."""
    rows = [[0, 1], [1, 2], [0, 1, 2], [2], [0]]
    data = TrainingData(Histories.from_lists(rows, 3))
    lam = 0.5
    scorer = EASEScorer(l2=lam).fit(data)
    eye = np.eye(3)
    b = scorer.score(Histories.from_lists([[0], [1], [2]], 3)).astype(np.float64)
    x = data.histories.to_csr().toarray().astype(np.float64)
    g = x.T @ x
    residual = (g + lam * eye) @ b - g  # must be diagonal (the Lagrange multipliers)
    np.testing.assert_allclose(residual * (1 - eye), 0.0, atol=1e-5)
    np.testing.assert_array_equal(np.diag(b), 0.0)


def test_ease_too_large_catalog_falls_back_to_the_most_popular_items() -> None:
    rows = [[0, 1], [1, 2], [1, 3], [1], [2, 3], [2, 3]]  # popularity: 1 > 2 = 3 > 0 > 4
    data = TrainingData(Histories.from_lists(rows, 5))
    scorer = EASEScorer(l2=1.0, max_items=3).fit(data)
    assert scorer.info == {"restricted_to_top_items": 3}
    scores = scorer.score(Histories.from_lists([[1, 2]], 5))
    assert scores[0, 4] == 0.0
    assert scores[0, 0] == 0.0
    assert scores[0, 3] > 0.0


def test_itemknn_cosine_by_hand() -> None:
    """Items 0 and 1 share both users (cos 1); item 2 shares one of 0's two users (cos 1/√2)."""
    rows = [[0, 1, 2], [0, 1], [3]]
    data = TrainingData(Histories.from_lists(rows, 4))
    scores = ItemKNNScorer(neighbours=3).fit(data).score(Histories.from_lists([[0]], 4))
    np.testing.assert_allclose(scores[0], [0.0, 1.0, 1 / np.sqrt(2), 0.0], rtol=1e-6)
    one = ItemKNNScorer(neighbours=1).fit(data).score(Histories.from_lists([[0]], 4))
    assert one[0, 1] == pytest.approx(1.0)  # 1's nearest neighbour is 0
    # 2's nearest neighbour is 0 or 1 (a tie at 1/√2): one of them is kept, not both
    assert one[0, 2] in (0.0, pytest.approx(1 / np.sqrt(2)))


def test_content_scorer_ranks_text_neighbours_and_new_items() -> None:
    """A never-bought item with the closest text ranks first; an item without text last."""
    vectors = np.array([[1, 0], [0, 1], [0.9, 0.1], [0, 0]], dtype=np.float32)
    vectors[2] /= np.linalg.norm(vectors[2])
    data = TrainingData(Histories.from_lists([[0], [1]], 4), vectors)
    scores = ContentScorer().fit(data).score(Histories.from_lists([[0]], 4))
    assert np.argsort(-scores[0]).tolist() == [0, 2, 1, 3]


def test_content_scorer_needs_vectors() -> None:
    with pytest.raises(ConfigError, match="item embeddings"):
        ContentScorer().fit(TrainingData(Histories.from_lists([[0]], 2)))


def test_content_recency_decay_weighs_the_latest_item() -> None:
    vectors = np.eye(3, dtype=np.float32)
    data = TrainingData(Histories.from_lists([[0, 1, 2]], 3), vectors)
    history = Histories.from_lists([[0, 1]], 3)  # 1 is the latest
    flat = ContentScorer().fit(data).score(history)[0]
    recent = ContentScorer(recency_decay=1.0).fit(data).score(history)[0]
    assert flat[0] == pytest.approx(flat[1])
    assert recent[1] > recent[0]
