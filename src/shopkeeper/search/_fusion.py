"""Hybrid retrieval: BM25 and dense candidates merged, then fused by rank or by score.

The candidates of a query are the union of each retriever's top `candidates` items; both
retrievers then score every candidate, so the fusion sees both signals for each item.

- Reciprocal rank fusion: `w / (k + rank_bm25) + (1 - w) / (k + rank_dense)`, ranks from
  1 within the candidates; an item with no query term in it gets no BM25 share.
- Linear fusion: `w * bm25' + (1 - w) * dense'`, each score min-max normalized over the
  query's candidates.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from shopkeeper.search._retrieve import CHUNK, Ranked, gather, masked, top_k

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

    from shopkeeper.search._retrieve import DenseRetriever, LexicalRetriever

FusionMethod = Literal["rrf", "linear"]


class FusionConfig(BaseModel):
    """How BM25 and dense results are merged."""

    model_config = ConfigDict(extra="forbid")

    method: FusionMethod = "linear"
    """rrf (by rank) or linear (by min-max normalized score)."""
    weight: float = Field(default=0.8, ge=0.0, le=1.0)
    """BM25's share; the dense retriever gets the rest. The default is the best on the Home
    Depot validation queries with all-MiniLM-L6-v2 (`evaluate search` tunes it per run)."""
    rrf_k: PositiveInt = 60
    """The rank offset of reciprocal rank fusion."""
    candidates: PositiveInt = 100
    """Items each retriever contributes to a query's candidates."""


def _ranks(scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """1-based rank of each entry in its row, best first (ties by column)."""
    order = np.lexsort((np.arange(scores.shape[1])[None, :].repeat(len(scores), 0), -scores))
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, scores.shape[1] + 1)[None, :], axis=1)
    return ranks.astype(np.float64)


