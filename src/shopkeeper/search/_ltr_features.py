"""Features of (query, item) pairs for the learning-to-rank model, computed in batches.

Every feature is a number about one pair that does not depend on the other candidates,
so a pair scores the same in a top-k search and in the rerank protocol (a fused score is
normalized over the candidates, so it is not one): BM25 and the dense cosine; how many
of the query's analyzed terms the item's indexed fields hold (plain, and weighted by the
terms' inverse document frequency); whether the query's first and last terms are among
them; the overlap of the character trigrams of the query and the item text (it
catches the plurals, compounds and typos the term match misses); the share of the
query's adjacent term pairs that are adjacent in the item text too (`cordless drill`
against a drill bit that fits cordless tools); and the numbers: how many the query has,
the share of them the item text holds, and whether it misses one while naming others (a
`1/2 in.` query against a `3/4 in.` fitting; numbers are compared by value, so `1-1/2`,
`1 1/2` and `1.5` are one). Except the dense cosine (the retriever's), all are sparse
products over whole batches of pairs: no Python loop over pairs.
"""

from __future__ import annotations

import re
import zipfile
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np

from shopkeeper.features._encoder import require_ml
from shopkeeper.logging import get_logger
from shopkeeper.search._digest import text_digests

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import numpy.typing as npt

    from shopkeeper.search._lexical import LexicalIndex

FEATURES = (
    "bm25",
    "dense",
    "query_terms",
    "matched_terms",
    "matched_share",
    "matched_idf_share",
    "first_term",
    "last_term",
    "item_terms",
    "char3_share",
    "char3_jaccard",
    "bigram_share",
    "query_numbers",
    "number_share",
    "number_missing",
)
"""The columns of a pair's feature vector, in order."""

_log = get_logger(__name__)

GRAM_BUCKETS = 2**20
"""Hash buckets of the character trigrams, term pairs and numbers (collisions are rare
at this size)."""

_NUMBER = re.compile(
    r"(?<![0-9.])(?:(\d{0,12}\.\d{1,12})"
    r"|(?:(\d{1,12})[ -](?=\d{1,12}/))?(\d{1,12})(?:/(\d{1,12}))?)(?![0-9])"
)
"""A decimal, or a whole number, fraction or mixed number (`1 1/2`, `1-1/2`); longer digit
runs are codes, not numbers."""


def numbers(text: str) -> list[str]:
    """The numbers a text names, each once, by value (`2x4` names 2 and 4).

    >>> numbers("1-1/2 in. x 10 ft. PVC Pipe, 2x4, 1.50 and 3/4 or 007, model 12-3")
    ['1.5', '10', '2', '4', '0.75', '7', '12', '3']
    """
    found: dict[str, None] = {}
    for decimal, whole, num, den in _NUMBER.findall(text):
        if decimal:
            value = float(decimal)
        elif den:
            if int(den) == 0:
                continue
            value = int(whole or 0) + int(num) / int(den)
        else:
            found[str(int(num))] = None
            continue
        found[str(int(value)) if value.is_integer() else f"{value:.4g}"] = None
    return list(found)


