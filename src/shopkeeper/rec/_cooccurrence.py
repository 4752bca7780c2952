"""Item-item co-occurrence: EASE's closed form, and its blend into a sequence model's scores.

EASE (Steck 2019) learns B = I - P·diagMat(1/diag(P)), P = (XᵀX + λI)⁻¹, and scores a
history x as x·B. On basket data (several items bought together, the held-out item one
line of the last basket) such a model knows which items go together better than a
sequence model of the same data, while the sequence model knows order and text. A
`CooccurrencePrior` is the fitted B; `blend` adds its standardized scores to a sequence
model's with a weight, which `blend_ndcg_sums` lets the caller tune on validation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

    from shopkeeper.rec._data import Histories

BLEND_WEIGHTS: tuple[float, ...] = (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0)
"""Weights of the standardized co-occurrence scores tried on validation (0: none)."""


def kept_items(counts: npt.NDArray[np.int64], max_items: int) -> npt.NDArray[np.int64]:
    """The items B covers: all, or the `max_items` most popular (sorted indices).

    >>> kept_items(np.array([5, 1, 9, 3]), 2).tolist(), kept_items(np.array([1, 2]), 5).tolist()
    ([0, 2], [0, 1])
    """
    if len(counts) <= max_items:
        return np.arange(len(counts), dtype=np.int64)
    return np.sort(np.argsort(-counts, kind="stable")[:max_items]).astype(np.int64)


def gram(h: Histories, keep: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """XᵀX over the kept items: how many users have both items of each pair."""
    xs = h.to_csr()[:, keep]
    return np.asarray((xs.T @ xs).toarray(), dtype=np.int64)


def ease_weights(g: npt.NDArray[np.integer | np.floating], l2: float) -> npt.NDArray[np.float32]:
    """EASE's B from a Gram matrix: zero diagonal, column j predicts item j.

    >>> b = ease_weights(np.array([[2, 2], [2, 2]]), 1.0)
    >>> [round(float(v), 3) for v in b.ravel()]
    [0.0, 0.667, 0.667, 0.0]
    """
    a = np.array(g, dtype=np.float64)  # one copy, whatever the input's dtype
    a[np.diag_indices_from(a)] += l2
    p = np.linalg.inv(a)
    del a  # items² float64 each: at the 15,000-item cap, 1.8 GB apiece
    p /= -np.diag(p)
    p[np.diag_indices_from(p)] = 0.0
    return p.astype(np.float32)


@dataclass(frozen=True)
class CooccurrencePrior:
    """A fitted EASE item-item matrix over `keep` of `n_items` items."""

    b: npt.NDArray[np.float32]
    keep: npt.NDArray[np.int64]
    n_items: int

    @classmethod
    def from_gram(
        cls, g: npt.NDArray[np.int64], keep: npt.NDArray[np.int64], n_items: int, l2: float
    ) -> CooccurrencePrior:
        """Fit B from a Gram matrix over `keep` (e.g. summed over data-parallel shards)."""
        return cls(ease_weights(g, l2), keep, n_items)

    def score(self, h: Histories) -> npt.NDArray[np.float32]:
        """(rows, n_items) scores x·B; items outside `keep` score 0."""
        x = h.to_csr()
        if len(self.keep) == self.n_items:
            return np.asarray(x @ self.b, dtype=np.float32)
        out = np.zeros((h.n_users, self.n_items), dtype=np.float32)
        out[:, self.keep] = x[:, self.keep] @ self.b
        return out


def standardize(s: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Each row minus its mean, over its standard deviation (a constant row becomes 0).

    >>> standardize(np.array([[1.0, 3.0], [2.0, 2.0]], np.float32)).tolist()
    [[-1.0, 1.0], [0.0, 0.0]]
    """
    centred = s - s.mean(axis=1, keepdims=True)
    sd = centred.std(axis=1, keepdims=True)
    out: npt.NDArray[np.float32] = np.divide(
        centred, sd, out=np.zeros_like(centred), where=sd > 0
    ).astype(np.float32, copy=False)
    return out


def blend(
    sequence: npt.NDArray[np.float32], prior: npt.NDArray[np.float32], weight: float
) -> npt.NDArray[np.float32]:
    """The sequence scores plus `weight` times the prior's, both standardized per row.

    With weight 0 the sequence scores come back unchanged.
    """
    if weight == 0:
        return sequence
    return standardize(sequence) + np.float32(weight) * standardize(prior)


def blend_ndcg_sums(
    sequence: npt.NDArray[np.float32],
    prior: npt.NDArray[np.float32],
    seen: Histories,
    target: npt.NDArray[np.int64],
    weights: tuple[float, ...] = BLEND_WEIGHTS,
) -> npt.NDArray[np.float64]:
    """Summed NDCG@10 of one held-out item per row under each blend weight.

    Rows rank the whole catalog with their `seen` items excluded (ties count against the
    target), as the evaluation protocol does.
    """
    rows = np.arange(len(target))
    z_seq, z_prior = standardize(sequence), standardize(prior)
    out = np.zeros(len(weights))
    for i, w in enumerate(weights):
        s = z_seq + np.float32(w) * z_prior
        s[seen.user_of, seen.items] = -np.inf
        rank = (s > s[rows, target][:, None]).sum(axis=1)
        out[i] = np.where(rank < 10, 1.0 / np.log2(rank + 2.0), 0.0).sum()
    return out
