"""Judgments of a query batch laid out against catalogue rows, for vectorized metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from shopkeeper.search._metrics import mrr_at_k, ndcg_at_k, recall_at_k
from shopkeeper.search._retrieve import catalogue_rows

if TYPE_CHECKING:
    import numpy.typing as npt

    from shopkeeper.search._data import Judged


class Qrels:
    """Gains and relevant flags of judged (query, catalogue row) pairs.

    Args:
        judged: queries and their judged pairs.
        item_ids: the catalogue (row -> item id).
        min_grade: the grade meaning irrelevant; gain = max(relevance - min_grade, 0).
        relevant_grade: the least grade that counts as relevant (Recall, MRR).
    """

    def __init__(
        self, judged: Judged, item_ids: list[str], min_grade: float, relevant_grade: float
    ) -> None:
        n = len(item_ids)
        self.n_queries = len(judged.query_ids)
        self._stride = n + 1
        rows = catalogue_rows(item_ids, judged.pair_item)
        known = rows >= 0
        self.unknown_pairs = int((~known).sum())
        q, rows, rel = judged.pair_query[known], rows[known], judged.pair_relevance[known]
        self.gain = np.maximum(rel - min_grade, 0.0)
        self.relevant = rel >= relevant_grade
        self.relevance = rel
        key = q * self._stride + rows
        order = np.argsort(key, kind="stable")
        self._key, self._gain, self._rel = key[order], self.gain[order], self.relevant[order]
        self.pair_query, self.pair_row = q[order], rows[order]
        counts = np.bincount(self.pair_query, minlength=self.n_queries)
        width = int(counts.max()) if len(counts) else 0
        start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        col = np.arange(len(self.pair_query)) - start[self.pair_query]
        self.candidates = np.full((self.n_queries, width), -1, dtype=np.int64)
        """(queries, judged) each query's judged rows, -1 padded (the rerank protocol)."""
        self.candidates[self.pair_query, col] = self.pair_row
        self.ideal = np.zeros((self.n_queries, width), dtype=np.float64)
        self.ideal[self.pair_query, col] = self._gain
        self.n_relevant = np.bincount(
            self.pair_query, weights=self._rel, minlength=self.n_queries
        ).astype(np.int64)

    def lookup(
        self, query: npt.NDArray[np.int64], rows: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Gain and relevant flag of each (query, row); 0 and False when unjudged or -1."""
        if not len(self._key):
            return np.zeros(rows.shape), np.zeros(rows.shape, dtype=bool)
        key = query[:, None] * self._stride + np.where(rows >= 0, rows, self._stride - 1)
        at = np.minimum(np.searchsorted(self._key, key), len(self._key) - 1)
        hit = (self._key[at] == key) & (rows >= 0)
        return np.where(hit, self._gain[at], 0.0), hit & self._rel[at]

    def full_metrics(
        self, ranked: npt.NDArray[np.int64], k: int, recall_k: int
    ) -> dict[str, npt.NDArray[np.float64]]:
        """Per-query nDCG@k, Recall@recall_k and MRR@k of ranked catalogue rows."""
        gain, rel = self.lookup(np.arange(self.n_queries), ranked)
        return {
            f"nDCG@{k}": ndcg_at_k(gain, self.ideal, k),
            f"Recall@{recall_k}": recall_at_k(rel, self.n_relevant, recall_k),
            f"MRR@{k}": mrr_at_k(rel, k),
        }

    def rerank_metrics(
        self, scores: npt.NDArray[np.float32], k: int, seed: int
    ) -> dict[str, npt.NDArray[np.float64]]:
        """Per-query nDCG@k and MRR@k when each query's judged candidates are sorted by
        `scores` (aligned with `candidates`; ties broken by a seeded random order)."""
        cand = self.candidates
        tie = np.random.default_rng(seed).random(cand.shape)
        s = np.where(cand >= 0, scores, -np.inf)
        order = np.lexsort((tie, -s), axis=1)
        ranked = np.take_along_axis(cand, order, axis=1)
        gain, rel = self.lookup(np.arange(self.n_queries), ranked)
        return {f"nDCG@{k}": ndcg_at_k(gain, self.ideal, k), f"MRR@{k}": mrr_at_k(rel, k)}
