"""BM25 over several item fields, one sparse term × item weight matrix.

Each field (title, brand, category path, description) gets its own bm25s index, so term
frequencies saturate and lengths normalize within the field; the per-field BM25 weights
are then summed with the field weights into one sparse matrix over a shared vocabulary
(the "most fields" multi-field BM25). A query batch is a sparse query × term matrix, and
scoring the batch is one sparse product with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat

from shopkeeper.features._encoder import require_ml
from shopkeeper.search._analyze import Analyzer
from shopkeeper.search._spelling import SpellingConfig, SpellingCorrector

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import numpy.typing as npt

FIELDS = ("title", "brand", "category_path", "description")
"""Item columns BM25 reads."""


class LexicalConfig(BaseModel):
    """BM25 parameters, field weights, analysis and spelling correction."""

    model_config = ConfigDict(extra="forbid")

    k1: PositiveFloat = 1.2
    """BM25 term-frequency saturation."""
    b: float = Field(default=0.75, ge=0.0, le=1.0)
    """BM25 length normalization."""
    field_weights: dict[str, NonNegativeFloat] = Field(
        default_factory=lambda: {
            "title": 1.0,
            "brand": 0.5,
            "category_path": 0.3,
            "description": 0.2,
        }
    )
    """Weight of each field's BM25 score in the sum (fields not listed are not indexed)."""
    stem: bool = True
    """Snowball English stemming."""
    stopwords: bool = True
    """Drop English stop words."""
    spelling: SpellingConfig = Field(default_factory=SpellingConfig)
    """Correction of query words the catalogue does not know."""


class LexicalIndex:
    """A multi-field BM25 index: item ids, vocabulary and the term × item weight matrix."""

    def __init__(
        self,
        item_ids: list[str],
        vocab: list[str],
        weights: Any,
        words: list[str],
        word_counts: npt.NDArray[np.int64],
        cfg: LexicalConfig | None = None,
    ) -> None:
        self.cfg = cfg or LexicalConfig()
        self.item_ids = item_ids
        self.vocab = vocab
        self.weights = weights.tocsr()
        """(terms, items) scipy CSR matrix of summed, field-weighted BM25 weights."""
        self.version = 0
        """The `search_index` version this was loaded from (0: not stored)."""
        self._term = {t: i for i, t in enumerate(vocab)}
        self.analyzer = Analyzer(stem=self.cfg.stem, stopwords=self.cfg.stopwords)
        self.speller = SpellingCorrector(words, word_counts, self.cfg.spelling)

    @classmethod
    def build(
        cls, item_ids: list[str], fields: Mapping[str, Sequence[str | None]], cfg: LexicalConfig
    ) -> LexicalIndex:
        """Index item texts (`fields`: column -> one text or None per item)."""
        sparse = require_ml("scipy.sparse")
        analyzer = Analyzer(stem=cfg.stem, stopwords=cfg.stopwords)
        n = len(item_ids)
        parts: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], Any]] = []
        term_of: dict[str, int] = {}
        word_count: dict[str, int] = {}
        for name, weight in cfg.field_weights.items():
            texts = [t or "" for t in fields.get(name, [None] * n)]
            if weight == 0 or not any(texts):
                continue
            for w, c in _word_counts(analyzer.words(texts)).items():
                word_count[w] = word_count.get(w, 0) + c
            rows, cols, vals = _field_bm25(analyzer.analyze(texts), cfg, term_of)
            parts.append((rows, cols, vals * weight))
        rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        cols = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        vals = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.float32)
        matrix = sparse.coo_matrix(
            (vals.astype(np.float32), (rows, cols)), shape=(len(term_of), n)
        ).tocsr()  # duplicates (one term in several fields) are summed
        words = list(word_count)
        counts = np.fromiter(word_count.values(), dtype=np.int64, count=len(words))
        return cls(item_ids, list(term_of), matrix, words, counts, cfg)

    def query_terms(self, queries: Sequence[str], spelling: bool = True) -> list[list[str]]:
        """Each query's analyzed terms, after spelling correction of unknown words."""
        words = self.analyzer.words(queries)
        if spelling:
            words = self.speller.correct(words)
        return self.analyzer.analyze([" ".join(w) for w in words])

    def term_ids(self, terms: Sequence[Sequence[str]]) -> list[list[int]]:
        """Each list's known terms as vocabulary ids, in order (repeats kept)."""
        return [[self._term[t] for t in ts if t in self._term] for ts in terms]

    def encode_terms(self, terms: Sequence[Sequence[str]]) -> Any:
        """The (queries, terms) binary CSR matrix of analyzed queries' known terms."""
        return self.encode_ids([sorted(set(t)) for t in self.term_ids(terms)])

    def encode_ids(self, ids: Sequence[Sequence[int]]) -> Any:
        """A (len(ids), terms) CSR matrix with a 1 at each row's term ids (no repeats)."""
        sparse = require_ml("scipy.sparse")
        indptr = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum([len(i) for i in ids], out=indptr[1:])
        indices = np.fromiter((t for i in ids for t in i), dtype=np.int64, count=int(indptr[-1]))
        data = np.ones(len(indices), dtype=np.float32)
        return sparse.csr_matrix((data, indices, indptr), shape=(len(ids), len(self.vocab)))

    def scores(self, encoded: Any) -> npt.NDArray[np.float32]:
        """(queries, items) dense BM25 scores of an encoded batch."""
        return np.asarray((encoded @ self.weights).toarray(), dtype=np.float32)

    @property
    def n_items(self) -> int:
        """Items in the index."""
        return len(self.item_ids)


def _word_counts(docs: list[list[str]]) -> dict[str, int]:
    words, counts = np.unique(
        np.array([w for d in docs for w in d], dtype=object), return_counts=True
    )
    return dict(zip(words.tolist(), counts.tolist(), strict=True))


def _field_bm25(
    tokens: list[list[str]], cfg: LexicalConfig, term_of: dict[str, int]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """One field's bm25s index as (global term row, item column, weight) triplets."""
    bm25s = require_ml("bm25s")
    model = bm25s.BM25(k1=cfg.k1, b=cfg.b, method="lucene")
    model.index([d or [""] for d in tokens], show_progress=False)
    sc = model.scores
    indptr = np.asarray(sc["indptr"], dtype=np.int64)
    vocab = sorted(model.vocab_dict.items(), key=lambda kv: kv[1])
    local_to_global = np.array(
        [term_of.setdefault(t, len(term_of)) if t else -1 for t, _ in vocab], dtype=np.int64
    )
    local_rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    rows = local_to_global[local_rows]
    keep = rows >= 0
    cols = np.asarray(sc["indices"], dtype=np.int64)
    vals = np.asarray(sc["data"], dtype=np.float32)
    return rows[keep], cols[keep], vals[keep]
