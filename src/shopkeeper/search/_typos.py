"""Seeded misspellings of queries, to measure how much nDCG spelling correction recovers.

One edit (drop, double, swap with the next, or replace a letter by a keyboard neighbour)
in the query's longest alphabetic word of at least `min_length` letters, never its first
letter; queries without such a word stay as they are.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

_NEIGHBOURS = {
    r[i]: r[max(i - 1, 0)] + r[i + 1 : i + 2]
    for r in ("qwertyuiop", "asdfghjkl", "zxcvbnm")
    for i in range(len(r))
}
_WORD = re.compile(r"[A-Za-z]+")


def misspell(queries: Sequence[str], seed: int = 0, min_length: int = 5) -> list[str]:
    """Each query with one typing error in its longest word (seeded).

    >>> misspell(["cordless drill", "2x4"], seed=1)
    ['cordlesss drill', '2x4']
    """
    rng = np.random.default_rng(seed)
    out = []
    for q in queries:
        words = [m for m in _WORD.finditer(q) if len(m.group()) >= min_length]
        kind, u = int(rng.integers(4)), float(rng.random())
        if not words:
            out.append(q)
            continue
        m = max(words, key=lambda w: len(w.group()))
        w = m.group()
        i = 1 + int(u * (len(w) - 2))  # a letter after the first, before the last
        c = w[i].lower()
        if kind == 0:
            w2 = w[:i] + w[i + 1 :]
        elif kind == 1:
            w2 = w[:i] + w[i] + w[i:]
        elif kind == 2:
            w2 = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
        else:
            near = _NEIGHBOURS.get(c, c)
            w2 = w[:i] + near[int(u * 997) % len(near)] + w[i + 1 :]
        out.append(q[: m.start()] + w2 + q[m.end() :])
    return out
