"""A per-process LRU cache whose entries expire after a time to live."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Hashable


class TTLCache:
    """At most `size` entries, each valid for `ttl_s` seconds; thread-safe.

    >>> c = TTLCache(2, ttl_s=60)
    >>> c.put("a", 1); c.put("b", 2); c.put("c", 3)
    >>> c.get("a") is None, c.get("c")
    (True, 3)
    """

    def __init__(self, size: int, ttl_s: float) -> None:
        self.size, self.ttl_s = size, ttl_s
        self._data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: Hashable) -> Any | None:
        """The live value under `key` (marked recently used), or None."""
        if self.size <= 0:
            return None
        now = time.monotonic()
        with self._lock:
            entry = self._data.get(key)
            if entry is None or entry[0] < now:
                if entry is not None:
                    del self._data[key]
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return entry[1]

    def put(self, key: Hashable, value: Any) -> None:
        """Store `value`, dropping the least recently used entry when full."""
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = (time.monotonic() + self.ttl_s, value)
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def drop_tag(self, tag: Hashable) -> int:
        """Drop every entry whose key is a tuple starting with `tag` (e.g. a user)."""
        with self._lock:
            doomed = [k for k in self._data if isinstance(k, tuple) and k and k[0] == tag]
            for k in doomed:
                del self._data[k]
        return len(doomed)

    def clear(self) -> None:
        """Drop everything."""
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
