"""Training the learning-to-rank model: LambdaMART (LightGBM) over pair features.

`train search --model ltr` takes each judged train query's first-stage top `depth`
(hybrid-tuned, hybrid or BM25: the best the workspace has), describes every (query,
candidate) pair by `PairFeatures` and fits gradient-boosted trees with the LambdaRank
objective on the judged gains (unjudged candidates: gain 0, as in the full-catalogue
protocol), stopping early on the validation queries' pools. The trees become a new
`search_ltr` version: the LightGBM model text as an artifact, the features' importances
as the data file, and in the params the first stage it reorders and the validation nDCG@10
of that first stage alone and reordered (`_ltr.py` serves it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt

from shopkeeper.errors import ConfigError
from shopkeeper.features._encoder import require_ml
from shopkeeper.logging import Stopwatch, get_logger, progress
from shopkeeper.search._data import load_judged, split_queries
from shopkeeper.search._evaluate import SearchEvalConfig, sample_judged
from shopkeeper.search._fusion import HybridRetriever
from shopkeeper.search._ltr import ITEM_FEATURES_FILE, LTR_ASSET, MODEL_FILE, LtrRetriever
from shopkeeper.search._ltr_features import FEATURES, PairFeatures
from shopkeeper.search._metrics import ndcg_at_k
from shopkeeper.search._qrels import Qrels
from shopkeeper.search._retrieve import LexicalRetriever
from shopkeeper.search._train_ranker import _tuned_version, catalogue_texts, open_base
from shopkeeper.search._trained_asset import commit_trained

if TYPE_CHECKING:
    from pathlib import Path

    import numpy.typing as npt

    from shopkeeper.search._data import Judged
    from shopkeeper.search._retrieve import Retriever
    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)

IMPORTANCE_FILE = "importance.parquet"
BATCH = 512
"""Queries whose pools are retrieved and described together."""
_IMPORTANCE_SCHEMA = pa.schema(
    [("feature", pa.string()), ("gain", pa.float64()), ("splits", pa.int64())]
)
_SCHEMA_DOCS = {
    "feature": "A pair feature the trees read.",
    "gain": "Total loss reduction of the splits on this feature.",
    "splits": "How many splits use this feature.",
}


class LtrConfig(BaseModel):
    """LambdaMART over the first stage's top candidates."""

    model_config = ConfigDict(extra="forbid")

    base: str = "auto"
    """The first stage: auto (the best stored: hybrid-tuned, else hybrid, else bm25),
    bm25, hybrid or hybrid-tuned."""
    depth: PositiveInt = 50
    """Candidates per query the trees reorder (and learn from)."""
    trees: PositiveInt = 500
    """Boosting rounds at most (early stopping usually ends sooner)."""
    learning_rate: PositiveFloat = 0.05
    leaves: PositiveInt = 31
    """Leaves per tree."""
    min_pairs_per_leaf: PositiveInt = 50
    early_stopping: PositiveInt = 50
    """Stop after this many rounds without a better validation nDCG@10."""
    grade_levels: PositiveInt = Field(default=6, le=30)
    """Gains are rounded to this many steps above zero (LambdaRank needs integer labels;
    Home Depot's mean-of-three grades are thirds: 6 steps over gains 0 … 2)."""
    truncation: PositiveInt = 20
    """LambdaRank looks at pairs involving this many top positions per query."""
    train_queries: PositiveInt | None = None
    """Train on at most this many train queries (seeded sample; None: all)."""
    threads: NonNegativeInt = 0
    """LightGBM threads (0: its default, all cores)."""
    seed: NonNegativeInt = 0


