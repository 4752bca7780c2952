"""Personalized search: the shopper's behaviour vector blended into the query ranking.

A user's representation is their `user_vectors` row (`features build`: the weighted,
time-decayed, L2-normalized sum of the item vectors of their events). The query's
retrieval scores over its candidate pool are min-max normalized, and each candidate's
final score is

    (1 - w) * normalized retrieval score + w * cosine(user vector, item vector)

so `w = 0` keeps the retrieval order and `w = 1` orders the pool by the user alone.
Items without a vector get cosine 0. An unknown user, or one without a vector from the
item vectors' model, is searched unpersonalized, and the result says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from shopkeeper.errors import WarehouseError
from shopkeeper.features import EMBEDDINGS_ASSET, USER_VECTORS_ASSET, read_embeddings
from shopkeeper.logging import get_logger
from shopkeeper.search._fusion import minmax
from shopkeeper.search._retrieve import Ranked, catalogue_rows, top_k
from shopkeeper.warehouse import Warehouse

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

    from shopkeeper.search._retrieve import DenseRetriever
    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)


class PersonalizationConfig(BaseModel):
    """How much the user's vector weighs and over how many candidates."""

    model_config = ConfigDict(extra="forbid")

    weight: float = Field(default=0.3, ge=0.0, le=1.0)
    """The user's share of the final score (0: unpersonalized order)."""
    pool: PositiveInt = 100
    """Candidates retrieved per query and reordered (at least k)."""


@dataclass(frozen=True)
class UserProfile:
    """A user looked up for personalization: the vector, or why there is none."""

    user_id: str
    """The id as the source gave it."""
    vector: npt.NDArray[np.float32] | None
    """The L2-normalized behaviour vector (None: not personalized)."""
    reason: str | None = None
    """Why there is no vector (None when there is one)."""

    @property
    def applied(self) -> bool:
        """Whether searches for this user are personalized."""
        return self.vector is not None


