"""A spelling corrector built from the catalogue's own vocabulary.

A query word the catalogue never uses is replaced by the catalogue word nearest to it in
optimal string alignment distance (edits plus adjacent transpositions: `toliet` →
`toilet` is one edit), within one edit for words of 4 to 7 letters and two from 8 on;
ties go to the more frequent word. Distances come from RapidFuzz's batched C++ `cdist`,
one call per chunk of distinct unknown words of a whole query batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, ConfigDict, PositiveInt

from shopkeeper.features._encoder import require_ml

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt


class SpellingConfig(BaseModel):
    """When and how far a query word is corrected."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    """Correct unknown query words at all."""
    min_length: PositiveInt = 4
    """Shorter words are left alone (too many neighbours at one edit)."""
    long_word: PositiveInt = 8
    """Words this long or longer may be two edits away; shorter ones one."""
    chunk: PositiveInt = 512
    """Unknown words per `cdist` call (bounds the distance matrix's memory)."""


class SpellingCorrector:
    """Maps unknown query words to the nearest catalogue word.

    >>> sc = SpellingCorrector(["toilet", "seat", "toilet", "drill"], [5, 2, 5, 3])
    >>> sc.correct_words(["toliet", "seat", "dril", "xyzzy"])
    ['toilet', 'seat', 'drill', 'xyzzy']
    """

    def __init__(
        self,
        words: Sequence[str],
        counts: Sequence[int] | npt.NDArray[np.int64],
        cfg: SpellingConfig | None = None,
    ) -> None:
        self.cfg = cfg or SpellingConfig()
        freq: dict[str, int] = {}
        for w, c in zip(words, np.asarray(counts, dtype=np.int64).tolist(), strict=True):
            freq[w] = freq.get(w, 0) + c
        self.vocab = freq
        self._words = list(freq)
        self._counts = np.fromiter(freq.values(), dtype=np.int64, count=len(freq))

    def _candidates(self, unknown: list[str]) -> dict[str, str]:
        """The correction of each unknown word that has one within its edit budget."""
        rf = require_ml("rapidfuzz")
        out: dict[str, str] = {}
        if not unknown or not self._words:
            return out
        budget = np.array([1 if len(w) < self.cfg.long_word else 2 for w in unknown], np.int64)
        # Ties on distance go to the more frequent word: rank = distance * (max + 1) - count.
        tie = self._counts.max() + 1
        for start in range(0, len(unknown), self.cfg.chunk):
            part = unknown[start : start + self.cfg.chunk]
            dist = rf.process.cdist(
                part,
                self._words,
                scorer=rf.distance.OSA.distance,
                score_cutoff=2,
                dtype=np.int32,
                workers=-1,
            ).astype(np.int64)
            rank = dist * tie - self._counts[None, :]
            best = rank.argmin(axis=1)
            best_dist = dist[np.arange(len(part)), best]
            ok = best_dist <= budget[start : start + len(part)]
            out.update({w: self._words[b] for w, b, k in zip(part, best, ok, strict=True) if k})
        return out

    def correct_words(self, words: Sequence[str]) -> list[str]:
        """Each word, or its correction when the catalogue does not know it."""
        return self.correct([list(words)])[0]

    def _unknown(self, words: Sequence[str]) -> list[str]:
        n = self.cfg.min_length
        return sorted({w for w in words if w not in self.vocab and len(w) >= n and w.isalpha()})

    def correct(self, token_lists: Sequence[Sequence[str]]) -> list[list[str]]:
        """Correct every word of a batch of tokenized queries (one `cdist` per chunk)."""
        if not self.cfg.enabled:
            return [list(t) for t in token_lists]
        fix = self._candidates(self._unknown([w for ts in token_lists for w in ts]))
        return [[fix.get(w, w) for w in ts] for ts in token_lists]
