"""The recommender contract as a pytest mixin: each scorer's test class sets `scorer_cls`.

Needs pytest, numpy and scipy; imported on its own (not from `shopkeeper.testing`).
"""

from __future__ import annotations

import pickle
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pytest

from shopkeeper.errors import ConfigError, ModelNotTrainedError
from shopkeeper.rec import Histories, RecScorer, TrainingData

if TYPE_CHECKING:
    from pathlib import Path

N_ITEMS = 12


def contract_data(seed: int = 0) -> TrainingData:
    """Twenty users over twelve items with two taste groups; item 11 has no interactions."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(20):
        group = np.arange(0, 6) if u % 2 else np.arange(5, 11)
        rows.append(rng.choice(group, size=int(rng.integers(2, 5)), replace=False).tolist())
    vectors = rng.normal(size=(N_ITEMS, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[3] = 0.0  # an item without text
    return TrainingData(Histories.from_lists(rows, N_ITEMS), vectors)


class RecScorerContractTests:
    """Fit, score, save/load, pickle, empty history and unknown users for one scorer."""

    scorer_cls: ClassVar[type[RecScorer[Any]]]

    def make(self) -> RecScorer[Any]:
        """A scorer with its default config."""
        return self.scorer_cls()

    def test_default_config_round_trip(self) -> None:
        scorer = self.make()
        dumped = scorer.dump_config()
        rebuilt = self.scorer_cls(self.scorer_cls.config_cls.model_validate(dumped))
        assert rebuilt.dump_config() == dumped

    def test_score_before_fit_raises(self) -> None:
        with pytest.raises(ModelNotTrainedError):
            self.make().score(Histories.from_lists([[1]], N_ITEMS))

    def test_fit_then_score(self) -> None:
        data = contract_data()
        scorer = self.make().fit(data)
        batch = data.histories.rows(np.arange(5))
        scores = scorer.score(batch)
        assert scores.shape == (5, N_ITEMS)
        assert scores.dtype == np.float32
        assert np.isfinite(scores).all()

    def test_wrong_catalog_size_is_refused(self) -> None:
        scorer = self.make().fit(contract_data())
        with pytest.raises(ConfigError):
            scorer.score(Histories.from_lists([[1]], N_ITEMS + 1))

    def test_empty_history_and_unknown_user(self) -> None:
        """An unknown user is an empty history: a full, finite ranking, like popularity's."""
        data = contract_data()
        scorer = self.make().fit(data)
        scores = scorer.score(Histories.from_lists([[], [], [0, 1]], N_ITEMS))
        assert scores.shape == (3, N_ITEMS)
        assert np.isfinite(scores).all()
        if scorer.popularity_fallback:
            counts = np.bincount(data.histories.to_csr().indices, minlength=N_ITEMS)
            assert np.argmax(scores[0]) == np.argmax(counts)
            np.testing.assert_array_equal(scores[0], scores[1])

    def test_save_load_scores_the_same(self, tmp_path: Path) -> None:
        data = contract_data()
        scorer = self.make().fit(data)
        batch = data.histories.rows(np.arange(8))
        scorer.save(tmp_path / "model")
        loaded = RecScorer.load(tmp_path / "model")
        assert type(loaded) is self.scorer_cls
        assert loaded.dump_config() == scorer.dump_config()
        np.testing.assert_allclose(loaded.score(batch), scorer.score(batch), rtol=1e-6)

    def test_pickle(self) -> None:
        data = contract_data()
        scorer = self.make().fit(data)
        again = pickle.loads(pickle.dumps(scorer))
        batch = data.histories.rows(np.arange(4))
        np.testing.assert_array_equal(again.score(batch), scorer.score(batch))

    def test_fit_is_deterministic(self) -> None:
        data = contract_data()
        batch = data.histories.rows(np.arange(6))
        a = self.make().fit(data).score(batch)
        b = self.make().fit(data).score(batch)
        np.testing.assert_array_equal(a, b)