def train_ltr(
    ws: Workspace,
    cfg: LtrConfig | None = None,
    time_budget_s: float | None = None,
    eval_cfg: SearchEvalConfig | None = None,
) -> dict[str, Any]:
    """Fit LambdaMART on the judged train queries' first-stage pools; store it.

    Returns:
        The summary: `asset`, `version`, the first stage, query and pair counts, trees,
        seconds and the validation nDCG@10 of the first stage alone and reordered.

    Raises:
        NotFoundError: no queries and judgments.
        ConfigError: no train or validation query, or no judged pair in any train pool.
    """
    lgb = require_ml("lightgbm")
    cfg = cfg or LtrConfig()
    ev = eval_cfg or SearchEvalConfig()
    timer = Stopwatch()
    base = open_base(ws, cfg.base)
    if not isinstance(base, LexicalRetriever | HybridRetriever):
        raise ConfigError(f"learning to rank needs a BM25 or hybrid first stage, not {base.name}")
    lexical = base if isinstance(base, LexicalRetriever) else base.lexical
    features = PairFeatures(lexical.index, catalogue_texts(ws, base.item_ids))
    model = LtrRetriever(base, None, features, cfg.depth)
    judged = load_judged(ws)
    split = split_queries(judged.query_ids, ev.seed, ev.validation_fraction, ev.test_fraction)
    train_q = sample_judged(judged.subset(split == "train"), cfg.train_queries, cfg.seed)
    val_q = judged.subset(split == "validation")
    if not train_q.query_ids or not val_q.query_ids:
        raise ConfigError("learning to rank needs judged train and validation queries")
    train = _Pools(model, train_q, ev, "train")
    val = _Pools(model, val_q, ev, "validation")
    if not (train.gain > 0).any():
        raise ConfigError("no judged train item is in any train query's first-stage pool")
    levels = cfg.grade_levels
    span = float(judged.pair_relevance.max()) - ev.min_grade
    booster = _fit(lgb, train, val, cfg, levels, span, time_budget_s, timer)
    model.booster = booster
    val_base = val.ndcg(-np.arange(cfg.depth, dtype=np.float32)[None, :], ev.k)
    val_ltr = val.ndcg(model.predict(val.x, val.rows), ev.k)
    params = {
        "model": "lambdamart",
        "config": cfg.model_dump(mode="json"),
        "features": list(FEATURES),
        "base": base.name,
        "fusion": base.cfg.model_dump(mode="json") if isinstance(base, HybridRetriever) else None,
        "tuned_encoder": _tuned_version(base),
        "split": {k: getattr(ev, k) for k in ("seed", "validation_fraction", "test_fraction")},
        "trees": int(booster.best_iteration or booster.num_trees()),
        "validation_ndcg_base": round(val_base, 4),
        "validation_ndcg": round(val_ltr, 4),
        "time_budget_s": time_budget_s,
    }
    version = _save(ws, booster, params, base, judged, features)
    _log.info("trained ltr", trees=params["trees"], validation_ndcg=val_ltr, elapsed=timer)
    return {
        "asset": LTR_ASSET,
        "version": version,
        "model": "lambdamart",
        "base": base.name,
        "train_queries": len(train_q.query_ids),
        "validation_queries": len(val_q.query_ids),
        "train_pairs": int(train.valid.sum()),
        "judged_in_pools": int((train.gain > 0).sum()),
        "trees": params["trees"],
        "validation_ndcg_base": params["validation_ndcg_base"],
        "validation_ndcg": params["validation_ndcg"],
        "seconds": round(timer.seconds, 1),
        "time_budget_s": time_budget_s,
    }


