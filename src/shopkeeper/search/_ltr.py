"""Learning to rank: LambdaMART trees over pair features reorder the first stage.

`train search --model ltr` (`_train_ltr.py`) fits the trees; a `search_ltr` version holds
them (the LightGBM model text as an artifact, the features' importances as the data
file) and, in its params, the first stage they reorder and the validation nDCG@10 of that
first stage alone and reordered. This module serves them: `open_ltr` rebuilds the first
stage and `LtrRetriever` reorders its top `depth`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from shopkeeper.errors import ConfigError, NotFoundError
from shopkeeper.features._encoder import require_ml
from shopkeeper.features._text import read_item_texts
from shopkeeper.search._fusion import FusionConfig, HybridRetriever
from shopkeeper.search._ltr_features import FEATURES, PairFeatures
from shopkeeper.search._open import open_dense
from shopkeeper.search._rerank import reranked_head
from shopkeeper.search._retrieve import LexicalRetriever, Ranked
from shopkeeper.search._trained_asset import has_trained, trained_params
from shopkeeper.search._tuned_dense import tuned_hybrid
from shopkeeper.warehouse import Warehouse

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

    from shopkeeper.features import ItemEncoder
    from shopkeeper.warehouse import Workspace

LTR_ASSET = "search_ltr"
MODEL_FILE = "model.txt"
"""The trees, as LightGBM's model text."""
ITEM_FEATURES_FILE = "item_features.npz"
"""The catalogue side of the pair features (`PairFeatures.save`; versions before it
have none and compute it when opened)."""


class LtrQueries(NamedTuple):
    """A batch of queries as the trees' stage reads them (`LtrRetriever.encode`)."""

    texts: list[str]
    base: Any
    """The first stage's encoding."""
    terms: list[list[str]]
    """Each query's analyzed terms, spelling corrected once for both uses."""


