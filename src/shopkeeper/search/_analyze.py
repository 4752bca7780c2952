"""Text analysis for lexical search: lower-case word tokens, English stop words, stemming.

Tokenization and stop-word removal are bm25s's; stemming is PyStemmer's Snowball English
stemmer, applied once per distinct word. Items and queries go through the same analyzer.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from shopkeeper.features._encoder import require_ml

if TYPE_CHECKING:
    from collections.abc import Sequence

TOKEN_PATTERN = r"(?u)\b\w+\b"
"""Word tokens of one or more characters (sizes like `2` and `x` matter in a shop)."""


class Analyzer:
    """Turns texts into stemmed word tokens, stop words removed.

    >>> Analyzer().analyze(["The Cordless Drills", "a drill"])
    [['cordless', 'drill'], ['drill']]
    """

    def __init__(self, stem: bool = True, stopwords: bool = True) -> None:
        self.stem = stem
        self.stopwords = stopwords

    @cached_property
    def _stemmer(self) -> Any:
        return require_ml("Stemmer").Stemmer("english") if self.stem else None

    def words(self, texts: Sequence[str]) -> list[list[str]]:
        """Lower-case word tokens, nothing removed or stemmed (the spelling vocabulary)."""
        return _tokenize(texts, stopwords=None, stemmer=None)

    def analyze(self, texts: Sequence[str]) -> list[list[str]]:
        """Lower-case word tokens with stop words removed, then stemmed."""
        return _tokenize(texts, stopwords="en" if self.stopwords else None, stemmer=self._stemmer)


def _tokenize(texts: Sequence[str], stopwords: str | None, stemmer: Any) -> list[list[str]]:
    bm25s = require_ml("bm25s")
    if not texts:
        return []
    out = bm25s.tokenize(
        list(texts),
        lower=True,
        token_pattern=TOKEN_PATTERN,
        stopwords=stopwords,
        stemmer=stemmer,
        return_ids=False,
        show_progress=False,
        allow_empty=False,
    )
    return [[t for t in doc if t] for doc in out]
