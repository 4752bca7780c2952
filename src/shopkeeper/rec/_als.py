"""ALS baseline through `implicit` (Hu, Koren and Volinsky 2008: implicit-feedback ALS).

Users are folded in from their history at scoring time (a least-squares solve against
the item factors), so unknown users and users with new histories need no refit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
)

from shopkeeper.rec._scorer import RecScorer

if TYPE_CHECKING:
    import numpy.typing as npt

    from shopkeeper.rec._data import Histories
    from shopkeeper.rec._scorer import TrainingData


def _require_implicit() -> Any:
    try:
        from implicit.cpu.als import AlternatingLeastSquares
    except ImportError as exc:
        raise ImportError(
            'the ALS baseline needs implicit; install it with pip install "shopkeeper[ml]"'
        ) from exc
    return AlternatingLeastSquares


class ALSConfig(BaseModel):
    """Weighted matrix factorization of binary interactions, confidence 1 + alpha."""

    model_config = ConfigDict(extra="forbid")

    factors: PositiveInt = 64
    """Latent dimensions."""
    regularization: NonNegativeFloat = 0.01
    """L2 weight on the factors."""
    alpha: PositiveFloat = 1.0
    """Confidence of an observed interaction: 1 + alpha."""
    iterations: PositiveInt = 15
    """Alternating sweeps."""
    seed: NonNegativeInt = 0
    """Seed of the initial factors."""
    threads: NonNegativeInt = 0
    """implicit's worker threads (0: all cores); BLAS is held to one thread meanwhile."""


class ALSScorer(RecScorer[ALSConfig]):
    """score(u, j) = x_u · y_j, x_u solved from the user's history and the item factors."""

    name = "als"
    config_cls = ALSConfig

    def _model(self) -> Any:
        """A new implicit model (built with BLAS on one thread: implicit warns otherwise)."""
        from threadpoolctl import threadpool_limits

        cfg = self.cfg
        als = _require_implicit()  # first: importing it may load another BLAS to limit
        with threadpool_limits(1, "blas"):
            return als(
                factors=cfg.factors,
                regularization=cfg.regularization,
                alpha=cfg.alpha,
                iterations=cfg.iterations,
                random_state=cfg.seed,
                num_threads=cfg.threads,
            )

    def _fit(self, data: TrainingData) -> None:
        from threadpoolctl import threadpool_limits

        model = self._model()
        with threadpool_limits(1, "blas"):
            model.fit(data.histories.to_csr(), show_progress=False)
        self._als = model

    def _score(self, histories: Histories) -> npt.NDArray[np.float32]:
        from threadpoolctl import threadpool_limits

        rows = np.arange(histories.n_users)
        with threadpool_limits(1, "blas"):
            users = self._als.recalculate_user(rows, histories.to_csr())
        users = np.asarray(users, dtype=np.float32).reshape(histories.n_users, -1)
        return users @ np.asarray(self._als.item_factors, dtype=np.float32).T

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        return {"item_factors": np.asarray(self._als.item_factors, dtype=np.float32)}

    def _set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:
        self._als = self._model()
        self._als.item_factors = state["item_factors"].astype(np.float32)
