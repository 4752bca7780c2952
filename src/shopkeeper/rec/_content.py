"""Content-only baseline: items nearest to the user's history by text embedding."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, NonNegativeFloat
from scipy import sparse

from shopkeeper.rec._scorer import RecScorer

if TYPE_CHECKING:
    import numpy.typing as npt

    from shopkeeper.rec._data import Histories
    from shopkeeper.rec._scorer import TrainingData

_MISSING = -2.0
"""Score of items without an embedding: below any cosine similarity."""


class ContentConfig(BaseModel):
    """A user profile from the history's text embeddings, matched against every item."""

    model_config = ConfigDict(extra="forbid")

    recency_decay: NonNegativeFloat = 0.0
    """Weight of the item n steps before the latest is exp(-decay * n); 0 weighs all alike."""


class ContentScorer(RecScorer[ContentConfig]):
    """score(u, j) = cos(profile(u), e_j), profile = weighted mean of the history's e_i.

    Needs no interactions for an item, only its text: a new item with a title ranks
    like any other.
    """

    name = "content"
    config_cls = ContentConfig
    needs_item_vectors = True
    uses_item_vectors = True

    def _fit(self, data: TrainingData) -> None:
        assert data.item_vectors is not None
        vectors = np.asarray(data.item_vectors, dtype=np.float32)
        if vectors.shape[0] != self.n_items:
            raise ValueError(f"{vectors.shape[0]} item vectors for {self.n_items} items")
        self._vectors = vectors
        self._has = np.linalg.norm(vectors, axis=1) > 0
        self.info = {"items_with_embedding": int(self._has.sum())}

    def _weights(self, histories: Histories) -> sparse.csr_matrix:
        """(rows, items) history weights: recency-decayed, each row summing to 1."""
        lengths = histories.lengths
        steps_back = (
            np.repeat(histories.indptr[1:], lengths) - 1 - np.arange(len(histories.items))
        ).astype(np.float32)
        w = np.exp(-self.cfg.recency_decay * steps_back, dtype=np.float32)
        w *= self._has[histories.items]
        m = sparse.csr_matrix(
            (w, histories.items, histories.indptr), shape=(histories.n_users, self.n_items)
        )
        m.sum_duplicates()
        return m

    def _score(self, histories: Histories) -> npt.NDArray[np.float32]:
        profile = np.asarray(self._weights(histories) @ self._vectors, dtype=np.float32)
        norms = np.linalg.norm(profile, axis=1, keepdims=True)
        profile /= np.where(norms > 0, norms, 1.0)
        scores = profile @ self._vectors.T
        scores[:, ~self._has] = _MISSING
        return scores

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        return {"vectors": self._vectors}

    def _set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:
        self._vectors = state["vectors"].astype(np.float32)
        self._has = np.linalg.norm(self._vectors, axis=1) > 0
