"""`train search`: fine-tune the cross-encoder on graded judgments, store it as an asset.

Training pairs come from the train queries of the query-disjoint split that `evaluate
search` uses (so no test query is ever trained on): every judged pair, its target the
grade scaled to [0, 1], plus hard negatives, unjudged items among the first stage's top
`depth` for the query, target 0 (the full-catalogue protocol counts unjudged items as
irrelevant). Loss: binary cross-entropy on the logit; the grade the ranker predicts (RMSE
in the report) is a line in `sigmoid(logit)` fitted to the validation queries' judged
pairs. BERT fine-tuning practice: AdamW with a small learning rate, linear warm-up and
decay, gradient clipping, early stopping on the validation queries' full-catalogue
nDCG@10 after reranking, and a time budget that stops with the best weights so far.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)
from scipy.special import expit

from shopkeeper.errors import ConfigError
from shopkeeper.features._encoder import packaged_model_path, require_ml
from shopkeeper.features._text import read_item_texts
from shopkeeper.logging import Stopwatch, get_logger
from shopkeeper.search._cross_encoder import CrossEncoder, RankerPrecision
from shopkeeper.search._data import load_judged, split_queries
from shopkeeper.search._evaluate import SearchEvalConfig, run_full, sample_judged
from shopkeeper.search._fine_tune import fine_tune
from shopkeeper.search._fusion import HybridRetriever
from shopkeeper.search._late_ranker import LateCrossEncoder
from shopkeeper.search._open import has_dense, open_dense, open_lexical
from shopkeeper.search._qrels import Qrels
from shopkeeper.search._ranker_asset import RANKER_ASSET, save_ranker
from shopkeeper.search._rerank import blend_scores, fit_grade, score_rows
from shopkeeper.search._tuned_dense import TUNED_NAME, tuned_helps, tuned_hybrid
from shopkeeper.warehouse import Warehouse

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy.typing as npt

    from shopkeeper.search._data import Judged
    from shopkeeper.search._late_ranker import Ranker
    from shopkeeper.search._retrieve import Ranked, Retriever
    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)


class RankerConfig(BaseModel):
    """How the cross-encoder is trained and served."""

    model_config = ConfigDict(extra="forbid")

    model_path: Path | None = None
    """The sentence-transformers folder whose encoder starts the ranker (default: the
    packaged all-MiniLM-L6-v2)."""
    base: str = "auto"
    """The first stage: `auto` (hybrid-tuned when a fine-tuned bi-encoder beat the
    pre-trained one on validation, else hybrid when item vectors exist, else bm25), bm25,
    hybrid or hybrid-tuned."""
    depth: PositiveInt = 50
    """Candidates per query the ranker reorders (training negatives come from them too)."""
    negatives: NonNegativeInt = 6
    """Unjudged top-`depth` items per train query, trained as irrelevant."""
    epochs: PositiveInt = 2
    batch_size: PositiveInt = 32
    learning_rate: PositiveFloat = 3e-4
    """Default: 3e-4 for the late ranker (one layer and a new head train), 4e-5 for the
    full one (BERT fine-tuning practice)."""
    weight_decay: float = Field(default=0.01, ge=0.0)
    warmup: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Share of the steps with a linear learning-rate warm-up (then linear decay)."""
    max_grad_norm: PositiveFloat = 1.0
    max_length: PositiveInt = 64
    """Tokens per (query, item text) pair."""
    architecture: Literal["late", "full"] = "late"
    """late: the layers below the last read query and item text apart and the last one
    joint, so the items' token states are computed once, stored with the ranker, and a
    search costs one short query pass plus one layer (`LateCrossEncoder`); only that layer
    and the head train. full: query and item text read together by every layer (a
    classic cross-encoder, 3-5x the search time; on Home Depot it gained less)."""
    listwise_queries: PositiveInt = 8
    """late: train queries per step. The late ranker learns listwise: a softmax over each
    query's whole first-stage pool against its judged gains (unjudged: 0), the order the
    full-catalogue metric rewards; the full one learns pointwise (binary cross-entropy
    on `batch_size` pairs)."""
    layers: PositiveInt | None = None
    """Keep only the first this many transformer layers (None: all six of MiniLM): each
    layer dropped cuts training and scoring time by about a sixth (late: the last one
    kept is the joint layer)."""
    eval_every: PositiveInt = 400
    """Steps between validations (and once at the end of each epoch)."""
    patience: NonNegativeInt = 3
    """Validations without improvement before stopping (0: never stop early)."""
    keep_best: bool = True
    """Store the weights of the best validation (False: the last weights)."""
    validation_queries: PositiveInt = 400
    """Validation queries (seeded sample) for early stopping."""
    precision: RankerPrecision = "int8"
    """How the stored ranker serves: int8 (dynamic quantization, measured in `evaluate
    search`) or fp32."""
    threads: PositiveInt | None = None
    """torch intra-op threads (default: torch's choice)."""
    seed: NonNegativeInt = 0

    @model_validator(mode="before")
    @classmethod
    def _default_learning_rate(cls, data: Any) -> Any:
        """The full cross-encoder's default learning rate is BERT practice's 4e-5."""
        full = isinstance(data, dict) and data.get("architecture") == "full"
        if full and "learning_rate" not in data:
            return {**data, "learning_rate": 4e-5}
        return data


