"""Digests of item texts: the key under which per-text work is stored and found again."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt


def text_digests(texts: Sequence[str]) -> npt.NDArray[np.int64]:
    """An 8-byte BLAKE2b digest of each text, as int64.

    >>> text_digests(["a", "a", "b"]).tolist()[0] == text_digests(["a"]).tolist()[0]
    True
    """
    return np.array(
        [
            int.from_bytes(hashlib.blake2b(t.encode("utf-8"), digest_size=8).digest(), "little")
            for t in texts
        ],
        dtype=np.uint64,
    ).view(np.int64)
