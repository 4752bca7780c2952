"""`train search --model bi-encoder`: fine-tune the query/item encoder contrastively.

Dense retrieval itself gets better when the encoder learns the shop's queries. Training
uses the train queries of the query-disjoint split `evaluate search` uses (no test
query is trained on). Each epoch takes, per train query, one relevant judged item
(grade >= `relevant_grade`, drawn in proportion to its gain) and one hard negative (an
unjudged item among the first stage's top `depth`); the loss is sentence-transformers'
MultipleNegativesRankingLoss (InfoNCE): each query must pick its item out of every item
and hard negative in the batch. BERT fine-tuning practice: AdamW with a small learning
rate, linear warm-up and decay, gradient clipping, early stopping on validation nDCG@10
and a time budget that stops with the best weights.

Validation ranks, for each validation query, its first-stage pool plus its judged items
by the encoder's cosine (nDCG@10, unjudged items irrelevant): encoding a pool of a few
thousand items is affordable every few hundred steps, the whole catalogue is not. The
best weights then encode the whole catalogue once, with the serving encoder settings
(ONNX int8 by default, as `features build` does), into the `search_encoder` asset.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveFloat, PositiveInt

from shopkeeper.errors import ConfigError
from shopkeeper.features import AnnIndex, EncoderConfig, IndexConfig, ItemEncoder, build_ann
from shopkeeper.features._encoder import packaged_model_path, require_ml
from shopkeeper.logging import Stopwatch, get_logger
from shopkeeper.search._data import load_judged, split_queries
from shopkeeper.search._evaluate import SearchEvalConfig, run_full, sample_judged, tune_fusion
from shopkeeper.search._fine_tune import fine_tune
from shopkeeper.search._fusion import FusionConfig, HybridRetriever
from shopkeeper.search._qrels import Qrels
from shopkeeper.search._retrieve import DenseRetriever, LexicalRetriever, top_k
from shopkeeper.search._train_ranker import catalogue_texts, open_base
from shopkeeper.search._tuned_dense import TUNED_ASSET, TUNED_NAME, save_tuned

if TYPE_CHECKING:
    import numpy.typing as npt
    from sentence_transformers import SentenceTransformer

    from shopkeeper.search._data import Judged
    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)


class BiEncoderConfig(BaseModel):
    """How the bi-encoder is fine-tuned and how its vectors are made."""

    model_config = ConfigDict(extra="forbid")

    model_path: Path | None = None
    """The sentence-transformers folder to start from (default: the packaged
    all-MiniLM-L6-v2, the model `features build` encodes items with)."""
    base: str = "auto"
    """The first stage hard negatives come from: auto (hybrid when item vectors exist,
    else bm25), bm25 or hybrid."""
    depth: PositiveInt = 30
    """Top first-stage items per query that hard negatives are drawn from (and that the
    validation pools hold)."""
    hard_negatives: bool = True
    """One hard negative per query in each batch (False: in-batch negatives only)."""
    epochs: PositiveInt = 3
    """Passes over the train queries (one relevant item each per pass)."""
    batch_size: PositiveInt = 32
    """Queries per step: each sees 2 x batch_size candidate items."""
    learning_rate: PositiveFloat = 2e-5
    weight_decay: float = Field(default=0.01, ge=0.0)
    warmup: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Share of the steps with a linear learning-rate warm-up (then linear decay)."""
    max_grad_norm: PositiveFloat = 1.0
    scale: PositiveFloat = 20.0
    """Inverse temperature of the contrastive softmax over cosine similarities."""
    max_length: PositiveInt = 64
    """Tokens per item text (queries are shorter), in training and in the stored model."""
    eval_every: PositiveInt = 150
    """Steps between validations (and once at the end of each epoch)."""
    patience: NonNegativeInt = 3
    """Validations without improvement before stopping (0: never stop early)."""
    keep_best: bool = True
    """Store the weights of the best validation (False: the last weights)."""
    validation_queries: PositiveInt = 200
    """Validation queries (seeded sample) for early stopping."""
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    """How the stored model encodes the catalogue and the queries (backend, precision,
    batch size); `model_path` is ignored (the trained model is used)."""
    threads: PositiveInt | None = None
    """torch intra-op threads (default: torch's choice)."""
    seed: NonNegativeInt = 0