def open_base(ws: Workspace, base: str = "auto", tuned: bool = True) -> Retriever:
    """The first stage a trained model learns from: the ranker reorders it, the
    bi-encoder draws hard negatives from it (with `tuned=False`: a new bi-encoder never
    learns from an earlier one's results, and `hybrid-tuned` is no choice).

    Raises:
        ConfigError: an unknown base, or hybrid without item vectors.
    """
    lexical = open_lexical(ws)
    choices = ("auto", "bm25", "hybrid", *(("hybrid-tuned",) if tuned else ()))
    if base not in choices:
        raise ConfigError(f"unknown base {base!r}; use {', '.join(choices)}")
    if tuned and (base == "hybrid-tuned" or (base == "auto" and tuned_helps(ws))):
        return tuned_hybrid(ws, lexical)
    dense_ok = base != "bm25" and has_dense(ws)
    if base == "hybrid" and not dense_ok:
        raise ConfigError("a hybrid base needs item vectors: run `shopkeeper features build`")
    if not dense_ok:
        return lexical
    return HybridRetriever(lexical, open_dense(ws, lexical.item_ids))


def _tuned_version(base: Retriever) -> int | None:
    """The `search_encoder` version a hybrid base retrieves with (None: not fine-tuned)."""
    dense = getattr(base, "dense", None)
    return int(dense.ann.version) if dense is not None and dense.name == TUNED_NAME else None


def catalogue_texts(ws: Workspace, item_ids: list[str]) -> list[str]:
    """Each catalogue row's item text (the item encoder's template)."""
    with Warehouse(ws, read_only=True) as wh:
        return read_item_texts(wh, item_ids)


class _Pairs:
    """Training pairs as arrays: query index, catalogue row, target in [0, 1]."""

    def __init__(
        self,
        judged: Judged,
        qrels: Qrels,
        pool: npt.NDArray[np.int64],
        span: float,
        negatives: int,
        seed: int,
    ) -> None:
        q, rows = qrels.pair_query, qrels.pair_row
        gains = np.clip(qrels.lookup(q, rows[:, None])[0][:, 0] / max(span, 1e-9), 0.0, 1.0)
        judged_key = set(zip(q.tolist(), rows.tolist(), strict=True))
        rng = np.random.default_rng(seed)
        neg_q: list[int] = []
        neg_r: list[int] = []
        for i, cand in enumerate(pool.tolist()):
            free = [r for r in cand if r >= 0 and (i, r) not in judged_key]
            if free and negatives:
                take = rng.choice(len(free), min(negatives, len(free)), replace=False)
                neg_q.extend([i] * len(take))
                neg_r.extend(free[t] for t in take.tolist())
        self.query = np.concatenate([q, np.asarray(neg_q, np.int64)])
        self.row = np.concatenate([rows, np.asarray(neg_r, np.int64)])
        self.target = np.concatenate([gains, np.zeros(len(neg_q))]).astype(np.float32)
        self.judged = len(q)
        self.negatives = len(neg_q)
        self.queries = judged.queries

    def __len__(self) -> int:
        return len(self.query)


BLENDS = tuple(i / 10 for i in range(11))
"""First-stage shares tried on the validation queries (1.0 is the first stage alone)."""


