"""`evaluate search`: BM25, dense and hybrid retrieval on judged queries, two protocols.

Queries are split query-disjointly (`split_queries`): fusion weights are tuned on the
validation queries, every figure is measured on the test queries. Two protocols:

- full: each model ranks the whole catalogue; unjudged items have gain 0. nDCG@10,
  Recall@100, MRR@10.
- rerank: each model only orders the query's judged items. nDCG@10, MRR@10. The judged
  items are mostly relevant, so even a random order scores high here.

RMSE is of the relevance grade a model predicts for each judged test pair: the learned
ranker (`train search`) predicts one; the report also gives the reference a predictor must
beat, the train queries' mean grade. The ranker is evaluated at its serving precision
(`ranker`, int8 by default) and in fp32 (`ranker-fp32`), on the split it was trained with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt

from shopkeeper.errors import ConfigError
from shopkeeper.logging import Stopwatch, get_logger
from shopkeeper.search._data import SPLITS, load_judged, split_queries
from shopkeeper.search._fusion import FusionConfig, HybridRetriever, fuse, rank_candidates
from shopkeeper.search._ltr import LTR_ASSET, ltr_params, open_ltr
from shopkeeper.search._metrics import rmse
from shopkeeper.search._open import has_dense, open_dense, open_lexical
from shopkeeper.search._qrels import Qrels
from shopkeeper.search._ranker_asset import RANKER_ASSET, open_reranked, stored_params
from shopkeeper.search._rerank import RerankedRetriever
from shopkeeper.search._retrieve import CHUNK, LexicalRetriever, Ranked, top_k
from shopkeeper.search._tuned_dense import TUNED_ASSET, open_tuned_dense, tuned_params

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

    from shopkeeper.features import ItemEncoder
    from shopkeeper.search._cross_encoder import RankerPrecision
    from shopkeeper.search._data import Judged
    from shopkeeper.search._retrieve import DenseRetriever, Retriever
    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)

ModelName = Literal[
    "random",
    "bm25",
    "bm25-nospell",
    "dense",
    "hybrid",
    "dense-tuned",
    "hybrid-tuned",
    "ranker",
    "ranker-fp32",
    "ltr",
]
SEARCH_MODELS: tuple[ModelName, ...] = get_args(ModelName)
RANKERS = ("ranker", "ranker-fp32")
TUNED = ("dense-tuned", "hybrid-tuned")
"""Dense and hybrid with the fine-tuned bi-encoder of `train search --model bi-encoder`."""


class SearchEvalConfig(BaseModel):
    """The evaluation protocol."""

    model_config = ConfigDict(extra="forbid")

    seed: NonNegativeInt = 0
    """Seeds the query split and the rerank tie order."""
    validation_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    """Share of queries used to tune fusion weights."""
    test_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    """Share of queries every figure is measured on."""
    k: PositiveInt = 10
    """The cut-off of nDCG and MRR."""
    recall_k: PositiveInt = 100
    """The cut-off of Recall."""
    min_grade: float = 1.0
    """The grade meaning irrelevant (Home Depot: 1); gain = grade - min_grade."""
    relevant_grade: float = 2.0
    """The least grade that counts as relevant for Recall and MRR."""
    fusion_weights: list[float] = Field(default_factory=lambda: [i / 10 for i in range(11)])
    """BM25 shares tried for each fusion method on the validation queries."""
    rrf_k: PositiveInt = 60
    """Reciprocal rank fusion's rank offset."""
    candidates: PositiveInt = 100
    """Items each retriever contributes to hybrid candidates."""
    batch_size: PositiveInt = 1024
    """Queries per batch."""
    max_queries: PositiveInt | None = None
    """Evaluate at most this many test (and validation) queries (seeded sample)."""


def _batched(model: Retriever, queries: Sequence[str], fn: Any, batch: int) -> list[Any]:
    return [fn(model.encode(queries[s : s + batch]), s) for s in range(0, len(queries), batch)]


