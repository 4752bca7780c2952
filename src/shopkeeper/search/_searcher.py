"""The search entry point: one model over the workspace, queries in batches, ids out.

A search may be filtered (category, brand, price: applied inside retrieval), faceted
(counts over each query's candidate pool) and personalized for one user (the pool
reordered by the blend of query score and the user's vector).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from shopkeeper.errors import ConfigError
from shopkeeper.features import EMBEDDINGS_ASSET, INDEX_ASSET
from shopkeeper.logging import get_logger
from shopkeeper.search._assets import SEARCH_INDEX_ASSET
from shopkeeper.search._filters import ItemAttributes, SearchFilters, read_item_attributes
from shopkeeper.search._fusion import FusionConfig, HybridRetriever, rank_candidates
from shopkeeper.search._ltr import LtrRetriever, has_ltr, ltr_params, open_ltr
from shopkeeper.search._open import has_dense, open_dense, open_lexical
from shopkeeper.search._personalize import (
    ItemVectors,
    PersonalizationConfig,
    Personalized,
    UserProfile,
    load_user_profiles,
    personalize,
)
from shopkeeper.search._ranker_asset import has_ranker, open_reranked, stored_params
from shopkeeper.search._rerank import RerankedRetriever
from shopkeeper.search._retrieve import DenseRetriever, LexicalRetriever, Ranked
from shopkeeper.search._tuned_dense import (
    beats_base,
    open_tuned_dense,
    tuned_helps,
    tuned_hybrid,
)
from shopkeeper.warehouse import Warehouse

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

    from shopkeeper.features import ItemEncoder
    from shopkeeper.search._retrieve import Retriever
    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)

SearchModel = Literal[
    "auto", "bm25", "dense", "hybrid", "dense-tuned", "hybrid-tuned", "ranker", "ltr"
]
Hit = dict[str, Any]

FACET_POOL = 100
"""Candidates per query that facets count (the top retrieved items after the filters;
at least k)."""

PROFILE_CACHE = 10_000
"""Users whose vectors a searcher keeps (the oldest read is dropped first)."""


@dataclass
class SearchPage:
    """One query's hits, and its facets when asked for."""

    hits: list[Hit]
    facets: dict[str, Any] | None = None


