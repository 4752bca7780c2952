"""Micro-batching: concurrent requests for one model scored in one call.

Requests queue per group (a snapshot and k); a group is scored when it holds
`max_size` requests or `window_s` after its first one arrived, whichever comes first,
in one worker thread so the event loop never blocks on the model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BatchFn = Callable[[list[Any]], list[Any]]


@dataclass
class _Group(Generic[T, R]):
    fn: Callable[[list[T]], list[R]]
    items: list[T] = field(default_factory=list)
    futures: list[asyncio.Future[R]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None


class MicroBatcher:
    """Collects `submit`ted items per group and runs each group's function on a batch.

    Args:
        window_s: Longest wait for more items after the first (0: every item alone).
        max_size: Most items per call.
        on_batch: Called with each batch size (metrics).
    """

    def __init__(
        self,
        window_s: float,
        max_size: int,
        on_batch: Callable[[int], None] | None = None,
        threads: int = 1,
    ) -> None:
        self.window_s, self.max_size = window_s, max_size
        self.on_batch = on_batch
        self._groups: dict[Hashable, _Group[Any, Any]] = {}
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="shopkeeper-batch")
        self.pending = 0

    async def submit(self, group: Hashable, fn: Callable[[list[T]], list[R]], item: T) -> R:
        """Queue `item` in `group` (scored by `fn` on a list); await its own result."""
        loop = asyncio.get_running_loop()
        g = self._groups.get(group)
        if g is None:
            g = self._groups[group] = _Group(fn)
        fut: asyncio.Future[R] = loop.create_future()
        g.items.append(item)
        g.futures.append(fut)
        self.pending += 1
        if len(g.items) >= self.max_size or self.window_s <= 0:
            self._flush(group)
        elif g.timer is None:
            g.timer = loop.call_later(self.window_s, self._flush, group)
        return await fut

    def _flush(self, group: Hashable) -> None:
        g = self._groups.pop(group, None)
        if g is None:
            return
        if g.timer is not None:
            g.timer.cancel()
        loop = asyncio.get_running_loop()
        task = loop.run_in_executor(self._pool, self._run, g)
        if self.on_batch is not None:
            self.on_batch(len(g.items))
        task.add_done_callback(lambda t: self._resolve(g, t))

    @staticmethod
    def _run(g: _Group[Any, Any]) -> list[Any]:
        """Score the items whose callers still wait (a timed-out caller's work is skipped:
        under overload the backlog shrinks instead of growing)."""
        live = [i for i, f in enumerate(g.futures) if not f.done()]
        if not live:
            return [None] * len(g.items)
        results = g.fn([g.items[i] for i in live])
        out: list[Any] = [None] * len(g.items)
        for i, r in zip(live, results, strict=True):
            out[i] = r
        return out

    def _resolve(self, g: _Group[Any, Any], task: asyncio.Future[list[Any]]) -> None:
        self.pending -= len(g.futures)
        exc = task.exception()
        results = None if exc is not None else task.result()
        for i, fut in enumerate(g.futures):
            if fut.done():  # its caller gave up (timeout)
                continue
            if exc is not None:
                fut.set_exception(exc)
            else:
                assert results is not None
                fut.set_result(results[i])

    def close(self) -> None:
        """Stop the worker thread (pending batches finish first)."""
        self._pool.shutdown(wait=True)
