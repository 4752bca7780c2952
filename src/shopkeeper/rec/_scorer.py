"""The recommender contract: fit on training histories, score a batch of users, save/load.

A scorer ranks the whole catalog from a user's history alone, so an unknown user is
simply an empty history. Empty histories get the training popularity (unless the
scorer says otherwise), so every scorer returns a usable ranking for cold users.
"""

from __future__ import annotations

import importlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Self, TypeVar

import numpy as np
from pydantic import BaseModel

from shopkeeper.errors import ConfigError, ModelNotTrainedError, PluginNotFoundError

if TYPE_CHECKING:
    from pathlib import Path

    import numpy.typing as npt

    from shopkeeper.rec._data import Histories
    from shopkeeper.rec._shards import Shard

C = TypeVar("C", bound=BaseModel)

SCORERS: dict[str, str] = {
    "als": "shopkeeper.rec._als:ALSScorer",
    "content": "shopkeeper.rec._content:ContentScorer",
    "ease": "shopkeeper.rec._baselines:EASEScorer",
    "itemknn": "shopkeeper.rec._baselines:ItemKNNScorer",
    "popularity": "shopkeeper.rec._baselines:PopularityScorer",
    "random": "shopkeeper.rec._baselines:RandomScorer",
    "sasrec": "shopkeeper.rec._sasrec:SASRecScorer",
}
"""Built-in scorers: short name -> "module:Class", imported when first asked for."""


@dataclass(frozen=True)
class TrainingData:
    """What a scorer is fitted on."""

    histories: Histories
    """Every training user's items, oldest first."""
    item_vectors: npt.NDArray[np.float32] | None = None
    """(items, d) L2-normalized text embeddings, zero rows for items without one."""
    time_budget_s: float | None = None
    """Wall-clock seconds a trained model may spend fitting (None: no limit); a model
    that trains in epochs stops at the budget with its best checkpoint so far."""
    checkpoint_dir: Path | None = None
    """Where a trained model keeps resumable checkpoints (None: none are written)."""
    item_texts: list[str] | None = None
    """Each item's text (the features step's template), for models that read it."""
    item_attributes: npt.NDArray[np.int64] | None = None
    """(items, k) catalogue codes (brand, category levels, price decile); 0 is unknown."""
    shard: Shard | None = None
    """Set when `histories` hold only this process's share of the users (sharded
    data-parallel training under `torchrun`); the item arrays are whole."""


