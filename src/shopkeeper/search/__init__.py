"""Product search: BM25 with spelling correction, dense retrieval, hybrid fusion, filters,
facets, personalization, evaluation.

Needs the `ml` extra (bm25s, PyStemmer, RapidFuzz, SciPy; FAISS and the encoder for
dense retrieval), imported when first used.
"""

from __future__ import annotations

from shopkeeper.search._analyze import Analyzer
from shopkeeper.search._assets import SEARCH_INDEX_ASSET, build_search_index, load_search_index
from shopkeeper.search._data import Judged, load_judged, split_queries
from shopkeeper.search._evaluate import (
    SEARCH_MODELS,
    SearchEvalConfig,
    evaluate_search,
    run_full,
    run_rerank,
)
from shopkeeper.search._filters import ItemAttributes, SearchFilters, parse_filters, price_buckets
from shopkeeper.search._fusion import FusionConfig, HybridRetriever, fuse
from shopkeeper.search._lexical import LexicalConfig, LexicalIndex
from shopkeeper.search._metrics import mrr_at_k, ndcg_at_k, recall_at_k, rmse
from shopkeeper.search._open import open_dense, open_lexical
from shopkeeper.search._personalize import (
    ItemVectors,
    PersonalizationConfig,
    Personalized,
    UserProfile,
    blend,
    load_user_profiles,
    personalize,
)
from shopkeeper.search._qrels import Qrels
from shopkeeper.search._retrieve import DenseRetriever, LexicalRetriever, Ranked, Retriever
from shopkeeper.search._searcher import FACET_POOL, Searcher, SearchPage
from shopkeeper.search._spelling import SpellingConfig, SpellingCorrector
from shopkeeper.search._typos import misspell

__all__ = [
    "FACET_POOL",
    "SEARCH_INDEX_ASSET",
    "SEARCH_MODELS",
    "Analyzer",
    "DenseRetriever",
    "FusionConfig",
    "HybridRetriever",
    "ItemAttributes",
    "ItemVectors",
    "Judged",
    "LexicalConfig",
    "LexicalIndex",
    "LexicalRetriever",
    "PersonalizationConfig",
    "Personalized",
    "Qrels",
    "Ranked",
    "Retriever",
    "SearchEvalConfig",
    "SearchFilters",
    "SearchPage",
    "Searcher",
    "SpellingConfig",
    "SpellingCorrector",
    "UserProfile",
    "blend",
    "build_search_index",
    "evaluate_search",
    "fuse",
    "load_judged",
    "load_search_index",
    "load_user_profiles",
    "misspell",
    "mrr_at_k",
    "ndcg_at_k",
    "open_dense",
    "open_lexical",
    "parse_filters",
    "personalize",
    "price_buckets",
    "recall_at_k",
    "rmse",
    "run_full",
    "run_rerank",
    "split_queries",
]