class LtrRetriever:
    """The first stage's top `depth` reordered by the trees' score of each pair.

    Args:
        base: BM25 or hybrid (the first stage it was trained on).
        booster: The trained LightGBM booster.
        features: The catalogue side of the pair features.
        depth: Candidates per query it reorders.
        trained_on: The features the trees were trained on, in their order (a subset of
            `FEATURES`: trees trained before a feature was added keep working).
    """

    def __init__(
        self,
        base: LexicalRetriever | HybridRetriever,
        booster: Any,
        features: PairFeatures,
        depth: int = 50,
        trained_on: Sequence[str] = FEATURES,
    ) -> None:
        unknown = sorted(set(trained_on) - set(FEATURES))
        if unknown:
            raise ConfigError(
                "the ranking trees use features this version does not compute"
                f" ({', '.join(unknown)}); retrain them: `shopkeeper train search --model ltr`"
            )
        self._columns = [FEATURES.index(f) for f in trained_on]
        self.base = base
        self.booster = booster
        self.features = features
        self.depth = depth
        self.item_ids = base.item_ids
        self._lexical = base if isinstance(base, LexicalRetriever) else base.lexical

    @property
    def name(self) -> str:
        """The base's name and `+ltr`, e.g. `hybrid-tuned-linear+ltr`."""
        return f"{self.base.name}+ltr"

    def encode(self, queries: Sequence[str]) -> LtrQueries:
        """The query texts and terms (for the text features) and the base's encoding,
        its BM25 part built from the same terms."""
        texts = list(queries)
        terms = self._lexical.analyze(texts)
        if isinstance(self.base, HybridRetriever):
            return LtrQueries(texts, self.base.encode_terms(texts, terms), terms)
        return LtrQueries(texts, self.base.encode_terms(terms), terms)

    def pair_features(
        self, encoded: LtrQueries, rows: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """(queries, candidates, len(FEATURES)) features of each query with its rows
        (NaN where the row is -1; `dense` is NaN throughout over a BM25 base)."""
        if isinstance(self.base, HybridRetriever):
            lexical_enc = encoded.base[0]
            dense = np.where(rows >= 0, self.base.dense.score(encoded.base[1], rows), np.nan)
        else:
            lexical_enc = encoded.base
            dense = np.full(rows.shape, np.nan, dtype=np.float32)
        bm25 = self.features.bm25(lexical_enc, rows)
        text = self.features.lexical(encoded.texts, encoded.terms, rows)
        return np.concatenate([np.stack([bm25, dense], axis=2), text], axis=2, dtype=np.float32)

    def score(self, encoded: LtrQueries, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """The trees' score of each candidate row (-inf where the row is -1)."""
        return self.predict(self.pair_features(encoded, rows), rows)

    def predict(
        self, x: npt.NDArray[np.float32], rows: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """The trees' scores of described pairs (-inf where the row is -1)."""
        n, d, _ = x.shape
        if n * d == 0:
            return np.zeros((n, d), dtype=np.float32)
        used = x[:, :, self._columns].reshape(n * d, len(self._columns))
        s = np.asarray(self.booster.predict(used), dtype=np.float32)
        return np.where(rows >= 0, s.reshape(n, d), -np.inf).astype(np.float32)

    def retrieve(
        self,
        encoded: LtrQueries,
        k: int,
        mask: npt.NDArray[np.bool_] | None = None,
    ) -> Ranked:
        """The base's top `max(k, depth)` (within `mask`), the top `depth` reordered."""
        pool = self.base.retrieve(encoded.base, max(k, self.depth), mask)
        return reranked_head(pool, self.score(encoded, pool.rows[:, : self.depth]), self.depth, k)


def has_ltr(ws: Workspace) -> bool:
    """Whether `train search --model ltr` has stored a model here."""
    return has_trained(ws, LTR_ASSET)


def ltr_params(ws: Workspace, version: int | None = None) -> dict[str, Any]:
    """The params of a stored `search_ltr` version (the latest by default).

    Raises:
        NotFoundError: none has been trained (or no such version).
    """
    return trained_params(ws, LTR_ASSET, version, _NONE_YET)


def open_ltr(
    ws: Workspace,
    lexical: LexicalRetriever,
    version: int | None = None,
    encoder: ItemEncoder | None = None,
    threads: int | None = None,
) -> LtrRetriever:
    """The stored trees (the latest by default) over the first stage they were trained
    with: hybrid-tuned with the encoder version it recorded (`threads` caps its query
    encoder's), hybrid with its stored fusion (queries encoded with `encoder`; None: the
    item index's own), or BM25.

    Raises:
        NotFoundError: none has been trained, or a hybrid-trained one without item vectors.
    """
    lgb = require_ml("lightgbm")
    with Warehouse(ws, read_only=True) as wh:
        if version is None and wh.latest(LTR_ASSET) is None:
            raise NotFoundError(_NONE_YET)
        v = wh.version(LTR_ASSET, version)
        artifacts = {p.name: p for p in wh.files(LTR_ASSET, v.version, "artifact")}
        texts = read_item_texts(wh, lexical.item_ids)
    params = v.params
    base: LexicalRetriever | HybridRetriever = lexical
    if params.get("fusion") is not None:
        fusion = FusionConfig.model_validate(params["fusion"])
        if params.get("tuned_encoder"):
            tuned = int(params["tuned_encoder"])
            base = tuned_hybrid(ws, lexical, fusion, threads=threads, version=tuned)
        else:
            base = HybridRetriever(lexical, open_dense(ws, lexical.item_ids, encoder), fusion)
    booster = lgb.Booster(model_file=str(artifacts[MODEL_FILE]))
    features = PairFeatures(lexical.index, texts, artifacts.get(ITEM_FEATURES_FILE))
    depth = int(params["config"]["depth"])
    return LtrRetriever(base, booster, features, depth, params.get("features", FEATURES))


_NONE_YET = "no learning-to-rank model yet; run `shopkeeper train search --model ltr` first"