class PairFeatures:
    """The catalogue's side of the pair features, built once: each item's indexed terms
    (from the BM25 index), the terms' IDF and each item text's character trigrams.

    Args:
        index: The BM25 index (its term × item matrix says which terms an item holds).
        texts: Each catalogue row's item text (the same rows as the index).
        stored: A file of `save`: its hashed trigrams, term pairs and numbers are taken
            when it was saved for these texts under the same analysis, else computed
            (on Home Depot's 45,876 titles computing them takes about 2.5 s).
    """

    def __init__(
        self, index: LexicalIndex, texts: Sequence[str], stored: Path | None = None
    ) -> None:
        if len(texts) != index.n_items:
            raise ValueError(f"{len(texts)} item texts for {index.n_items} catalogue rows")
        self.index = index
        self._item_weights = index.weights.T.tocsr()
        """(items, terms) each item's BM25 weight of each term."""
        holds = self._item_weights.copy()
        holds.data = (holds.data != 0).astype(np.float32)
        holds.eliminate_zeros()
        self._item_terms = holds
        """(items, terms) 1 where the item's indexed fields hold the term."""
        df = np.maximum(np.bincount(holds.indices, minlength=len(index.vocab)), 1)
        self._idf = np.log((index.n_items + 1) / df).astype(np.float32)
        self._n_terms = np.diff(self._item_terms.indptr).astype(np.float32)
        self._hasher = _gram_hasher()
        self._bag = _bag_hasher()
        self._digests = text_digests(texts)
        """The texts' digests: the key of the stored bags."""
        bags = _load_bags(stored, self._digests, _analysis(index)) if stored is not None else None
        if bags is None:
            bags = (
                self._hasher.transform(list(texts)).tocsr(),
                self._bag.transform(map(_bigrams, index.analyzer.analyze(texts))).tocsr(),
                self._bag.transform(map(numbers, texts)).tocsr(),
            )
        self._grams, self._bigrams, self._numbers = bags
        self._n_grams = np.diff(self._grams.indptr).astype(np.float32)
        self._n_numbers = np.diff(self._numbers.indptr).astype(np.float32)

    def save(self, path: Path) -> Path:
        """Write the item texts' hashed trigrams, term pairs and numbers (binary: only
        their positions), keyed by the texts' digests and the analysis; the path."""
        arrays: dict[str, Any] = {
            "digests": self._digests,
            "analysis": np.array(_analysis(self.index)),
        }
        for name, bag in zip(_BAGS, (self._grams, self._bigrams, self._numbers), strict=True):
            arrays[f"{name}_indptr"] = bag.indptr
            arrays[f"{name}_indices"] = bag.indices
        with path.open("wb") as fh:
            np.savez(fh, **arrays)
        return path

    def bm25(self, encoded: Any, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """(queries, candidates) BM25 of each query (`LexicalIndex.encode`'s matrix) with
        its candidate rows, summed over the pairs' terms only; NaN where the row is -1."""
        out = np.full(rows.shape, np.nan, dtype=np.float32)
        valid = rows >= 0
        if valid.any():
            pair_q = np.nonzero(valid)[0]
            out[valid] = _pair_dot(encoded, self._item_weights[rows[valid]], pair_q)
        return out

    def lexical(
        self,
        queries: Sequence[str],
        terms: Sequence[Sequence[str]],
        rows: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.float32]:
        """(queries, candidates, 13) the text features (`query_terms` … `number_missing`)
        of each query (its text and its analyzed terms, `LexicalRetriever.analyze`) with
        its candidate rows; NaN where the row is -1."""
        n, d = rows.shape
        out = np.full((n, d, len(FEATURES) - 2), np.nan, dtype=np.float32)
        valid = rows >= 0
        if not valid.any():
            return out
        pair_q = np.nonzero(valid)[0]
        pair_row = rows[valid]
        term_ids = self.index.term_ids(terms)
        unique = [sorted(set(t)) for t in term_ids]
        q_terms = self.index.encode_ids(unique)
        q_idf = q_terms.multiply(self._idf[None, :]).tocsr()
        first = self.index.encode_ids([t[:1] for t in term_ids])
        last = self.index.encode_ids([t[-1:] for t in term_ids])
        held = self._item_terms[pair_row]
        q_count = np.array([len(u) for u in unique], dtype=np.float32)
        idf_total = np.asarray(q_idf.sum(axis=1)).ravel()
        matched = _pair_dot(q_terms, held, pair_q)
        idf_matched = _pair_dot(q_idf, held, pair_q)
        q_grams = self._hasher.transform(list(queries)).tocsr()
        q_gram_count = np.diff(q_grams.indptr).astype(np.float32)
        shared = _pair_dot(q_grams, self._grams[pair_row], pair_q)
        union = q_gram_count[pair_q] + self._n_grams[pair_row] - shared
        q_bigrams = self._bag.transform(map(_bigrams, terms)).tocsr()
        q_bigram_count = np.diff(q_bigrams.indptr).astype(np.float32)[pair_q]
        bigrams = _pair_dot(q_bigrams, self._bigrams[pair_row], pair_q)
        q_numbers = self._bag.transform(map(numbers, queries)).tocsr()
        q_number_count = np.diff(q_numbers.indptr).astype(np.float32)[pair_q]
        held_numbers = _pair_dot(q_numbers, self._numbers[pair_row], pair_q)
        with np.errstate(invalid="ignore", divide="ignore"):
            cols = [
                q_count[pair_q],
                matched,
                np.where(q_count[pair_q] > 0, matched / q_count[pair_q], 0.0),
                np.where(idf_total[pair_q] > 0, idf_matched / idf_total[pair_q], 0.0),
                _pair_dot(first, held, pair_q),
                _pair_dot(last, held, pair_q),
                self._n_terms[pair_row],
                np.where(q_gram_count[pair_q] > 0, shared / q_gram_count[pair_q], 0.0),
                np.where(union > 0, shared / union, 0.0),
                np.where(q_bigram_count > 0, bigrams / q_bigram_count, 0.0),
                q_number_count,
                np.where(q_number_count > 0, held_numbers / q_number_count, 0.0),
                (held_numbers < q_number_count) & (self._n_numbers[pair_row] > 0),
            ]
        out[valid] = np.stack(cols, axis=1).astype(np.float32)
        return out


_BAGS = ("grams", "bigrams", "numbers")
_BAGS_FORMAT = 1
"""Bumped whenever the hashing of a bag changes, so older files are not read."""


def _analysis(index: LexicalIndex) -> str:
    """What the stored bags depend on besides the texts."""
    a = index.analyzer
    return f"v{_BAGS_FORMAT} buckets={GRAM_BUCKETS} stem={a.stem} stopwords={a.stopwords}"


def _load_bags(path: Path, digests: npt.NDArray[np.int64], analysis: str) -> tuple[Any, ...] | None:
    """The bags stored at `path` when they were saved for the same texts (digests, in
    order) and analysis; else None (missing or unreadable file, changed catalogue)."""
    sparse = require_ml("scipy.sparse")
    try:
        with path.open("rb") as fh, np.load(fh) as f:
            if str(f["analysis"]) != analysis or not np.array_equal(f["digests"], digests):
                return None
            bags = []
            for name in _BAGS:
                indptr, indices = f[f"{name}_indptr"], f[f"{name}_indices"]
                data = np.ones(len(indices), dtype=np.float32)
                shape = (len(digests), GRAM_BUCKETS)
                bags.append(sparse.csr_matrix((data, indices, indptr), shape=shape))
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        _log.debug("stored item features unreadable", path=str(path), error=str(exc))
        return None
    return tuple(bags)


def _gram_hasher() -> Any:
    """scikit-learn's stateless hasher of lower-cased character trigrams within words."""
    return _hasher(analyzer="char_wb", ngram_range=(3, 3))


def _bag_hasher() -> Any:
    """scikit-learn's stateless hasher of ready-made token lists (term pairs, numbers)."""
    return _hasher(analyzer=_as_is)


def _hasher(**analysis: Any) -> Any:
    """A binary `HashingVectorizer` into `GRAM_BUCKETS` buckets (no vocabulary to fit)."""
    text = require_ml("sklearn.feature_extraction.text")
    return text.HashingVectorizer(
        **analysis,
        n_features=GRAM_BUCKETS,
        alternate_sign=False,
        norm=None,
        binary=True,
        dtype=np.float32,
    )


def _as_is(tokens: list[str]) -> list[str]:
    return tokens


def _bigrams(terms: Sequence[str]) -> list[str]:
    """Adjacent term pairs: `["cordless", "drill", "kit"]` -> `cordless drill`, `drill kit`."""
    return [f"{a} {b}" for a, b in pairwise(terms)]


def _pair_dot(queries: Any, items: Any, pair_q: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """Row-wise dot products of `queries[pair_q]` and `items` (one item row per pair)."""
    return np.asarray(queries[pair_q].multiply(items).sum(axis=1), dtype=np.float64).ravel()