def run_full(model: Retriever, queries: Sequence[str], k: int, batch: int) -> Ranked:
    """Each query's top `k` catalogue rows, in batches."""
    parts = _batched(model, queries, lambda e, _s: model.retrieve(e, k), batch)
    return Ranked(
        np.concatenate([p.rows for p in parts]), np.concatenate([p.scores for p in parts])
    )


def run_rerank(
    model: Retriever, queries: Sequence[str], rows: npt.NDArray[np.int64], batch: int
) -> npt.NDArray[np.float32]:
    """Scores of each query's candidate rows, in batches."""
    parts = _batched(model, queries, lambda e, s: model.score(e, rows[s : s + batch]), batch)
    return np.concatenate(parts) if parts else np.zeros(rows.shape, np.float32)


def _rerank_parts(
    model: RerankedRetriever, queries: Sequence[str], rows: npt.NDArray[np.int64], batch: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The final scores and the ranker's logits of each query's candidate rows."""
    final, logits = [], []
    for s in range(0, len(queries), batch):
        lg, sc = model.score_parts(model.encode(queries[s : s + batch]), rows[s : s + batch])
        final.append(sc)
        logits.append(lg)
    if not final:
        return np.zeros(rows.shape, np.float32), np.zeros(rows.shape, np.float32)
    return np.concatenate(final), np.concatenate(logits)


def _summary(per_query: dict[str, npt.NDArray[np.float64]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, v in per_query.items():
        ok = ~np.isnan(v)
        out[name] = round(float(v[ok].mean()), 4) if ok.any() else None
    return out


def sample_judged(judged: Judged, n: int | None, seed: int) -> Judged:
    """`n` of the queries (seeded; all of them when `n` is None or not smaller)."""
    if n is None or n >= len(judged.query_ids):
        return judged
    keep = np.zeros(len(judged.query_ids), dtype=bool)
    keep[np.random.default_rng(seed).choice(len(keep), n, replace=False)] = True
    return judged.subset(keep)


def tune_fusion(
    hybrid: HybridRetriever, judged: Judged, qrels: Qrels, cfg: SearchEvalConfig
) -> tuple[FusionConfig, list[dict[str, Any]]]:
    """The fusion method and BM25 share with the best validation nDCG@k (and the grid)."""
    rows_l, lex_l, den_l = [], [], []
    for s in range(0, len(judged.queries), cfg.batch_size):
        enc = hybrid.encode(judged.queries[s : s + cfg.batch_size])
        rows = hybrid.candidates(enc)
        lex, den = hybrid.both_scores(enc, rows)
        rows_l.append(rows)
        lex_l.append(lex)
        den_l.append(den)
    width = max(r.shape[1] for r in rows_l)
    rows = np.concatenate(
        [np.pad(r, ((0, 0), (0, width - r.shape[1])), constant_values=-1) for r in rows_l]
    )
    lex = np.concatenate([np.pad(x, ((0, 0), (0, width - x.shape[1]))) for x in lex_l])
    den = np.concatenate([np.pad(x, ((0, 0), (0, width - x.shape[1]))) for x in den_l])
    grid, best, best_val = [], hybrid.cfg, -1.0
    for method in ("rrf", "linear"):
        for w in cfg.fusion_weights:
            fc = hybrid.cfg.model_copy(update={"method": method, "weight": w})
            ranked = rank_candidates(rows, fuse(lex, den, rows >= 0, fc), cfg.k)
            val = _summary(qrels.full_metrics(ranked.rows, cfg.k, cfg.k))[f"nDCG@{cfg.k}"] or 0.0
            grid.append({"method": method, "weight": w, f"nDCG@{cfg.k}": val})
            if val > best_val:
                best, best_val = fc, val
    return best, grid


def evaluate_search(
    ws: Workspace,
    models: Sequence[ModelName] = ("random", "bm25", "dense", "hybrid"),
    cfg: SearchEvalConfig | None = None,
    encoder: ItemEncoder | None = None,
    per_query: bool = False,
) -> dict[str, Any]:
    """Evaluate search models on the workspace's judged queries.

    Args:
        ws: A workspace with items, queries and judgments.
        models: Which models; dense and hybrid need `features build` first.
        cfg: The protocol.
        encoder: The query encoder (default: the one the item vectors were made with).
        per_query: Add every test query's figures under `per_query`.

    Returns:
        The report: `data`, `protocol`, `models` (each with `full` and `rerank` figures,
        `seconds` and `queries_per_second`), `fusion` (the tuned setting and the grid),
        `rmse` references, and optionally `per_query` rows.

    Raises:
        ConfigError: an unknown model, or dense/hybrid without an item index.
    """
    cfg = cfg or SearchEvalConfig()
    unknown = [m for m in models if m not in SEARCH_MODELS]
    if unknown:
        raise ConfigError(f"unknown search model(s) {unknown}; known: {list(SEARCH_MODELS)}")
    lexical = open_lexical(ws)
    item_ids = lexical.item_ids
    judged = load_judged(ws)
    split = split_queries(judged.query_ids, cfg.seed, cfg.validation_fraction, cfg.test_fraction)
    parts = {s: judged.subset(split == s) for s in SPLITS}
    test = sample_judged(parts["test"], cfg.max_queries, cfg.seed)
    val = sample_judged(parts["validation"], cfg.max_queries, cfg.seed + 1)
    qrels = Qrels(test, item_ids, cfg.min_grade, cfg.relevant_grade)
    dense: DenseRetriever | None = None
    tuned: DenseRetriever | None = None
    if any(m in RANKERS for m in models):
        _check_trained_split(RANKER_ASSET, stored_params(ws), cfg)
    if "ltr" in models:
        _check_trained_split(LTR_ASSET, ltr_params(ws), cfg)
    if any(m in TUNED for m in models):
        _check_trained_split(TUNED_ASSET, tuned_params(ws), cfg)
        tuned = open_tuned_dense(ws, item_ids)
    if any(m in ("dense", "hybrid") for m in models):
        if not has_dense(ws):
            raise ConfigError("dense and hybrid need item vectors: run `shopkeeper features build`")
        dense = open_dense(ws, item_ids, encoder)
    report: dict[str, Any] = {
        "data": {
            "items": len(item_ids),
            "search_index_version": lexical.index.version,
            "queries_version": judged.queries_version,
            "judgments_version": judged.judgments_version,
            "queries": {s: len(p.query_ids) for s, p in parts.items()},
            "evaluated_queries": len(test.query_ids),
            "judged_pairs": len(qrels.gain),
        },
        "protocol": cfg.model_dump(mode="json"),
        "models": [],
    }
    rows: list[dict[str, Any]] = []
    for name in models:
        if name in RANKERS:
            precision: RankerPrecision | None = "fp32" if name == "ranker-fp32" else None
            model: Retriever | None = open_reranked(ws, lexical, dense, precision)
            extra = None
        elif name == "ltr":
            model, extra = open_ltr(ws, lexical, encoder=encoder), None
        else:
            side = tuned if name in TUNED else dense
            model, extra = _model(name.removesuffix("-tuned"), lexical, side, val, item_ids, cfg)
        if extra:
            report["fusion_tuned" if name in TUNED else "fusion"] = extra
        result, per = _evaluate_one(name, model, test, qrels, cfg, len(item_ids))
        report["models"].append(result)
        if per_query:
            rows.extend(_rows(name, test, per))
    report["rmse"] = _rmse_reference(parts["train"], test, cfg)
    if per_query:
        report["per_query"] = rows
    return report


def _model(
    name: str,
    lexical: LexicalRetriever,
    dense: DenseRetriever | None,
    val: Judged,
    item_ids: list[str],
    cfg: SearchEvalConfig,
) -> tuple[Retriever | None, dict[str, Any] | None]:
    if name == "random":
        return None, None
    if name == "bm25":
        return lexical, None
    if name == "bm25-nospell":
        return LexicalRetriever(lexical.index, spelling=False), None
    assert dense is not None
    if name == "dense":
        return dense, None
    base = FusionConfig(rrf_k=cfg.rrf_k, candidates=cfg.candidates)
    hybrid = HybridRetriever(lexical, dense, base)
    vqrels = Qrels(val, item_ids, cfg.min_grade, cfg.relevant_grade)
    timer = Stopwatch()
    hybrid.cfg, grid = tune_fusion(hybrid, val, vqrels, cfg)
    _log.info("tuned fusion", method=hybrid.cfg.method, weight=hybrid.cfg.weight, elapsed=timer)
    return hybrid, {
        "chosen": hybrid.cfg.model_dump(mode="json"),
        "validation_queries": len(val.query_ids),
        "grid": grid,
    }


def _evaluate_one(
    name: str,
    model: Retriever | None,
    test: Judged,
    qrels: Qrels,
    cfg: SearchEvalConfig,
    n_items: int,
) -> tuple[dict[str, Any], dict[str, dict[str, npt.NDArray[np.float64]]]]:
    depth = max(cfg.k, cfg.recall_k)
    timer = Stopwatch()
    if model is None:
        rng = np.random.default_rng(cfg.seed)
        n = len(test.queries)
        ranked = np.concatenate(
            [
                top_k(rng.random((min(CHUNK, n - s), n_items), dtype=np.float32), depth).rows
                for s in range(0, n, CHUNK)
            ]
            or [np.zeros((0, min(depth, n_items)), np.int64)]
        )
        cand_scores = rng.random(qrels.candidates.shape).astype(np.float32)
    else:
        ranked = run_full(model, test.queries, depth, cfg.batch_size).rows
    seconds = timer.seconds
    logits = None
    if isinstance(model, RerankedRetriever):
        cand_scores, logits = _rerank_parts(model, test.queries, qrels.candidates, cfg.batch_size)
    elif model is not None:
        cand_scores = run_rerank(model, test.queries, qrels.candidates, cfg.batch_size)
    full = qrels.full_metrics(ranked, cfg.k, cfg.recall_k)
    rerank = qrels.rerank_metrics(cand_scores, cfg.k, cfg.seed)
    result: dict[str, Any] = {
        "model": name if model is None else model.name,
        "full": _summary(full),
        "rerank": _summary(rerank),
        "seconds": round(seconds, 3),
        "queries_per_second": round(len(test.queries) / seconds, 1) if seconds > 0 else None,
    }
    if isinstance(model, RerankedRetriever) and model.grades is not None and logits is not None:
        judged = qrels.candidates >= 0
        predicted = model.grade(logits[judged])
        result["rmse"] = round(rmse(predicted, qrels.ideal[judged] + cfg.min_grade), 4)
    _log.info("evaluated search model", model=result["model"], **result["full"])
    return result, {"full": full, "rerank": rerank}


def _rows(
    name: str, test: Judged, per: dict[str, dict[str, npt.NDArray[np.float64]]]
) -> list[dict[str, Any]]:
    cols = {f"{p}_{m}": v for p, ms in per.items() for m, v in ms.items()}
    out = []
    for i, (qid, q) in enumerate(zip(test.query_ids, test.queries, strict=True)):
        row: dict[str, Any] = {"model": name, "query_id": qid, "query": q}
        for c, v in cols.items():
            row[c] = None if np.isnan(v[i]) else round(float(v[i]), 6)
        out.append(row)
    return out


def _check_trained_split(asset: str, params: dict[str, Any], cfg: SearchEvalConfig) -> None:
    """A stored trained model (ranker or bi-encoder, by its `params`) must be tested on the
    split it was trained with (else test queries may be among its training queries).

    Raises:
        ConfigError: the protocol's split differs from the model's.
    """
    trained = params["split"]
    asked = {k: getattr(cfg, k) for k in trained}
    if asked != trained:
        raise ConfigError(
            f"the {asset} was trained on the split {trained}; evaluating it on "
            f"{asked} would test it on its own training queries"
        )


def _rmse_reference(train: Judged, test: Judged, cfg: SearchEvalConfig) -> dict[str, Any]:
    mean = float(train.pair_relevance.mean()) if len(train.pair_relevance) else cfg.min_grade
    pred = np.full(len(test.pair_relevance), mean)
    return {
        "constant_train_mean": round(rmse(pred, test.pair_relevance), 4),
        "mean": round(mean, 4),
    }