class Searcher:
    """Searches the catalogue with one retriever; results as `{"item_id", "score"}` lists.

    Args:
        retriever: BM25, dense or hybrid, over `retriever.item_ids`.
        batch_size: Queries encoded and scored together.
        workspace: Where item attributes (filters, facets), item vectors and user vectors
            (personalization) are read from when first needed.
        attributes: The catalogue's brand, category and price (instead of reading them).
        item_vectors: Item vectors for personalization (instead of reading them).
    """

    def __init__(
        self,
        retriever: Retriever,
        batch_size: int = 512,
        workspace: Workspace | None = None,
        attributes: ItemAttributes | None = None,
        item_vectors: ItemVectors | None = None,
    ) -> None:
        self.retriever = retriever
        self.item_ids: list[str] = retriever.item_ids
        self.batch_size = batch_size
        self.workspace = workspace
        self._row = {item: i for i, item in enumerate(self.item_ids)}
        self._profiles: dict[str, UserProfile] = {}
        if attributes is not None:
            self.__dict__["attributes"] = attributes
        if item_vectors is not None:
            self.__dict__["item_vectors"] = item_vectors

    @classmethod
    def open(
        cls,
        ws: Workspace,
        model: SearchModel = "auto",
        fusion: FusionConfig | None = None,
        encoder: ItemEncoder | None = None,
        spelling: bool = True,
    ) -> Searcher:
        """A searcher over the workspace's latest items.

        `auto` is the best configuration the workspace has: of the learning-to-rank trees
        (`train search --model ltr`) and the ranker of `train search`, each over its first
        stage (BM25, hybrid or hybrid-tuned), the one with the higher validation nDCG@10
        among those stored that beat their first stage on their validation queries; else
        hybrid with the fine-tuned
        bi-encoder when one is stored and beat the pre-trained encoder on its validation
        queries; else hybrid when `features build` has made item vectors; else BM25.
        `dense-tuned` and `hybrid-tuned` (the fine-tuned encoder, hybrid with the fusion
        tuned for it when `fusion` is not given) need `train search --model bi-encoder`.

        Raises:
            ConfigError: dense or hybrid asked for without item vectors.
            NotFoundError: ranker, ltr or a tuned model asked for and none has been trained.
        """
        lexical = open_lexical(ws, spelling=spelling)
        dense_ok = model != "bm25" and has_dense(ws)
        if model == "auto":
            model = _best_trained(ws, dense_ok) or model
        if model == "ltr":
            return cls(open_ltr(ws, lexical, encoder=encoder), workspace=ws)
        if model == "ranker":
            return cls(open_reranked(ws, lexical, encoder=encoder), workspace=ws)
        if model == "auto" and tuned_helps(ws):
            model = "hybrid-tuned"
        if model == "dense-tuned":
            return cls(open_tuned_dense(ws, lexical.item_ids), workspace=ws)
        if model == "hybrid-tuned":
            return cls(tuned_hybrid(ws, lexical, fusion), workspace=ws)
        if model == "auto":
            model = "hybrid" if dense_ok else "bm25"
        if model == "bm25":
            return cls(lexical, workspace=ws)
        if not dense_ok:
            raise ConfigError(f"{model} search needs item vectors: run `shopkeeper features build`")
        dense = open_dense(ws, lexical.item_ids, encoder)
        retriever = dense if model == "dense" else HybridRetriever(lexical, dense, fusion)
        return cls(retriever, workspace=ws)

    def _need_workspace(self, what: str) -> Workspace:
        if self.workspace is None:
            raise ConfigError(f"{what} needs a searcher opened on a workspace")
        return self.workspace

    @cached_property
    def attributes(self) -> ItemAttributes:
        """Brand, category and price of each catalogue row (read once, when first used)."""
        ws = self._need_workspace("filtering and faceting")
        index = _lexical(self.retriever)
        with Warehouse(ws, read_only=True) as wh:
            if index is not None and index.index.version:
                items = wh.version(SEARCH_INDEX_ASSET, index.index.version).params["items_version"]
            else:
                items = wh.version("items").version
            return read_item_attributes(wh, int(items), self.item_ids)

    @cached_property
    def item_vectors(self) -> ItemVectors | None:
        """Item vectors addressed by catalogue row: the dense retriever's, else the latest
        embeddings (None: `features build` has made none)."""
        ws = self._need_workspace("personalization")
        dense = _dense(self.retriever)
        if dense is None or dense.name != "dense":  # user vectors live in item_index's space
            return ItemVectors.load(ws, self.item_ids)
        with Warehouse(ws, read_only=True) as wh:
            emb = wh.version(INDEX_ASSET, dense.ann.version).params["embeddings_version"]
            model_id = wh.version(EMBEDDINGS_ASSET, emb).params.get("model_id")
        return ItemVectors.from_dense(dense, model_id)

    def profile(self, user_id: str) -> UserProfile:
        """The user's vector for personalization, or why there is none.

        Read once per user and kept (up to `PROFILE_CACHE` users), like the indexes a
        searcher holds: open a new searcher to see vectors of a later `features build`.
        """
        if user_id in self._profiles:
            return self._profiles[user_id]
        vectors = self.item_vectors
        if vectors is None:
            return UserProfile(user_id, None, "no item vectors (run `shopkeeper features build`)")
        ws = self._need_workspace("personalization")
        profile = load_user_profiles(ws, [user_id], vectors.model_id)[0]
        if len(self._profiles) >= PROFILE_CACHE:
            self._profiles.pop(next(iter(self._profiles)))
        self._profiles[user_id] = profile
        return profile

    def mask(self, filters: SearchFilters | None) -> npt.NDArray[np.bool_] | None:
        """The catalogue rows that pass `filters` (None: no filter).

        Raises:
            ConfigError: an unknown brand or category.
        """
        if filters is None or not filters.active:
            return None
        keep = self.attributes.mask(filters)
        if keep is not None and not keep.any():
            _log.warning("no item matches the filters", **filters.model_dump(exclude_none=True))
        return keep

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

    def _staged(
        self, ranked: Ranked, profile: UserProfile, done: Personalized | None
    ) -> list[list[Hit]]:
        """Hits with `stages` (retrieval, personalization) and the `personalized` flag."""
        hits = self._hits(ranked)
        retrieval = ranked.scores if done is None else done.retrieval
        for q, row in enumerate(hits):
            for j, h in enumerate(row):
                aff = None if done is None else round(float(done.affinity[q, j]), 6)
                h["stages"] = {
                    "retrieval": round(float(retrieval[q, j]), 6),
                    "personalization": aff,
                }
                h["personalized"] = profile.applied
        return hits

    def candidates(
        self, queries: Sequence[str], n: int, mask: npt.NDArray[np.bool_] | None = None
    ) -> Ranked:
        """Each query's top `n` rows and retrieval scores (rows where `mask` only)."""
        parts = [
            self.retriever.retrieve(
                self.retriever.encode(queries[s : s + self.batch_size]), n, mask
            )
            for s in range(0, len(queries), self.batch_size)
        ]
        if not parts:
            return Ranked(np.zeros((0, n), np.int64), np.zeros((0, n), np.float32))
        return Ranked(
            np.concatenate([p.rows for p in parts]), np.concatenate([p.scores for p in parts])
        )

    def search(
        self,
        queries: Sequence[str],
        k: int = 10,
        filters: SearchFilters | None = None,
        user: str | None = None,
        personalization: PersonalizationConfig | None = None,
    ) -> list[list[Hit]]:
        """The top `k` items of each query, best first.

        Args:
            queries: Query texts.
            k: Items per query.
            filters: Category, brand and price filters (applied before the top k).
            user: Personalize for this user (the id as the source gave it); the hits then
                carry `stages` and a `personalized` flag.
            personalization: The user's weight and the candidate pool.

        Raises:
            ConfigError: bad filters (unknown brand or category).
        """
        pages = self.pages(queries, k, filters, user, personalization, facets=False)
        return [p.hits for p in pages]

    def pages(
        self,
        queries: Sequence[str],
        k: int = 10,
        filters: SearchFilters | None = None,
        user: str | None = None,
        personalization: PersonalizationConfig | None = None,
        facets: bool = True,
    ) -> list[SearchPage]:
        """Like `search`, each query's hits with its facets (over its top `FACET_POOL`)."""
        cfg = personalization or PersonalizationConfig()
        mask = self.mask(filters)
        profile = None if user is None else self._profile_logged(user)
        personal = profile is not None and profile.applied
        n = max(k, cfg.pool if personal else 0, FACET_POOL if facets else 0)
        pool = self.candidates(queries, n, mask)
        return self._pages(pool, k, filters, profile, cfg, facets)

    def _profile_logged(self, user: str) -> UserProfile:
        profile = self.profile(user)
        if not profile.applied:
            _log.warning("search not personalized", reason=profile.reason)  # no raw user id
        return profile

    def _pages(
        self,
        pool: Ranked,
        k: int,
        filters: SearchFilters | None,
        profile: UserProfile | None,
        cfg: PersonalizationConfig,
        facets: bool,
    ) -> list[SearchPage]:
        """Facets over the pool, then its top `k` (personalized for `profile`) as hits."""
        done: Personalized | None = None
        if profile is not None and profile.vector is not None:
            assert self.item_vectors is not None
            aff = self.item_vectors.affinity(profile.vector[None, :])[:, 0]
            affinity = np.where(pool.rows >= 0, aff[np.maximum(pool.rows, 0)], 0)
            done = personalize(pool, affinity.astype(np.float32), cfg.weight, k)
            top = done.ranked
        else:
            top = _truncate(pool, k)
        hits = self._hits(top) if profile is None else self._staged(top, profile, done)
        if not facets:
            return [SearchPage(h) for h in hits]
        category = filters.category if filters is not None else None
        return [
            SearchPage(h, self.attributes.facets(rows, category))
            for h, rows in zip(hits, pool.rows[:, : max(k, FACET_POOL)], strict=True)
        ]

    def rerank(
        self,
        queries: Sequence[str],
        candidates: Sequence[Sequence[str]],
        k: int | None = None,
        filters: SearchFilters | None = None,
        user: str | None = None,
        personalization: PersonalizationConfig | None = None,
    ) -> list[list[Hit]]:
        """Each query's candidate items in the model's order (unknown items, and items the
        filters exclude, left out)."""
        pages = self.rerank_pages(queries, candidates, k, filters, user, personalization, False)
        return [p.hits for p in pages]

    def rerank_pages(
        self,
        queries: Sequence[str],
        candidates: Sequence[Sequence[str]],
        k: int | None = None,
        filters: SearchFilters | None = None,
        user: str | None = None,
        personalization: PersonalizationConfig | None = None,
        facets: bool = True,
    ) -> list[SearchPage]:
        """Like `rerank`, each query's hits with the facets of its kept candidates."""
        cfg = personalization or PersonalizationConfig()
        mask = self.mask(filters)
        profile = None if user is None else self._profile_logged(user)
        pages: list[SearchPage] = []
        for s in range(0, len(queries), self.batch_size):
            rows = self._rows(candidates[s : s + self.batch_size])
            if mask is not None:
                rows = np.where(np.append(mask, False)[rows], rows, -1)
            enc = self.retriever.encode(queries[s : s + self.batch_size])
            width = rows.shape[1] if k is None else k
            pool = rank_candidates(rows, self.retriever.score(enc, rows), rows.shape[1])
            pages.extend(self._pages(pool, width, filters, profile, cfg, facets))
        return pages

    def _rows(self, candidates: Sequence[Sequence[str]]) -> npt.NDArray[np.int64]:
        width = max((len(c) for c in candidates), default=0)
        rows = np.full((len(candidates), width), -1, dtype=np.int64)
        for i, cand in enumerate(candidates):
            got = [self._row.get(c, -1) for c in dict.fromkeys(cand)]
            rows[i, : len(got)] = got
        return rows


