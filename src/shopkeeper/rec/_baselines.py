"""Collaborative-filtering baselines: random, popularity, ItemKNN (cosine) and EASE."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
)
from scipy import sparse

from shopkeeper.logging import get_logger
from shopkeeper.rec._cooccurrence import CooccurrencePrior, gram, kept_items
from shopkeeper.rec._scorer import RecScorer

if TYPE_CHECKING:
    import numpy.typing as npt

    from shopkeeper.rec._data import Histories
    from shopkeeper.rec._scorer import TrainingData

_log = get_logger(__name__)


class RandomConfig(BaseModel):
    """A seeded random ranking: the floor every model must clear."""

    model_config = ConfigDict(extra="forbid")

    seed: NonNegativeInt = 0
    """Seed of the scores."""


class RandomScorer(RecScorer[RandomConfig]):
    """Uniform random scores (each call draws new ones from a seeded generator)."""

    name = "random"
    config_cls = RandomConfig
    popularity_fallback: ClassVar[bool] = False

    def _fit(self, data: TrainingData) -> None:
        self._rng = np.random.default_rng(self.cfg.seed)

    def _score(self, histories: Histories) -> npt.NDArray[np.float32]:
        return self._rng.random((histories.n_users, self.n_items), dtype=np.float32)

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        return {}

    def _set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:
        self._rng = np.random.default_rng(self.cfg.seed)


class PopularityConfig(BaseModel):
    """Most popular items first (no hyperparameters)."""

    model_config = ConfigDict(extra="forbid")


class PopularityScorer(RecScorer[PopularityConfig]):
    """Scores each item by its share of training users, the same for everyone."""

    name = "popularity"
    config_cls = PopularityConfig

    def _fit(self, data: TrainingData) -> None:
        pass

    def _score(self, histories: Histories) -> npt.NDArray[np.float32]:
        assert self._popularity is not None
        return np.broadcast_to(self._popularity, (histories.n_users, self.n_items)).copy()

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        return {}

    def _set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:
        pass


class ItemKNNConfig(BaseModel):
    """Item-based nearest neighbours on cosine similarity of item columns."""

    model_config = ConfigDict(extra="forbid")

    neighbours: PositiveInt = 100
    """Neighbours kept per item (the most similar ones)."""
    shrink: NonNegativeFloat = 0.0
    """Added to the cosine denominator: damps similarities built on few co-occurrences."""
    block: PositiveInt = 1024
    """Items per block while pruning the similarity matrix, at most (fewer when the
    catalog is large: a block holds at most 16M similarities)."""


class ItemKNNScorer(RecScorer[ItemKNNConfig]):
    """score(u, j) = Σ over the user's items i among j's top-k neighbours of cos(i, j)."""

    name = "itemknn"
    config_cls = ItemKNNConfig

    def _fit(self, data: TrainingData) -> None:
        x = data.histories.to_csr().tocsc()
        counts = np.asarray(x.getnnz(axis=0), dtype=np.float64)
        norms = np.sqrt(counts)
        co = (x.T @ x).tocsr()  # item x item co-occurrence counts
        co.setdiag(0)
        co.eliminate_zeros()
        k = min(self.cfg.neighbours, max(self.n_items - 1, 1))
        blocks = []
        block = max(1, min(self.cfg.block, 16_000_000 // max(self.n_items, 1)))
        for start in range(0, self.n_items, block):
            stop = min(start + block, self.n_items)
            dense = co[start:stop].toarray()
            dense /= np.outer(norms[start:stop], norms) + self.cfg.shrink + 1e-12
            blocks.append(_prune_rows(dense, k))
        sim = sparse.vstack(blocks).tocsr() if blocks else sparse.csr_matrix((0, 0))
        # Row j holds j's neighbours; scoring sums over the history's items i: S = sim^T.
        self._sim = sim.T.tocsr().astype(np.float32)
        self.info = {"similarity_nnz": int(self._sim.nnz)}

    def _score(self, histories: Histories) -> npt.NDArray[np.float32]:
        return np.asarray((histories.to_csr() @ self._sim).toarray(), dtype=np.float32)

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        s = self._sim
        return {"data": s.data, "indices": s.indices, "indptr": s.indptr}

    def _set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:
        shape = (self.n_items, self.n_items)
        self._sim = sparse.csr_matrix(
            (state["data"], state["indices"], state["indptr"]), shape=shape
        )


def _prune_rows(dense: npt.NDArray[np.float64], k: int) -> sparse.csr_matrix:
    """Keep the `k` largest positive entries of each row."""
    if dense.shape[1] > k:
        cut = np.argpartition(-dense, k - 1, axis=1)[:, :k]
        kept = np.zeros_like(dense)
        np.put_along_axis(kept, cut, np.take_along_axis(dense, cut, axis=1), axis=1)
        dense = kept
    dense[dense < 0] = 0.0
    return sparse.csr_matrix(dense)


class EASEConfig(BaseModel):
    """EASE (Steck 2019): a closed-form item-item linear model with a zero diagonal."""

    model_config = ConfigDict(extra="forbid")

    l2: PositiveFloat = 500.0
    """L2 regularization λ added to the Gram matrix's diagonal."""
    max_items: PositiveInt = 15_000
    """Above this catalog size the dense item x item inverse is too big: EASE is fitted on
    the `max_items` most popular items and the others score 0."""


class EASEScorer(RecScorer[EASEConfig]):
    """B = I - P·diagMat(1/diag(P)), P = (XᵀX + λI)⁻¹; score = x_u · B."""

    name = "ease"
    config_cls = EASEConfig

    def _fit(self, data: TrainingData) -> None:
        counts = np.asarray(data.histories.to_csr().getnnz(axis=0))
        keep = kept_items(counts, self.cfg.max_items)
        if len(keep) < self.n_items:
            self.info = {"restricted_to_top_items": len(keep)}
            _log.warning(
                "EASE catalog too large for a dense inverse; fitting on the most popular items",
                items=self.n_items,
                kept=len(keep),
            )
        self._prior = CooccurrencePrior.from_gram(
            gram(data.histories, keep), keep, self.n_items, self.cfg.l2
        )

    def _score(self, histories: Histories) -> npt.NDArray[np.float32]:
        return self._prior.score(histories)

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        return {"b": self._prior.b, "keep": self._prior.keep}

    def _set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:
        keep = state["keep"].astype(np.int64)
        self._prior = CooccurrencePrior(state["b"], keep, self.n_items)
