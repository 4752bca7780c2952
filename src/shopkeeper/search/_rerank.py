"""Retrieve, then rerank: a base retriever's top `depth` items reordered by the cross-encoder.

The final score of a candidate blends both stages: `blend * base' + (1 - blend) * ce'`,
each min-max normalized over the query's candidates (`blend` is tuned on the validation
queries when the ranker is trained; 0 is the cross-encoder alone). It is itself a
`Retriever`, so the searcher, the evaluation and the service use it like BM25 or hybrid.
Items past `depth` (when k > depth) keep the base order below the reranked head; their
scores are the head's lowest minus one and a small step per rank, so every list stays
sorted by score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from shopkeeper.search._fusion import minmax, rank_candidates
from shopkeeper.search._retrieve import Ranked

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

    from shopkeeper.search._late_ranker import Ranker
    from shopkeeper.search._retrieve import Retriever

TAIL_STEP = np.float32(1e-3)
"""Score step between items past the reranked head (they keep the base order)."""


def blend_scores(
    ce: npt.NDArray[np.float32], base: npt.NDArray[np.float32], blend: float
) -> npt.NDArray[np.float32]:
    """`blend * base' + (1 - blend) * ce'`, each min-max normalized per row over its
    finite entries; -inf where `ce` is -inf.

    >>> ce = np.array([[2.0, 0.0, -np.inf]], dtype=np.float32)
    >>> base = np.array([[0.0, 1.0, 5.0]], dtype=np.float32)
    >>> blend_scores(ce, base, 0.25).tolist()
    [[0.75, 0.25, -inf]]
    """
    valid = np.isfinite(ce)
    base = np.where(valid, base, -np.inf).astype(np.float32)
    out = (1 - blend) * minmax(ce) + blend * minmax(base)
    return np.where(valid, out, -np.inf).astype(np.float32)


def score_rows(
    ranker: Ranker,
    queries: Sequence[str],
    rows: npt.NDArray[np.int64],
    texts: Sequence[str],
) -> npt.NDArray[np.float32]:
    """The ranker's logit of each query against its candidate rows (queries, candidates);
    -inf where the row is -1."""
    q_idx, c_idx = np.nonzero(rows >= 0)
    out = np.full(rows.shape, -np.inf, dtype=np.float32)
    if len(q_idx):
        out[q_idx, c_idx] = ranker.score(
            [queries[q] for q in q_idx.tolist()],
            [texts[r] for r in rows[q_idx, c_idx].tolist()],
        )
    return out


def fit_grade(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> tuple[float, float]:
    """(a, b) of the least-squares line `y ≈ a + b·x`; b = 0 (the mean of y, or 0 with
    no pairs) when x hardly varies (standard deviation under 1e-3: a ranker that does
    not tell the pairs apart, whose slope would only amplify noise). A constant is such a
    line, so on the pairs it was fitted to it is never worse than predicting their mean.

    >>> fit_grade(np.array([0.0, 0.5, 1.0]), np.array([1.0, 2.0, 3.0]))
    (1.0, 2.0)
    """
    if len(x) == 0:
        return 0.0, 0.0
    if float(x.std()) < 1e-3:
        return round(float(y.mean()), 6), 0.0
    b, a = np.polyfit(x, y, 1)
    return round(float(a), 6), round(float(b), 6)


class RerankedRetriever:
    """`base` retrieves, the cross-encoder orders the top `depth` of each query.

    Args:
        base: The first stage (BM25 or hybrid) over the catalogue.
        ranker: The cross-encoder.
        texts: Each catalogue row's item text (the text the ranker was trained on).
        depth: Candidates per query the ranker scores.
        grades: The (lowest, highest) relevance grade that `sigmoid(logit)` spans (None:
            the ranker predicts no grade).
        blend: The first stage's share of the final score.
        calibration: (a, b): the grade is `a + b·sigmoid(logit)`, kept within `grades`
            (None: the plain span of `grades`).
    """

    def __init__(
        self,
        base: Retriever,
        ranker: Ranker,
        texts: Sequence[str],
        depth: int = 50,
        grades: tuple[float, float] | None = None,
        blend: float = 0.0,
        calibration: tuple[float, float] | None = None,
    ) -> None:
        if len(texts) != len(base.item_ids):
            raise ValueError(f"{len(texts)} item texts for {len(base.item_ids)} catalogue rows")
        self.base = base
        self.ranker = ranker
        self.texts = list(texts)
        self.depth = depth
        self.grades = grades
        self.blend = blend
        self.calibration = calibration
        self.item_ids = base.item_ids

    def grade(self, logits: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
        """The relevance grade each logit predicts: `a + b·sigmoid(logit)` within
        `[lo, hi]` when calibrated, else `lo + (hi - lo)·sigmoid(logit)`.

        Raises:
            ValueError: the ranker was given no grade scale.
        """
        if self.grades is None:
            raise ValueError("this ranker has no grade scale")
        from scipy.special import expit  # here: scipy costs every CLI start 0.2 s

        lo, hi = self.grades
        p: npt.NDArray[np.float64] = expit(logits.astype(np.float64))
        if self.calibration is None:
            return lo + (hi - lo) * p
        a, b = self.calibration
        out: npt.NDArray[np.float64] = np.clip(a + b * p, lo, hi)
        return out

    @property
    def name(self) -> str:
        """The base's name and the ranker's precision, e.g. `hybrid-linear+ce-int8`."""
        return f"{self.base.name}+ce-{self.ranker.precision}"

    def encode(self, queries: Sequence[str]) -> tuple[list[str], Any]:
        """The query texts (for the ranker) and the base's representation."""
        return list(queries), self.base.encode(queries)

    def score_parts(
        self, encoded: tuple[list[str], Any], rows: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """The ranker's logits and the blended scores of candidate rows (-inf: row -1)."""
        logits = score_rows(self.ranker, encoded[0], rows, self.texts)
        if self.blend == 0:
            return logits, logits
        base = self.base.score(encoded[1], rows)
        return logits, blend_scores(logits, base, self.blend)

    def score(
        self, encoded: tuple[list[str], Any], rows: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """The final (blended) score of each candidate row (-inf where the row is -1)."""
        return self.score_parts(encoded, rows)[1]

    def retrieve(
        self,
        encoded: tuple[list[str], Any],
        k: int,
        mask: npt.NDArray[np.bool_] | None = None,
    ) -> Ranked:
        """The base's top `max(k, depth)` (within `mask`), the top `depth` reranked."""
        pool = self.base.retrieve(encoded[1], max(k, self.depth), mask)
        head_rows = pool.rows[:, : self.depth]
        scores = score_rows(self.ranker, encoded[0], head_rows, self.texts)
        if self.blend:
            base = np.where(head_rows >= 0, pool.scores[:, : self.depth], -np.inf)
            scores = blend_scores(scores, base.astype(np.float32), self.blend)
        return reranked_head(pool, scores, self.depth, k)


def reranked_head(pool: Ranked, scores: npt.NDArray[np.float32], depth: int, k: int) -> Ranked:
    """The top `k` of a first-stage `pool` whose first `depth` rows got new `scores`: the
    head in their order, then the rest of the pool in its order, scored below the head."""
    head = rank_candidates(pool.rows[:, :depth], scores, depth)
    if k <= depth:
        return Ranked(head.rows[:, :k], head.scores[:, :k])
    tail_rows = pool.rows[:, depth:k]
    valid = head.rows >= 0
    lowest = np.where(valid, head.scores, np.inf).min(axis=1, keepdims=True)
    lowest = np.where(np.isfinite(lowest), lowest, 0).astype(np.float32)
    steps = np.arange(1, tail_rows.shape[1] + 1, dtype=np.float32)[None, :] * TAIL_STEP
    tail = np.where(tail_rows >= 0, lowest - 1 - steps, 0).astype(np.float32)
    return Ranked(
        np.concatenate([head.rows, tail_rows], axis=1),
        np.concatenate([head.scores, tail], axis=1),
    )