def _best_trained(ws: Workspace, dense_ok: bool) -> SearchModel | None:
    """`ltr` or `ranker`: of those stored whose first stage can be opened and that beat it
    on validation, the one with the higher validation nDCG@10 (None: neither)."""
    trained: dict[SearchModel, dict[str, Any]] = {}
    if has_ltr(ws):
        trained["ltr"] = ltr_params(ws)
    if has_ranker(ws):
        trained["ranker"] = stored_params(ws)
    found = [
        (float(p["validation_ndcg"]), name)
        for name, p in trained.items()
        if beats_base(p) and (dense_ok or p.get("fusion") is None or p.get("tuned_encoder"))
    ]
    return max(found)[1] if found else None


def _truncate(ranked: Ranked, k: int) -> Ranked:
    return Ranked(ranked.rows[:, :k], ranked.scores[:, :k])


def _dense(retriever: Retriever) -> DenseRetriever | None:
    if isinstance(retriever, RerankedRetriever | LtrRetriever):
        return _dense(retriever.base)
    if isinstance(retriever, DenseRetriever):
        return retriever
    if isinstance(retriever, HybridRetriever):
        return retriever.dense
    return None


def _lexical(retriever: Retriever) -> LexicalRetriever | None:
    if isinstance(retriever, RerankedRetriever | LtrRetriever):
        return _lexical(retriever.base)
    if isinstance(retriever, LexicalRetriever):
        return retriever
    if isinstance(retriever, HybridRetriever):
        return retriever.lexical
    return None