class _Examples:
    """Per train query: its relevant rows with gains, and its unjudged pool rows."""

    def __init__(self, judged: Judged, qrels: Qrels, pool: npt.NDArray[np.int64]) -> None:
        self.texts = judged.queries
        q, rows = qrels.pair_query, qrels.pair_row
        gain, rel = qrels.lookup(q, rows[:, None])
        keep = rel[:, 0]
        self.positives: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]] = {}
        for i in np.unique(q[keep]).tolist():
            m = keep & (q == i)
            self.positives[i] = (rows[m], np.maximum(gain[m, 0], 1e-6))
        seen = set(zip(q.tolist(), rows.tolist(), strict=True))
        self.negatives = {
            i: np.asarray([r for r in cand if r >= 0 and (i, r) not in seen], np.int64)
            for i, cand in enumerate(pool.tolist())
        }
        self.pairs = int(keep.sum())

    @property
    def queries(self) -> int:
        """Train queries with at least one relevant item (one example each per epoch)."""
        return len(self.positives)

    def epoch(
        self, rng: np.random.Generator, n_items: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Shuffled (query, positive row, hard negative row) triples, one per query."""
        qs = rng.permutation(np.fromiter(self.positives, np.int64, len(self.positives)))
        pos = np.empty(len(qs), np.int64)
        neg = np.empty(len(qs), np.int64)
        for j, i in enumerate(qs.tolist()):
            rows, gains = self.positives[i]
            pos[j] = rows[rng.choice(len(rows), p=gains / gains.sum())]
            free = self.negatives.get(i)
            neg[j] = free[rng.integers(len(free))] if free is not None and len(free) else -1
        missing = neg < 0
        neg[missing] = rng.integers(n_items, size=int(missing.sum()))
        return qs, pos, neg


class _Validator:
    """nDCG@k of the validation queries over their pools (first stage top `depth` plus
    their judged items) ranked by the encoder's cosine."""

    def __init__(self, judged: Judged, qrels: Qrels, pool: npt.NDArray[np.int64], k: int) -> None:
        self.queries = judged.queries
        self.qrels = qrels
        both = np.concatenate([pool, qrels.candidates], axis=1)
        rows = np.full(both.shape, -1, np.int64)
        for i, cand in enumerate(both.tolist()):
            uniq = list(dict.fromkeys(r for r in cand if r >= 0))
            rows[i, : len(uniq)] = uniq
        self.items, inverse = np.unique(rows[rows >= 0], return_inverse=True)
        self.slots = np.full(rows.shape, -1, np.int64)
        self.slots[rows >= 0] = inverse
        self.rows = rows
        self.k = k

    def __call__(self, model: SentenceTransformer, texts: list[str]) -> float:
        torch = require_ml("torch")
        model.eval()
        with torch.inference_mode():
            items = model.encode(
                [texts[r] for r in self.items.tolist()],
                batch_size=64,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            q = model.encode(
                list(self.queries),
                batch_size=128,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        scores = np.einsum("qcd,qd->qc", items[np.maximum(self.slots, 0)], q)
        scores = np.where(self.slots >= 0, scores, -np.inf).astype(np.float32)
        best = top_k(scores, self.k)
        ranked = np.where(best.rows >= 0, np.take_along_axis(self.rows, best.rows, 1), -1)
        per = self.qrels.full_metrics(ranked, self.k, self.k)[f"nDCG@{self.k}"]
        ok = ~np.isnan(per)
        return float(per[ok].mean()) if ok.any() else 0.0


def train_bi_encoder(
    ws: Workspace,
    cfg: BiEncoderConfig | None = None,
    time_budget_s: float | None = None,
    eval_cfg: SearchEvalConfig | None = None,
) -> dict[str, Any]:
    """Fine-tune the bi-encoder on the workspace's judged train queries; store it with
    the catalogue encoded by it.

    `time_budget_s` bounds the training loop; encoding the catalogue afterwards takes
    as long as `features build` takes for it.

    Returns:
        The summary: `asset`, `version`, example counts, steps, seconds, the validation
        nDCG@10 before training and at the best step, and the history.

    Raises:
        NotFoundError: no queries and judgments.
        ConfigError: no train query has a relevant judged item, or no validation query.
    """
    torch = require_ml("torch")
    st = require_ml("sentence_transformers")
    cfg = cfg or BiEncoderConfig()
    ev = eval_cfg or SearchEvalConfig()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    timer = Stopwatch()
    base = open_base(ws, cfg.base, tuned=False)
    item_ids = base.item_ids
    texts = catalogue_texts(ws, item_ids)
    judged = load_judged(ws)
    split = split_queries(judged.query_ids, ev.seed, ev.validation_fraction, ev.test_fraction)
    train_q = judged.subset(split == "train")
    val_q = sample_judged(judged.subset(split == "validation"), cfg.validation_queries, cfg.seed)
    if not train_q.query_ids or not val_q.query_ids:
        raise ConfigError("training a bi-encoder needs judged train and validation queries")
    train_qrels = Qrels(train_q, item_ids, ev.min_grade, ev.relevant_grade)
    examples = _Examples(train_q, train_qrels, run_full(base, train_q.queries, cfg.depth, 512).rows)
    if not examples.queries:
        raise ConfigError("no train query has a relevant judged item in the catalogue")
    val_qrels = Qrels(val_q, item_ids, ev.min_grade, ev.relevant_grade)
    val_pool = run_full(base, val_q.queries, cfg.depth, 512).rows
    validate = _Validator(val_q, val_qrels, val_pool, ev.k)
    _log.info(
        "bi-encoder training data",
        queries=examples.queries,
        relevant_pairs=examples.pairs,
        validation=len(val_q.query_ids),
        validation_items=len(validate.items),
        elapsed=timer,
    )
    start = cfg.model_path or packaged_model_path()
    model = st.SentenceTransformer(str(start), device="cpu", local_files_only=True)
    model.max_seq_length = cfg.max_length
    fit = _fit(model, examples, texts, validate, cfg, time_budget_s, timer)
    # Not under the workspace's tmp: an ingest sweeps that while the catalogue encodes.
    with tempfile.TemporaryDirectory(prefix="shopkeeper-bi-encoder-") as tmp:
        folder = Path(tmp) / "model"
        model.save(str(folder))
        encoder_cfg = cfg.encoder.model_copy(update={"model_path": folder})
        encode_timer = Stopwatch()
        query_encoder = ItemEncoder(encoder_cfg)
        vectors = query_encoder.encode(texts)
        encode_s = round(encode_timer.seconds, 1)
        index, kind = build_ann(vectors, IndexConfig())
        lexical = base.lexical if isinstance(base, HybridRetriever) else base
        assert isinstance(lexical, LexicalRetriever)
        tuned = DenseRetriever(AnnIndex(index, item_ids, kind), query_encoder, item_ids, TUNED_NAME)
        start_fusion = FusionConfig(rrf_k=ev.rrf_k, candidates=ev.candidates)
        hybrid = HybridRetriever(lexical, tuned, start_fusion)
        fusion, grid = tune_fusion(hybrid, val_q, val_qrels, ev)
        params = {
            "model": "bi-encoder",
            "config": cfg.model_dump(mode="json"),
            "base": base.name,
            "initialized_from": str(cfg.model_path or packaged_model_path().name),
            "split": {k: getattr(ev, k) for k in ("seed", "validation_fraction", "test_fraction")},
            "examples": {"queries": examples.queries, "relevant_pairs": examples.pairs},
            "time_budget_s": time_budget_s,
            "encode_seconds": encode_s,
            "fusion": fusion.model_dump(mode="json"),
            "fusion_grid": grid,
            **fit,
        }
        version = save_tuned(
            ws,
            folder,
            encoder_cfg,
            AnnIndex(index, item_ids, kind),
            int(vectors.shape[1]),
            params,
            judged,
            int(lexical.index.version) if lexical.index.version else None,
        )
    return {
        "asset": TUNED_ASSET,
        "version": version,
        "model": "bi-encoder",
        "base": base.name,
        "train_queries": len(train_q.query_ids),
        "validation_queries": len(val_q.query_ids),
        "example_queries": examples.queries,
        "relevant_pairs": examples.pairs,
        "encode_seconds": encode_s,
        "fusion": fusion.model_dump(mode="json"),
        "seconds": round(timer.seconds, 1),
        "time_budget_s": time_budget_s,
        **fit,
    }


def _features(model: SentenceTransformer, texts: list[str]) -> dict[str, Any]:
    return dict(model.preprocess(texts))


def _fit(
    model: SentenceTransformer,
    examples: _Examples,
    texts: list[str],
    validate: _Validator,
    cfg: BiEncoderConfig,
    budget_s: float | None,
    timer: Stopwatch,
) -> dict[str, Any]:
    """The training loop; leaves the best weights in `model`."""
    losses_mod = require_ml("sentence_transformers.sentence_transformer.losses")
    loss_fn = losses_mod.MultipleNegativesRankingLoss(model, scale=cfg.scale)

    def batches(rng: np.random.Generator) -> list[npt.NDArray[np.int64]]:
        triples = np.stack(examples.epoch(rng, len(texts)), axis=1)  # (query, pos, neg) rows
        return [triples[s : s + cfg.batch_size] for s in range(0, len(triples), cfg.batch_size)]

    def loss_of(batch: npt.NDArray[np.int64]) -> Any:
        qs, pos, neg = batch.T.tolist()
        columns = [[examples.texts[i] for i in qs], [texts[r] for r in pos]]
        if cfg.hard_negatives:
            columns.append([texts[r] for r in neg])
        return loss_fn([_features(model, c) for c in columns], None)

    fitted = fine_tune(
        model,
        cfg,
        math.ceil(examples.queries / cfg.batch_size),
        batches,
        loss_of,
        lambda: validate(model, texts),
        budget_s,
        timer,
        "bi-encoder",
    )
    return {
        **fitted.summary(),
        "validation_ndcg_base": round(fitted.start, 4),
        "validation_ndcg": round(fitted.best, 4),
        "history": fitted.history,
    }
