"""Full-ranking metrics, vectorized over a batch of users.

Per user with a set T of held-out items and a ranked list of the top k items:

- HR@k: 1 if any item of T is in the top k.
- Recall@k: |T ∩ top k| / |T| (equals HR@k when |T| = 1, as in leave-one-out).
- NDCG@k: DCG / ideal DCG with binary gains, DCG = Σ hit_r / log2(r + 1), r = 1..k.
- MRR@k: 1 / rank of the first hit in the top k, else 0.

Across users: catalog coverage@k (share of items in anyone's top k) and novelty@k
(mean self-information -log2 p(i) of recommended items, p(i) = (training users of i + 1)
/ (training users + 1)).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

RANKING_METRICS = ("HR", "Recall", "NDCG", "MRR")


def top_k(scores: npt.NDArray[np.floating], k: int) -> npt.NDArray[np.int64]:
    """Column indices of each row's `k` highest scores, best first (ties: lower index first).

    >>> top_k(np.array([[0.1, 0.9, 0.5, 0.9]]), 3).tolist()
    [[1, 3, 2]]
    """
    n = scores.shape[1]
    k = min(k, n)
    if k == 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64)
    if k < n:
        # argpartition finds each row's k-th best score; the k kept are those above it
        # plus, among those equal to it, the lowest indices (so ties are reproducible).
        neg = -scores
        kth_pos = np.argpartition(neg, k - 1, axis=1)[:, k - 1 : k]
        kth = np.take_along_axis(neg, kth_pos, axis=1)
        above, tie = neg < kth, neg == kth
        need = k - above.sum(axis=1, keepdims=True)
        take = above | (tie & (np.cumsum(tie, axis=1, dtype=np.int32) <= need))
        part = np.nonzero(take)[1].reshape(scores.shape[0], k)
    else:
        part = np.broadcast_to(np.arange(n), scores.shape)
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -part_scores), axis=1)
    return np.take_along_axis(part, order, axis=1).astype(np.int64)


def ranking_metrics(
    hits: npt.NDArray[np.bool_], n_targets: npt.NDArray[np.int64], ks: Sequence[int]
) -> dict[str, npt.NDArray[np.float64]]:
    """Per-user HR, Recall, NDCG and MRR at each k.

    Args:
        hits: (users, K) whether the item at each rank (best first) is held out.
        n_targets: (users,) held-out items per user (> 0).
        ks: cut-offs (a cut-off beyond K, the catalog size, counts as K).

    Returns:
        `{"HR@10": (users,) array, ...}`.

    >>> m = ranking_metrics(np.array([[False, True, False]]), np.array([1]), [1, 3])
    >>> {k: round(float(v[0]), 4) for k, v in m.items()}  # doctest: +NORMALIZE_WHITESPACE
    {'HR@1': 0.0, 'Recall@1': 0.0, 'NDCG@1': 0.0, 'MRR@1': 0.0,
     'HR@3': 1.0, 'Recall@3': 1.0, 'NDCG@3': 0.6309, 'MRR@3': 0.5}
    """
    width = hits.shape[1]
    discount = 1.0 / np.log2(np.arange(2, width + 2, dtype=np.float64))
    ideal = np.concatenate([[0.0], np.cumsum(discount)])
    n_t = np.maximum(np.asarray(n_targets, dtype=np.int64), 1)
    first = np.where(hits.any(axis=1), hits.argmax(axis=1), width)
    out: dict[str, npt.NDArray[np.float64]] = {}
    for k in ks:
        h = hits[:, :k]
        n_hit = h.sum(axis=1)
        out[f"HR@{k}"] = (n_hit > 0).astype(np.float64)
        out[f"Recall@{k}"] = n_hit / n_t
        out[f"NDCG@{k}"] = (h * discount[:k]).sum(axis=1) / ideal[np.minimum(n_t, min(k, width))]
        out[f"MRR@{k}"] = np.where(first < k, 1.0 / (first + 1.0), 0.0)
    return out


def self_information(item_users: npt.NDArray[np.int64], n_users: int) -> npt.NDArray[np.float64]:
    """-log2 p(i) per item, p(i) = (training users of i + 1) / (training users + 1).

    >>> self_information(np.array([3, 0]), 3).tolist()
    [0.0, 2.0]
    """
    inverse_p = (n_users + 1.0) / (np.asarray(item_users, dtype=np.float64) + 1.0)
    return np.asarray(np.log2(inverse_p), dtype=np.float64)