def minmax(scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Each row min-max normalized over its finite entries (0 elsewhere)."""
    valid = np.isfinite(scores)
    lo = np.where(valid, scores, np.inf).min(axis=1, keepdims=True)
    hi = np.where(valid, scores, -np.inf).max(axis=1, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    return np.where(valid, (scores - lo) / span, 0.0)


def fuse(
    lexical: npt.NDArray[np.float32],
    dense: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    cfg: FusionConfig,
) -> npt.NDArray[np.float32]:
    """Fused scores of candidates (queries, candidates); -inf where not `valid`.

    >>> lex = np.array([[3.0, 0.0, 1.0]], dtype=np.float32)
    >>> den = np.array([[0.1, 0.9, 0.5]], dtype=np.float32)
    >>> ok = np.ones((1, 3), bool)
    >>> lin = fuse(lex, den, ok, FusionConfig(method="linear", weight=0.5))
    >>> lin.astype(np.float64).round(3).tolist()
    [[0.5, 0.5, 0.417]]
    >>> rrf = fuse(lex, den, ok, FusionConfig(method="rrf", weight=0.5, rrf_k=1))
    >>> rrf.astype(np.float64).round(3).tolist()
    [[0.375, 0.25, 0.333]]
    """
    w = cfg.weight
    lex = np.where(valid, lexical, -np.inf).astype(np.float32)
    den = np.where(valid, dense, -np.inf).astype(np.float32)
    if cfg.method == "linear":
        fused = w * minmax(np.where(lex > -np.inf, lex, 0)) + (1 - w) * minmax(den)
    else:
        lex_share = np.where(lex > 0, w / (cfg.rrf_k + _ranks(lex)), 0.0)
        den_share = np.where(np.isfinite(den), (1 - w) / (cfg.rrf_k + _ranks(den)), 0.0)
        fused = lex_share + den_share
    return np.where(valid, fused, -np.inf).astype(np.float32)


def union_rows(a: npt.NDArray[np.int64], b: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Each query's distinct rows of `a` and `b` (sorted, -1 padded at the end).

    >>> union_rows(np.array([[3, 1, -1]]), np.array([[1, 2, 5]])).tolist()
    [[1, 2, 3, 5, -1, -1]]
    """
    both = np.sort(np.concatenate([a, b], axis=1), axis=1)
    dup = np.zeros(both.shape, dtype=bool)
    dup[:, 1:] = both[:, 1:] == both[:, :-1]
    both = np.where(dup | (both < 0), np.iinfo(np.int64).max, both)
    both = np.sort(both, axis=1)
    return np.where(both == np.iinfo(np.int64).max, -1, both)


class HybridRetriever:
    """BM25 and dense retrieval fused by reciprocal rank or by normalized score."""

    def __init__(
        self, lexical: LexicalRetriever, dense: DenseRetriever, cfg: FusionConfig | None = None
    ) -> None:
        self.lexical = lexical
        self.dense = dense
        self.cfg = cfg or FusionConfig()
        self.item_ids = lexical.item_ids

    @property
    def name(self) -> str:
        """`hybrid-rrf` or `hybrid-linear` (`hybrid-tuned-…` with the fine-tuned encoder)."""
        tuned = "" if self.dense.name == "dense" else "-tuned"
        return f"hybrid{tuned}-{self.cfg.method}"

    def encode(self, queries: Sequence[str]) -> tuple[Any, npt.NDArray[np.float32]]:
        """Both retrievers' representations of the batch."""
        return self.encode_terms(queries, self.lexical.analyze(queries))

    def encode_terms(
        self, queries: Sequence[str], terms: Sequence[Sequence[str]]
    ) -> tuple[Any, npt.NDArray[np.float32]]:
        """`encode` of queries whose BM25 terms are analyzed already (`analyze`)."""
        return self.lexical.encode_terms(terms), self.dense.encode(queries)

    def candidates(self, encoded: tuple[Any, npt.NDArray[np.float32]]) -> npt.NDArray[np.int64]:
        """The union of both retrievers' top `candidates` rows per query."""
        n = self.cfg.candidates
        lex, den = self.lexical.retrieve(encoded[0], n), self.dense.retrieve(encoded[1], n)
        return union_rows(lex.rows, den.rows)

    def both_scores(
        self, encoded: tuple[Any, npt.NDArray[np.float32]], rows: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """BM25 and dense scores of candidate rows."""
        return self.lexical.score(encoded[0], rows), self.dense.score(encoded[1], rows)

    def score(
        self, encoded: tuple[Any, npt.NDArray[np.float32]], rows: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """Fused scores of the given rows."""
        lex, den = self.both_scores(encoded, rows)
        return fuse(lex, den, rows >= 0, self.cfg)

    def retrieve(
        self,
        encoded: tuple[Any, npt.NDArray[np.float32]],
        k: int,
        mask: npt.NDArray[np.bool_] | None = None,
    ) -> Ranked:
        """The top `k` of the fused candidates (BM25 scores the catalogue once per chunk);
        with a `mask`, both retrievers draw their candidates from its rows only."""
        n = max(self.cfg.candidates, k)
        den_rows = self.dense.retrieve(encoded[1], n, mask).rows
        parts_rows, parts_lex = [], []
        for s in range(0, len(den_rows), CHUNK):
            full = masked(self.lexical.index.scores(encoded[0][s : s + CHUNK]), mask)
            rows = union_rows(top_k(full, n, keep_zero=False).rows, den_rows[s : s + CHUNK])
            parts_rows.append(rows)
            parts_lex.append(gather(full, rows))
        width = max((r.shape[1] for r in parts_rows), default=0)
        rows = np.concatenate([_pad(r, width, -1) for r in parts_rows])
        lex = np.concatenate([_pad(x, width, 0) for x in parts_lex])
        den = self.dense.score(encoded[1], rows)
        return rank_candidates(rows, fuse(lex, den, rows >= 0, self.cfg), k)


def _pad(a: npt.NDArray[Any], width: int, value: float) -> npt.NDArray[Any]:
    return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=value)


def rank_candidates(rows: npt.NDArray[np.int64], scores: npt.NDArray[np.float32], k: int) -> Ranked:
    """Order each query's candidate rows by score (invalid rows last, as -1)."""
    if rows.shape[1] == 0:
        return Ranked(np.full((len(rows), k), -1, np.int64), np.zeros((len(rows), k), np.float32))
    best = top_k(np.where(rows >= 0, scores, -np.inf).astype(np.float32), k)
    picked = np.take_along_axis(rows, best.rows, axis=1)
    ok = np.isfinite(best.scores) & (picked >= 0)
    out_rows = np.where(ok, picked, -1)
    out_scores = np.where(ok, best.scores, 0).astype(np.float32)
    if out_rows.shape[1] < k:
        pad = k - out_rows.shape[1]
        out_rows = np.pad(out_rows, ((0, 0), (0, pad)), constant_values=-1)
        out_scores = np.pad(out_scores, ((0, 0), (0, pad)))
    return Ranked(out_rows, out_scores)