class ItemVectors:
    """Item embeddings addressed by catalogue row (rows without a vector score 0).

    Args:
        vectors: (m, d) L2-normalized item vectors.
        row_to_vector: Catalogue row -> row of `vectors` (-1: none).
        model_id: The encoder the vectors came from.
    """

    def __init__(
        self,
        vectors: npt.NDArray[np.float32],
        row_to_vector: npt.NDArray[np.int64],
        model_id: str | None,
    ) -> None:
        self.vectors = vectors
        self.row_to_vector = row_to_vector
        self.model_id = model_id

    @classmethod
    def from_dense(cls, dense: DenseRetriever, model_id: str | None) -> ItemVectors:
        """The dense retriever's vectors (no copy)."""
        return cls(dense.vectors, dense._to_ann[: len(dense.item_ids)], model_id)

    @classmethod
    def load(cls, ws: Workspace, item_ids: Sequence[str]) -> ItemVectors | None:
        """The latest item embeddings for the catalogue `item_ids` (None: none built)."""
        with Warehouse(ws, read_only=True) as wh:
            emb = wh.latest(EMBEDDINGS_ASSET)
            if emb is None:
                return None
            ids, vectors = read_embeddings(wh, emb.version)
        return cls(vectors, catalogue_rows(ids, item_ids), emb.params.get("model_id"))

    def affinity(self, users: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """(catalogue rows, users) cosine of every item to each user vector (0: no vector)."""
        if self.vectors.size == 0:
            return np.zeros((len(self.row_to_vector), len(users)), np.float32)
        sims = self.vectors @ np.asarray(users, np.float32).T
        got = sims[np.maximum(self.row_to_vector, 0)]
        return np.where((self.row_to_vector >= 0)[:, None], got, 0).astype(np.float32)


def load_user_profiles(
    ws: Workspace, user_ids: Sequence[str], model_id: str | None
) -> list[UserProfile]:
    """Each user's behaviour vector (ids as the source gave them), or the reason for none.

    A vector counts only if it was built from item vectors of `model_id`, the model the
    search's item vectors came from.
    """
    try:
        pseudo = ws.keys.load(create=False)
    except WarehouseError:
        return [UserProfile(u, None, "no users in this workspace") for u in user_ids]
    keys = [pseudo.pseudonymize(u) for u in user_ids]
    with Warehouse(ws, read_only=True) as wh:
        latest = wh.latest(USER_VECTORS_ASSET)
        if latest is None:
            reason = "no user vectors (run `shopkeeper features build` with events)"
            return [UserProfile(u, None, reason) for u in user_ids]
        (file,) = wh.files(USER_VECTORS_ASSET, latest.version, "data")
    if model_id is not None and latest.params.get("model_id") != model_id:
        reason = f"user vectors come from {latest.params.get('model_id')}, items from {model_id}"
        return [UserProfile(u, None, reason) for u in user_ids]
    table = pq.read_table(file, columns=["user_id", "vector"], filters=[("user_id", "in", keys)])
    found = dict(zip(table.column("user_id").to_pylist(), range(len(table)), strict=True))
    if len(table):
        flat = table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        vecs = np.asarray(flat, np.float32).reshape(len(table), -1)
    out = []
    for raw, key in zip(user_ids, keys, strict=True):
        if key not in found:
            out.append(UserProfile(raw, None, "unknown user"))
        elif not np.any(vecs[found[key]]):
            out.append(UserProfile(raw, None, "the user's events have no item vectors"))
        else:
            out.append(UserProfile(raw, vecs[found[key]]))
    return out


@dataclass
class Personalized:
    """The reordered top items and each one's stage scores, (queries, k) each."""

    ranked: Ranked
    """Rows (-1: none) and final scores, best first."""
    retrieval: npt.NDArray[np.float32]
    """The retriever's own score."""
    affinity: npt.NDArray[np.float32]
    """Cosine of the user vector to the item."""


def blend(
    scores: npt.NDArray[np.float32],
    affinity: npt.NDArray[np.float32],
    valid: npt.NDArray[np.bool_],
    weight: float,
) -> npt.NDArray[np.float32]:
    """`(1 - w) * minmax(scores) + w * affinity` per query's valid candidates (else -inf).

    >>> s = np.array([[4.0, 2.0, 0.0]], np.float32)
    >>> a = np.array([[0.0, 0.5, 1.0]], np.float32)
    >>> blend(s, a, np.ones((1, 3), bool), 0.5).astype(np.float64).round(3).tolist()
    [[0.5, 0.5, 0.5]]
    """
    norm = minmax(np.where(valid, scores, -np.inf).astype(np.float32))
    final = (1.0 - weight) * norm + weight * affinity
    return np.where(valid, final, -np.inf).astype(np.float32)


def personalize(
    pool: Ranked, affinity: npt.NDArray[np.float32], weight: float, k: int
) -> Personalized:
    """Reorder each query's candidate pool by the blended score; keep the top `k`.

    Args:
        pool: Each query's candidates and retrieval scores (rows -1: none).
        affinity: (queries, pool) cosine of the user vector to each candidate.
        weight: The user's share, 0 to 1.
        k: Items kept per query.
    """
    q, width = pool.rows.shape
    if width == 0:
        none = np.zeros((q, k), np.float32)
        return Personalized(Ranked(np.full((q, k), -1, np.int64), none), none, none)
    final = blend(pool.scores, affinity, pool.rows >= 0, weight)
    best = top_k(final, min(k, width))  # columns of the pool, best first
    rows = np.take_along_axis(pool.rows, best.rows, axis=1)
    ok = np.isfinite(best.scores) & (rows >= 0)

    def pick(a: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        got = np.where(ok, np.take_along_axis(a, best.rows, axis=1), 0).astype(np.float32)
        return np.pad(got, ((0, 0), (0, k - got.shape[1])))

    out_rows = np.pad(np.where(ok, rows, -1), ((0, 0), (0, k - rows.shape[1])), constant_values=-1)
    return Personalized(
        Ranked(out_rows.astype(np.int64), pick(final)), pick(pool.scores), pick(affinity)
    )
