"""The search entry point: one model over the workspace, queries in batches, ids out."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from shopkeeper.errors import ConfigError
from shopkeeper.search._fusion import FusionConfig, HybridRetriever, rank_candidates
from shopkeeper.search._open import has_dense, open_dense, open_lexical

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

    from shopkeeper.features import ItemEncoder
    from shopkeeper.search._retrieve import Ranked, Retriever
    from shopkeeper.warehouse import Workspace

SearchModel = Literal["auto", "bm25", "dense", "hybrid"]
Hit = dict[str, Any]


class Searcher:
    """Searches the catalogue with one retriever; results as `{"item_id", "score"}` lists.

    Args:
        retriever: BM25, dense or hybrid, over `retriever.item_ids`.
        batch_size: Queries encoded and scored together.
    """

    def __init__(self, retriever: Retriever, batch_size: int = 512) -> None:
        self.retriever = retriever
        self.item_ids: list[str] = retriever.item_ids
        self.batch_size = batch_size
        self._row = {item: i for i, item in enumerate(self.item_ids)}

    @classmethod
    def open(
        cls,
        ws: Workspace,
        model: SearchModel = "auto",
        fusion: FusionConfig | None = None,
        encoder: ItemEncoder | None = None,
        spelling: bool = True,
    ) -> Searcher:
        """A searcher over the workspace's latest items (`auto`: hybrid when `features
        build` has made item vectors, else BM25).

        Raises:
            ConfigError: dense or hybrid asked for without item vectors.
        """
        lexical = open_lexical(ws, spelling=spelling)
        dense_ok = model != "bm25" and has_dense(ws)
        if model == "auto":
            model = "hybrid" if dense_ok else "bm25"
        if model == "bm25":
            return cls(lexical)
        if not dense_ok:
            raise ConfigError(f"{model} search needs item vectors: run `shopkeeper features build`")
        dense = open_dense(ws, lexical.item_ids, encoder)
        return cls(dense if model == "dense" else HybridRetriever(lexical, dense, fusion))

    @property
    def name(self) -> str:
        """The retriever's name."""
        return str(self.retriever.name)

    def _hits(self, ranked: Ranked) -> list[list[Hit]]:
        ids = self.item_ids
        return [
            [
                {"item_id": ids[r], "score": round(float(s), 6)}
                for r, s in zip(rows, scores, strict=True)
                if r >= 0
            ]
            for rows, scores in zip(ranked.rows.tolist(), ranked.scores.tolist(), strict=True)
        ]

    def search(self, queries: Sequence[str], k: int = 10) -> list[list[Hit]]:
        """The top `k` items of each query, best first."""
        out: list[list[Hit]] = []
        for s in range(0, len(queries), self.batch_size):
            enc = self.retriever.encode(queries[s : s + self.batch_size])
            out.extend(self._hits(self.retriever.retrieve(enc, k)))
        return out

    def rerank(
        self, queries: Sequence[str], candidates: Sequence[Sequence[str]], k: int | None = None
    ) -> list[list[Hit]]:
        """Each query's candidate items in the model's order (unknown items left out)."""
        out: list[list[Hit]] = []
        for s in range(0, len(queries), self.batch_size):
            cand = candidates[s : s + self.batch_size]
            rows = self._rows(cand)
            enc = self.retriever.encode(queries[s : s + self.batch_size])
            width = rows.shape[1] if k is None else k
            out.extend(self._hits(rank_candidates(rows, self.retriever.score(enc, rows), width)))
        return out

    def _rows(self, candidates: Sequence[Sequence[str]]) -> npt.NDArray[np.int64]:
        width = max((len(c) for c in candidates), default=0)
        rows = np.full((len(candidates), width), -1, dtype=np.int64)
        for i, cand in enumerate(candidates):
            got = [self._row.get(c, -1) for c in dict.fromkeys(cand)]
            rows[i, : len(got)] = got
        return rows