class _Validator:
    """Full-catalogue nDCG@k of the validation queries with their pools reranked by the
    blend of ranker and first stage; the best share on the `BLENDS` grid."""

    def __init__(
        self,
        judged: Judged,
        item_ids: list[str],
        texts: list[str],
        pool: Ranked,
        ev: SearchEvalConfig,
    ) -> None:
        self.queries = judged.queries
        self.texts = texts
        self.qrels = Qrels(judged, item_ids, ev.min_grade, ev.relevant_grade)
        self.rows = pool.rows
        self.base = np.where(pool.rows >= 0, pool.scores, -np.inf).astype(np.float32)
        self.k = ev.k
        self.base_ndcg = self._ndcg(self.base)
        self.blend = 0.0
        """The best first-stage share at the last call."""

    def _ndcg(self, scores: npt.NDArray[np.float32]) -> float:
        order = np.argsort(-scores, axis=1, kind="stable")
        ranked = np.take_along_axis(self.rows, order, axis=1)
        per = self.qrels.full_metrics(ranked, self.k, self.k)[f"nDCG@{self.k}"]
        ok = ~np.isnan(per)
        return float(per[ok].mean()) if ok.any() else 0.0

    def calibrate(self, ranker: Ranker, min_grade: float) -> dict[str, float]:
        """The grade line `a + b·sigmoid(logit)` fitted by least squares to the validation
        queries' judged pairs (their grades; see `fit_grade`)."""
        cand = self.qrels.candidates
        judged = cand >= 0
        logits = score_rows(ranker, self.queries, cand, self.texts)[judged]
        a, b = fit_grade(expit(logits.astype(np.float64)), self.qrels.ideal[judged] + min_grade)
        return {"a": a, "b": b, "pairs": int(judged.sum())}

    def __call__(self, ranker: Ranker) -> float:
        logits = score_rows(ranker, self.queries, self.rows, self.texts)
        found = [(self._ndcg(blend_scores(logits, self.base, w)), -w) for w in BLENDS]
        best, neg_w = max(found)  # ties go to the smaller first-stage share
        self.blend = -neg_w
        return best


def train_ranker(
    ws: Workspace,
    cfg: RankerConfig | None = None,
    time_budget_s: float | None = None,
    eval_cfg: SearchEvalConfig | None = None,
) -> dict[str, Any]:
    """Fine-tune the cross-encoder on the workspace's judged train queries; store it.

    Returns:
        The summary: `asset`, `version`, pair counts, steps, seconds, the validation
        nDCG@10 of the first stage alone and reranked (best), and the history.

    Raises:
        NotFoundError: no queries and judgments.
        ConfigError: no train or validation query has a judged item in the catalogue.
    """
    torch = require_ml("torch")
    cfg = cfg or RankerConfig()
    ev = eval_cfg or SearchEvalConfig()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    timer = Stopwatch()
    base = open_base(ws, cfg.base)
    item_ids = base.item_ids
    texts = catalogue_texts(ws, item_ids)
    judged = load_judged(ws)
    split = split_queries(judged.query_ids, ev.seed, ev.validation_fraction, ev.test_fraction)
    train_q = judged.subset(split == "train")
    val_q = sample_judged(judged.subset(split == "validation"), cfg.validation_queries, cfg.seed)
    if not train_q.query_ids or not val_q.query_ids:
        raise ConfigError("training a ranker needs judged train and validation queries")
    grades = {"min_grade": ev.min_grade, "max_grade": float(judged.pair_relevance.max())}
    train_qrels = Qrels(train_q, item_ids, ev.min_grade, ev.relevant_grade)
    pool = run_full(base, train_q.queries, cfg.depth, 512).rows
    span = grades["max_grade"] - grades["min_grade"]
    pairs = _Pairs(train_q, train_qrels, pool, span, cfg.negatives, cfg.seed)
    if not pairs.judged:
        raise ConfigError("no judged train pair names an item of the catalogue")
    validate = _Validator(val_q, item_ids, texts, run_full(base, val_q.queries, cfg.depth, 512), ev)
    _log.info(
        "ranker training data",
        judged=pairs.judged,
        negatives=pairs.negatives,
        validation=len(val_q.query_ids),
        elapsed=timer,
    )
    model: Ranker
    if cfg.architecture == "late":
        model = LateCrossEncoder.pretrained(cfg.model_path, cfg.seed, cfg.max_length, cfg.layers)
        model.store_states(texts, label="item states for the ranker")
        gains = train_qrels.lookup(np.arange(len(pool)), pool)[0]
        fit = _fit_late(model, pairs, pool, gains, texts, validate, cfg, time_budget_s, timer)
    else:
        model = CrossEncoder.pretrained(cfg.model_path, cfg.seed, cfg.max_length, cfg.layers)
        fit = _fit(model, pairs, texts, validate, cfg, time_budget_s, timer)
    # Trained on negatives too, sigmoid(logit) runs low on judged (mostly relevant) pairs:
    # the grade it predicts is read off a line fitted on validation, not the raw scale.
    calibration = validate.calibrate(model, ev.min_grade)
    params = {
        "model": "cross-encoder",
        "architecture": cfg.architecture,
        "config": cfg.model_dump(mode="json"),
        "base": base.name,
        "fusion": base.cfg.model_dump(mode="json") if isinstance(base, HybridRetriever) else None,
        "tuned_encoder": _tuned_version(base),
        "initialized_from": str(cfg.model_path or packaged_model_path().name),
        "split": {k: getattr(ev, k) for k in ("seed", "validation_fraction", "test_fraction")},
        "grades": grades,
        "calibration": calibration,
        "pairs": {"judged": pairs.judged, "negatives": pairs.negatives},
        "time_budget_s": time_budget_s,
        **{k: v for k, v in fit.items() if k not in ("history",)},
    }
    version = save_ranker(ws, model, params, fit["history"], base, judged)
    return {
        "asset": RANKER_ASSET,
        "version": version,
        "model": "cross-encoder",
        "base": base.name,
        "train_queries": len(train_q.query_ids),
        "validation_queries": len(val_q.query_ids),
        "judged_pairs": pairs.judged,
        "negative_pairs": pairs.negatives,
        "seconds": round(timer.seconds, 1),
        "time_budget_s": time_budget_s,
        **fit,
    }


