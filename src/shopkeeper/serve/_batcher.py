"""Micro-batching: concurrent requests for one model scored in one call.

Continuous batching: the model runs in one worker thread (the event loop never blocks
on it). A request that finds the model idle waits at most `window_s` for company and is
scored; requests that arrive while the model is busy queue per group (a snapshot) and
all go into the next call, up to `max_size`. At low load nothing waits; under load
batches grow by themselves, which is where a batch is cheaper per request than a call
each. Requests whose caller gave up (a deadline) are dropped before their call, so an
overload backlog shrinks instead of growing.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Group(Generic[T, R]):
    fn: Callable[[list[T]], list[R]]
    items: list[T] = field(default_factory=list)
    futures: list[asyncio.Future[R]] = field(default_factory=list)


class MicroBatcher:
    """Collects `submit`ted items per group and runs each group's function on a batch.

    Args:
        window_s: Longest wait for company when the model is idle (0: none).
        max_size: Most items per call.
        enabled: False scores every item in a call of its own (in arrival order).
        on_batch: Called with each batch size (metrics).
    """

    def __init__(
        self,
        window_s: float,
        max_size: int,
        on_batch: Callable[[int], None] | None = None,
        enabled: bool = True,
    ) -> None:
        self.window_s, self.max_size, self.enabled = window_s, max_size, enabled
        self.on_batch = on_batch
        self._groups: dict[Hashable, _Group[Any, Any]] = {}
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="shopkeeper-batch")
        self._busy = False
        self._timer: asyncio.TimerHandle | None = None
        self.pending = 0

    async def submit(self, group: Hashable, fn: Callable[[list[T]], list[R]], item: T) -> R:
        """Queue `item` in `group` (scored by `fn` on a list); await its own result."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self.pending += 1
        if not self.enabled:
            self._start(_Group(fn, [item], [fut]))
            return await fut
        g = self._groups.get(group)
        if g is None:
            g = self._groups[group] = _Group(fn)
        g.items.append(item)
        g.futures.append(fut)
        if not self._busy:
            if self.window_s <= 0 or len(g.items) >= self.max_size:
                self._next()
            elif self._timer is None:
                self._timer = loop.call_later(self.window_s, self._next)
        return await fut

    def _next(self) -> None:
        """Start the oldest group's next batch, unless the model is busy or nothing waits."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy or not self._groups:
            return
        key = next(iter(self._groups))
        g = self._groups[key]
        n = self.max_size
        batch = _Group(g.fn, g.items[:n], g.futures[:n])
        del g.items[:n], g.futures[:n]
        if not g.items:
            del self._groups[key]
        self._busy = True
        self._start(batch)

    def _start(self, g: _Group[Any, Any]) -> None:
        loop = asyncio.get_running_loop()
        task = loop.run_in_executor(self._pool, self._run, g)
        task.add_done_callback(lambda t: self._resolve(g, t))

    def _run(self, g: _Group[Any, Any]) -> list[Any]:
        """Score the items whose callers still wait; the others get None."""
        live = [i for i, f in enumerate(g.futures) if not f.done()]
        out: list[Any] = [None] * len(g.items)
        if not live:
            return out
        if self.on_batch is not None:
            self.on_batch(len(live))
        results = g.fn([g.items[i] for i in live])
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
        if self.enabled:
            self._busy = False
            self._next()

    def close(self) -> None:
        """Stop the worker thread (pending batches finish first)."""
        self._pool.shutdown(wait=True)
