"""Ranking metrics with graded relevance, vectorized over a batch of queries.

For a query with judged items J, gain g(i) = max(relevance(i) - min_grade, 0) for i in J
and 0 for every unjudged item; an item is relevant when relevance(i) >= relevant_grade.

- nDCG@k = DCG@k / ideal DCG@k, DCG@k = Σ_{r=1..k} g(item at r) / log2(r + 1), the ideal
  from J's gains sorted; NaN when every gain of J is 0 (such a query has no ideal order).
- Recall@k = relevant items in the top k / relevant items in J (NaN when J has none).
- MRR@k = 1 / rank of the first relevant item in the top k, 0 if none.
- RMSE = sqrt(mean((predicted - relevance)²)) over judged pairs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt


def _discount(width: int) -> npt.NDArray[np.float64]:
    return 1.0 / np.log2(np.arange(2, width + 2, dtype=np.float64))


def ndcg_at_k(
    gains: npt.NDArray[np.float64], ideal: npt.NDArray[np.float64], k: int
) -> npt.NDArray[np.float64]:
    """nDCG@k per query.

    Args:
        gains: (queries, ranks) gain of the item at each rank, best first (0 for padding).
        ideal: (queries, judged) every judged gain of the query, any order (0 padding).
        k: the cut-off.

    >>> ndcg_at_k(np.array([[0.0, 2.0, 1.0]]), np.array([[1.0, 2.0]]), 3).round(4).tolist()
    [0.6697]
    """
    dcg = (gains[:, :k] * _discount(min(k, gains.shape[1]))).sum(axis=1)
    best = -np.sort(-ideal, axis=1)[:, :k]
    idcg = (best * _discount(best.shape[1])).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(idcg > 0, dcg / idcg, np.nan)


def recall_at_k(
    relevant: npt.NDArray[np.bool_], n_relevant: npt.NDArray[np.int64], k: int
) -> npt.NDArray[np.float64]:
    """Share of each query's relevant judged items found in its top k (NaN: none to find).

    >>> recall_at_k(np.array([[True, False, True]]), np.array([4]), 2).tolist()
    [0.25]
    """
    found = relevant[:, :k].sum(axis=1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_relevant > 0, found / n_relevant, np.nan)


def mrr_at_k(relevant: npt.NDArray[np.bool_], k: int) -> npt.NDArray[np.float64]:
    """Reciprocal rank of the first relevant item within the top k, else 0.

    >>> mrr_at_k(np.array([[False, False, True], [False, False, False]]), 10).tolist()
    [0.3333333333333333, 0.0]
    """
    hits = relevant[:, :k]
    first = np.where(hits.any(axis=1), hits.argmax(axis=1), k)
    return np.where(first < k, 1.0 / (first + 1.0), 0.0)


def rmse(predicted: npt.NDArray[np.float64], actual: npt.NDArray[np.float64]) -> float:
    """Root mean squared error of predicted relevance.

    >>> rmse(np.array([2.0, 3.0]), np.array([1.0, 3.0]))
    0.7071067811865476
    """
    diff = np.asarray(predicted, np.float64) - np.asarray(actual, np.float64)
    return float(np.sqrt(np.mean(diff * diff))) if diff.size else float("nan")