def _fit(
    ce: CrossEncoder,
    pairs: _Pairs,
    texts: list[str],
    validate: _Validator,
    cfg: RankerConfig,
    budget_s: float | None,
    timer: Stopwatch,
) -> dict[str, Any]:
    """The training loop; leaves the best weights in `ce.model`."""
    torch = require_ml("torch")
    bce = torch.nn.functional.binary_cross_entropy_with_logits

    def loss_of(idx: npt.NDArray[np.int64]) -> Any:
        batch = ce.tokenize(
            [pairs.queries[i] for i in pairs.query[idx].tolist()],
            [texts[r] for r in pairs.row[idx].tolist()],
        )
        return bce(ce.logits(batch), torch.from_numpy(pairs.target[idx]))

    return _loop(ce, validate, cfg, budget_s, timer, np.arange(len(pairs)), cfg.batch_size, loss_of)


def _fit_late(
    ce: LateCrossEncoder,
    pairs: _Pairs,
    pool: npt.NDArray[np.int64],
    gains: npt.NDArray[np.float64],
    texts: list[str],
    validate: _Validator,
    cfg: RankerConfig,
    budget_s: float | None,
    timer: Stopwatch,
) -> dict[str, Any]:
    """The late ranker's loop: listwise over each train query's pool (`pool`: catalogue
    rows, -1 padded; `gains`: their judged gains), on the lower layers' states of the items
    (stored) and of the train queries, computed once; only the top trains."""
    torch = require_ml("torch")
    items = ce.states
    assert items is not None
    entry = items.find(texts)  # catalogue row -> stored item entry
    queries = ce.query_states(pairs.queries)
    useful = np.nonzero((gains > 0).any(axis=1))[0]  # a judged item in the pool to learn

    def loss_of(q_idx: npt.NDArray[np.int64]) -> Any:
        rows = pool[q_idx]
        valid = rows >= 0
        q_of = np.broadcast_to(q_idx[:, None], rows.shape)[valid]
        logits = ce.joint_logits(queries, q_of, items, entry[rows[valid]])
        full = torch.full(rows.shape, -1e4).masked_scatter(torch.from_numpy(valid), logits)
        g = torch.from_numpy(np.where(valid, gains[q_idx], 0.0).astype(np.float32))
        target = g / g.sum(dim=1, keepdim=True)
        return -(target * torch.log_softmax(full, dim=1)).sum(dim=1).mean()

    return _loop(ce, validate, cfg, budget_s, timer, useful, cfg.listwise_queries, loss_of)


def _loop(
    ce: Ranker,
    validate: _Validator,
    cfg: RankerConfig,
    budget_s: float | None,
    timer: Stopwatch,
    items: npt.NDArray[np.int64],
    size: int,
    loss_of: Callable[[npt.NDArray[np.int64]], Any],
) -> dict[str, Any]:
    """`fine_tune` on `items` (pair or query indices) shuffled each epoch and cut into
    batches of `size`; the summary and the history."""

    def batches(rng: np.random.Generator) -> list[npt.NDArray[np.int64]]:
        order = rng.permutation(items)
        return [order[s : s + size] for s in range(0, len(order), size)]

    fitted = fine_tune(
        ce.model,
        cfg,
        math.ceil(len(items) / size),
        batches,
        loss_of,
        lambda: validate(ce),
        budget_s,
        timer,
        "ranker",
        notes=lambda: {"blend": validate.blend},
    )
    return {
        **fitted.summary(),
        "validation_ndcg_base": round(validate.base_ndcg, 4),
        "validation_ndcg": round(fitted.best, 4),
        "blend": fitted.best_notes["blend"],
        "history": fitted.history,
    }