class RecScorer(ABC, Generic[C]):
    """A recommender that scores every catalog item for a batch of histories."""

    name: ClassVar[str]
    config_cls: ClassVar[type[BaseModel]]
    needs_item_vectors: ClassVar[bool] = False
    """Whether `fit` needs `TrainingData.item_vectors`."""
    uses_item_vectors: ClassVar[bool] = False
    """Whether `fit` uses `TrainingData.item_vectors` when there are some."""
    uses_item_attributes: ClassVar[bool] = False
    """Whether `fit` uses `TrainingData.item_attributes` when there are some."""
    popularity_fallback: ClassVar[bool] = True
    """Whether empty histories are scored by training popularity."""
    trains_on_shards: ClassVar[bool] = False
    """Whether `fit` accepts `TrainingData.shard` (each process holding its own users)."""

    def __init__(self, cfg: C | None = None, **kwargs: Any) -> None:
        if cfg is not None and kwargs:
            raise ConfigError("pass a config or keyword arguments, not both")
        self.cfg: C = cfg if cfg is not None else self.config_cls.model_validate(kwargs)  # type: ignore[assignment]
        self.n_items = 0
        self._popularity: npt.NDArray[np.float32] | None = None
        self.info: dict[str, Any] = {}
        """Facts about the fitted model worth reporting (e.g. a fallback taken)."""

    @property
    def wants_item_texts(self) -> bool:
        """Whether `fit` needs `TrainingData.item_texts` (with this config)."""
        return False

    def dump_config(self) -> dict[str, Any]:
        """The config as JSON data."""
        return self.cfg.model_dump(mode="json")

    @property
    def fitted(self) -> bool:
        """Whether `fit` (or `load`) has run."""
        return self._popularity is not None

    def fit(self, data: TrainingData) -> Self:
        """Fit on training histories; returns self.

        Raises:
            ConfigError: item embeddings are needed and missing, or the data is a shard
                and this scorer does not train on shards.
        """
        if self.needs_item_vectors and data.item_vectors is None:
            raise ConfigError(f"the {self.name} scorer needs item embeddings")
        if data.shard is not None and not self.trains_on_shards:
            raise ConfigError(f"the {self.name} scorer does not train on sharded data")
        self.n_items = data.histories.n_items
        counts = np.bincount(data.histories.to_csr().indices, minlength=self.n_items)
        if data.shard is not None:
            from shopkeeper.rec._trainer import all_reduce_sum

            counts = all_reduce_sum(counts)
        self._popularity = (counts / max(1, int(counts.max(initial=0)))).astype(np.float32)
        self.info = {}
        self._fit(data)
        return self

    def score(self, histories: Histories) -> npt.NDArray[np.float32]:
        """(rows, items) scores for a batch of histories; higher is better.

        Raises:
            ModelNotTrainedError: neither `fit` nor `load` has run.
            ConfigError: the histories use a different catalog size.
        """
        if self._popularity is None:
            raise ModelNotTrainedError(f"the {self.name} scorer is not fitted")
        if histories.n_items != self.n_items:
            raise ConfigError(
                f"histories index {histories.n_items} items; the scorer knows {self.n_items}"
            )
        scores = np.asarray(self._score(histories), dtype=np.float32)
        if self.popularity_fallback:
            empty = histories.lengths == 0
            if empty.any():
                scores[empty] = self._popularity
        return scores

    def save(self, path: Path) -> None:
        """Write the config (`scorer.json`) and the fitted state (`state.npz`) to a folder."""
        if self._popularity is None:
            raise ModelNotTrainedError(f"the {self.name} scorer is not fitted")
        path.mkdir(parents=True, exist_ok=True)
        meta = {"scorer": self.name, "config": self.dump_config(), "n_items": self.n_items}
        (path / "scorer.json").write_text(json.dumps({**meta, "info": self.info}, indent=2))
        arrays: dict[str, Any] = {"popularity": self._popularity, **self._state()}
        np.savez(path / "state.npz", **arrays)

    @classmethod
    def load(cls, path: Path) -> RecScorer[Any]:
        """Load a scorer saved by `save` (its class comes from the file)."""
        meta = json.loads((path / "scorer.json").read_text())
        klass = get_scorer_class(meta["scorer"])
        scorer = klass(klass.config_cls.model_validate(meta["config"]))
        scorer.n_items = int(meta["n_items"])
        scorer.info = dict(meta.get("info", {}))
        with np.load(path / "state.npz", allow_pickle=False) as npz:
            state = {k: npz[k] for k in npz.files}
        scorer._popularity = state.pop("popularity").astype(np.float32)
        scorer._set_state(state)
        return scorer

    @abstractmethod
    def _fit(self, data: TrainingData) -> None:
        """Learn the parameters."""

    @abstractmethod
    def _score(self, histories: Histories) -> npt.NDArray[np.float32]:
        """Dense (rows, items) scores."""

    @abstractmethod
    def _state(self) -> dict[str, npt.NDArray[Any]]:
        """Fitted arrays to save."""

    @abstractmethod
    def _set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:
        """Restore fitted arrays."""


def get_scorer_class(name: str) -> type[RecScorer[Any]]:
    """The scorer class registered under `name`.

    Raises:
        PluginNotFoundError: no such scorer.
    """
    if name not in SCORERS:
        raise PluginNotFoundError("scorer", name, list(SCORERS))
    module, _, attr = SCORERS[name].partition(":")
    klass: type[RecScorer[Any]] = getattr(importlib.import_module(module), attr)
    return klass


def create_scorer(name: str, config: dict[str, Any] | None = None) -> RecScorer[Any]:
    """A new scorer by name, configured from JSON data."""
    klass = get_scorer_class(name)
    return klass(klass.config_cls.model_validate(config or {}))
