"""Retrievers over one catalogue: BM25 (lexical) and embeddings + ANN index (dense).

Every retriever speaks in rows of the same catalogue (the lexical index's item order),
works on whole query batches, and does two things with an encoded batch: `retrieve` its
top k items, and `score` given candidate rows (the rerank protocol, and fusion).
Row -1 pads a list that has fewer than k items. `retrieve` takes an optional boolean
item mask (the search filters): only rows where it is true are ranked, before the top k
is taken, so a filtered search still returns k items when k items match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shopkeeper.features._encoder import require_ml

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

    from shopkeeper.features import AnnIndex, ItemEncoder
    from shopkeeper.search._lexical import LexicalIndex

CHUNK = 256
"""Queries scored together against the whole catalogue (bounds a dense score block)."""
EXACT_FILTERED_MAX = 50_000
"""A filtered dense search over at most this many items is exact; above, the HNSW index
searches with the filter as an id selector (exact again for queries it leaves short)."""


@dataclass
class Ranked:
    """Each query's top items, best first: catalogue rows (-1: none) and their scores."""

    rows: npt.NDArray[np.int64]
    scores: npt.NDArray[np.float32]


class Retriever(Protocol):
    """A batch retriever over the catalogue rows."""

    @property
    def name(self) -> str:
        """A short name for reports."""

    @property
    def item_ids(self) -> list[str]:
        """The catalogue: row -> item id."""

    def encode(self, queries: Sequence[str]) -> Any:
        """The batch in the retriever's own query representation."""

    def retrieve(self, encoded: Any, k: int, mask: npt.NDArray[np.bool_] | None = None) -> Ranked:
        """The top `k` rows of each query (only rows where `mask` is true, if given)."""

    def score(self, encoded: Any, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """(queries, candidates) scores of the given rows (-inf where the row is -1)."""


def catalogue_rows(item_ids: Sequence[str], wanted: Sequence[str]) -> npt.NDArray[np.int64]:
    """The row of each `wanted` item in the catalogue `item_ids` (unique), -1 if absent.

    >>> catalogue_rows(["a", "b", "c"], ["c", "x", "a"]).tolist()
    [2, -1, 0]
    """
    found = pc.index_in(pa.array(wanted, pa.string()), value_set=pa.array(item_ids, pa.string()))
    return np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def top_k(scores: npt.NDArray[np.float32], k: int, keep_zero: bool = True) -> Ranked:
    """Each row's `k` highest scores, best first, ties by lower column.

    >>> r = top_k(np.array([[0.5, 2.0, 0.0, 2.0]], dtype=np.float32), 3, keep_zero=False)
    >>> r.rows.tolist(), r.scores.tolist()
    ([[1, 3, 0]], [[2.0, 2.0, 0.5]])
    """
    q, n = scores.shape
    k = min(k, n)
    if k < n:
        kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
        above, tie = scores > kth, scores == kth
        need = k - above.sum(axis=1, keepdims=True)
        take = above | (tie & (np.cumsum(tie, axis=1) <= need))
        cols = np.nonzero(take)[1].reshape(q, k)
    else:
        cols = np.broadcast_to(np.arange(n), (q, n))
    vals = np.take_along_axis(scores, cols, axis=1)
    order = np.lexsort((cols, -vals), axis=1)
    rows = np.take_along_axis(cols, order, axis=1).astype(np.int64)
    vals = np.take_along_axis(vals, order, axis=1).astype(np.float32)
    if not keep_zero:
        rows = np.where(vals > 0, rows, -1)
        vals = np.where(vals > 0, vals, np.float32(0))
    return Ranked(rows, vals)


def gather(scores: npt.NDArray[np.float32], rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """`scores[i, rows[i, j]]`, -inf where the row is -1."""
    got = np.take_along_axis(scores, np.maximum(rows, 0), axis=1)
    return np.where(rows >= 0, got, -np.inf).astype(np.float32)


def masked(
    scores: npt.NDArray[np.float32], mask: npt.NDArray[np.bool_] | None
) -> npt.NDArray[np.float32]:
    """BM25 scores with the rows outside `mask` zeroed (in place; no mask: unchanged)."""
    if mask is not None:
        scores[:, ~mask] = 0
    return scores


class LexicalRetriever:
    """BM25 over the multi-field index, with query spelling correction."""

    def __init__(self, index: LexicalIndex, spelling: bool = True) -> None:
        self.name = "bm25" if spelling else "bm25-nospell"
        self.index = index
        self.spelling = spelling
        self.item_ids = index.item_ids

    def analyze(self, queries: Sequence[str]) -> list[list[str]]:
        """Each query's analyzed terms (unknown words corrected when this one corrects)."""
        return self.index.query_terms(queries, spelling=self.spelling)

    def encode(self, queries: Sequence[str]) -> Any:
        """The (queries, terms) sparse matrix."""
        return self.encode_terms(self.analyze(queries))

    def encode_terms(self, terms: Sequence[Sequence[str]]) -> Any:
        """`encode` of queries already analyzed (`analyze`)."""
        return self.index.encode_terms(terms)

    def retrieve(self, encoded: Any, k: int, mask: npt.NDArray[np.bool_] | None = None) -> Ranked:
        """Top `k` items with a positive BM25 score (rows -1 beyond them)."""
        parts = [
            top_k(masked(self.index.scores(encoded[s : s + CHUNK]), mask), k, keep_zero=False)
            for s in range(0, encoded.shape[0], CHUNK)
        ]
        return _concat(parts, k)

    def score(self, encoded: Any, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """BM25 scores of candidate rows."""
        out = np.empty(rows.shape, dtype=np.float32)
        for s in range(0, rows.shape[0], CHUNK):
            out[s : s + CHUNK] = gather(
                self.index.scores(encoded[s : s + CHUNK]), rows[s : s + CHUNK]
            )
        return out


class DenseRetriever:
    """Cosine similarity of the query embedding to item embeddings, through the ANN index."""

    def __init__(
        self, ann: AnnIndex, encoder: ItemEncoder, item_ids: list[str], name: str = "dense"
    ) -> None:
        self.name = name
        """`dense` over `item_index`; `dense-tuned` over the fine-tuned `search_encoder`."""
        self.ann = ann
        self.encoder = encoder
        self.item_ids = item_ids
        self._to_catalogue = catalogue_rows(item_ids, ann.item_ids)
        self._to_ann = np.full(len(item_ids) + 1, -1, dtype=np.int64)
        known = self._to_catalogue >= 0
        self._to_ann[self._to_catalogue[known]] = np.nonzero(known)[0]
        n = int(ann.index.ntotal)
        self.vectors: npt.NDArray[np.float32] = (
            ann.index.reconstruct_n(0, n) if n else np.zeros((0, 1), np.float32)
        )

    def encode(self, queries: Sequence[str]) -> npt.NDArray[np.float32]:
        """L2-normalized query embeddings (the items' encoder)."""
        return self.encoder.encode(list(queries))

    def retrieve(
        self,
        encoded: npt.NDArray[np.float32],
        k: int,
        mask: npt.NDArray[np.bool_] | None = None,
    ) -> Ranked:
        """The `k` nearest items by the ANN index (items outside the catalogue dropped).

        With a `mask`, only its rows: exact inner products over them when they are few
        or the index is exact, else the index searched with the mask as an id selector.
        """
        if mask is None:
            scores, rows = self.ann.search(encoded, k)
        else:
            keep = (self._to_catalogue >= 0) & np.append(mask, False)[self._to_catalogue]
            if self.ann.kind == "flat" or int(keep.sum()) <= EXACT_FILTERED_MAX:
                scores, rows = self._exact(encoded, k, np.flatnonzero(keep))
            else:
                scores, rows = self._selected(encoded, k, keep)
        rows = np.where(rows >= 0, self._to_catalogue[np.maximum(rows, 0)], -1)
        return Ranked(rows.astype(np.int64), np.where(rows >= 0, scores, 0).astype(np.float32))

    def _exact(
        self, encoded: npt.NDArray[np.float32], k: int, subset: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Exact top `k` among the index rows `subset` (-1 beyond them)."""
        q = len(encoded)
        if len(subset) == 0:
            return np.zeros((q, k), np.float32), np.full((q, k), -1, np.int64)
        vecs = self.vectors[subset]
        parts = [top_k(encoded[s : s + CHUNK] @ vecs.T, k) for s in range(0, q, CHUNK)]
        got = _concat(parts, k)
        pad = k - got.rows.shape[1]
        rows = np.pad(subset[got.rows], ((0, 0), (0, pad)), constant_values=-1)
        return np.pad(got.scores, ((0, 0), (0, pad))), rows

    def _selected(
        self, encoded: npt.NDArray[np.float32], k: int, keep: npt.NDArray[np.bool_]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """HNSW search restricted to the index rows `keep`; exact for queries left short."""
        faiss = require_ml("faiss")
        bits = np.packbits(keep, bitorder="little")
        params = faiss.SearchParametersHNSW(
            sel=faiss.IDSelectorBitmap(len(keep), faiss.swig_ptr(bits)),
            efSearch=max(int(self.ann.index.hnsw.efSearch), k),
        )
        scores, rows = self.ann.index.search(encoded, k, params=params)
        short = (rows >= 0).sum(axis=1) < min(k, int(keep.sum()))
        if short.any():
            scores[short], rows[short] = self._exact(encoded[short], k, np.flatnonzero(keep))
        return scores, rows

    def score(
        self, encoded: npt.NDArray[np.float32], rows: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """Cosine of each query to its candidate rows (-inf: not a row or not embedded)."""
        arows = self._to_ann[np.where(rows >= 0, rows, len(self.item_ids))]
        out = np.empty(rows.shape, dtype=np.float32)
        for s in range(0, rows.shape[0], CHUNK):
            vec = self.vectors[np.maximum(arows[s : s + CHUNK], 0)]
            out[s : s + CHUNK] = np.einsum("qcd,qd->qc", vec, encoded[s : s + CHUNK])
        return np.where(arows >= 0, out, -np.inf).astype(np.float32)


def _concat(parts: list[Ranked], k: int) -> Ranked:
    if not parts:
        return Ranked(np.zeros((0, k), np.int64), np.zeros((0, k), np.float32))
    return Ranked(
        np.concatenate([p.rows for p in parts]), np.concatenate([p.scores for p in parts])
    )