class _Pools:
    """Each query's first-stage top `depth`, its pair features and judged gains."""

    def __init__(self, model: LtrRetriever, judged: Judged, ev: SearchEvalConfig, what: str):
        self.qrels = Qrels(judged, model.item_ids, ev.min_grade, ev.relevant_grade)
        rows, xs = [], []
        n = len(judged.queries)
        with progress(f"describing {what} pools", total=n) as bar:
            for s in range(0, n, BATCH):
                encoded = model.encode(judged.queries[s : s + BATCH])
                pool = model.base.retrieve(encoded.base, model.depth).rows
                rows.append(pool)
                xs.append(model.pair_features(encoded, pool))
                bar.update(len(pool))
        self.rows = np.concatenate(rows)
        self.x = np.concatenate(xs)
        self.valid = self.rows >= 0
        self.gain = self.qrels.lookup(np.arange(n), self.rows)[0]

    def ndcg(self, scores: npt.NDArray[np.float32], k: int) -> float:
        """Mean full-catalogue nDCG@k with each pool ordered by `scores`."""
        s = np.where(self.valid, np.broadcast_to(scores, self.rows.shape), -np.inf)
        order = np.argsort(-s, axis=1, kind="stable")
        gains = np.take_along_axis(np.where(self.valid, self.gain, 0.0), order, axis=1)
        per_query = ndcg_at_k(gains, self.qrels.ideal, k)
        return float(np.nanmean(per_query)) if np.isfinite(per_query).any() else 0.0

    def dataset(self, levels: int, span: float) -> tuple[Any, Any, list[int]]:
        """Flat features, integer labels and group sizes (valid candidates per query)."""
        flat = self.valid.ravel()
        labels = np.rint(np.clip(self.gain / span, 0, 1) * levels).astype(np.int32)
        group = self.valid.sum(axis=1)
        return self.x.reshape(-1, self.x.shape[2])[flat], labels.ravel()[flat], group.tolist()


def _fit(
    lgb: Any,
    train: _Pools,
    val: _Pools,
    cfg: LtrConfig,
    levels: int,
    span: float,
    time_budget_s: float | None,
    timer: Stopwatch,
) -> Any:
    x, y, group = train.dataset(levels, span)
    vx, vy, vgroup = val.dataset(levels, span)
    params = {
        "objective": "lambdarank",
        "metric": "ndcg",
        "eval_at": [10],
        "learning_rate": cfg.learning_rate,
        "num_leaves": cfg.leaves,
        "min_data_in_leaf": cfg.min_pairs_per_leaf,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "feature_fraction": 0.8,
        "label_gain": [span * i / levels for i in range(levels + 1)],
        "lambdarank_truncation_level": cfg.truncation,
        "num_threads": cfg.threads,
        "seed": cfg.seed,
        "deterministic": True,
        "verbosity": -1,
    }
    data = lgb.Dataset(x, y, group=[g for g in group if g > 0])
    vdata = lgb.Dataset(vx, vy, group=[g for g in vgroup if g > 0], reference=data)
    callbacks = [lgb.early_stopping(cfg.early_stopping, verbose=False)]
    if time_budget_s is not None:
        callbacks.append(_budget(lgb, time_budget_s, timer))
    with progress("boosting ranking trees", total=cfg.trees) as bar:
        callbacks.append(lambda env: bar.update(1))
        booster = lgb.train(params, data, cfg.trees, valid_sets=[vdata], callbacks=callbacks)
    return booster


def _budget(lgb: Any, seconds: float, timer: Stopwatch) -> Any:
    """A LightGBM callback that stops boosting once `seconds` have passed, keeping the
    trees so far."""

    def callback(env: Any) -> None:
        if timer.seconds > seconds and env.iteration + 1 < env.end_iteration:
            raise lgb.callback.EarlyStopException(env.iteration, env.evaluation_result_list)

    callback.order = 40  # type: ignore[attr-defined]
    return callback


def _save(
    ws: Workspace,
    booster: Any,
    params: dict[str, Any],
    base: Retriever,
    judged: Judged,
    features: PairFeatures,
) -> int:
    """Commit the trees, with the catalogue side of their features (so that opening them
    need not hash the item texts again), as a new `search_ltr` version; its number."""
    table = pa.table(
        {
            "feature": list(FEATURES),
            "gain": [float(g) for g in booster.feature_importance(importance_type="gain")],
            "splits": [int(s) for s in booster.feature_importance(importance_type="split")],
        },
        schema=_IMPORTANCE_SCHEMA,
    )

    def write_model(folder: Path) -> list[Path]:
        booster.save_model(str(folder / MODEL_FILE))
        return [folder / MODEL_FILE, features.save(folder / ITEM_FEATURES_FILE)]

    return commit_trained(
        ws, LTR_ASSET, params, table, IMPORTANCE_FILE, _SCHEMA_DOCS, write_model, base, judged
    )
