"""The service's state and its answers: what the routers call.

One `Service` per worker process. It holds the current snapshot (swapped whole on
reload), the live event store, the cache and the micro-batcher, and turns requests
into answers with graceful degradation: a model that misses its deadline is replaced
by the popularity ranking, and the answer says so.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from shopkeeper.errors import ConfigError, NotFoundError, OverloadedError
from shopkeeper.logging import get_logger
from shopkeeper.rec import round_scores
from shopkeeper.rec._data import Histories
from shopkeeper.rec._metrics import top_k
from shopkeeper.serve._batcher import MicroBatcher
from shopkeeper.serve._cache import TTLCache
from shopkeeper.serve._events import EventValidator, Rejection
from shopkeeper.serve._keys import ApiKeyStore
from shopkeeper.serve._live import LiveEventStore, UserLive
from shopkeeper.serve._metrics import ServiceMetrics
from shopkeeper.serve._snapshot import Snapshot, open_snapshot, snapshot_key
from shopkeeper.warehouse import Workspace

if TYPE_CHECKING:
    import numpy.typing as npt

    from shopkeeper.search import SearchFilters
    from shopkeeper.serve._settings import ServeSettings

_log = get_logger(__name__)


@dataclass(frozen=True)
class _RecJob:
    history: npt.NDArray[np.int64]
    k: int
    include_seen: bool


class Service:
    """Everything one worker needs to answer requests.

    Args:
        settings: The service settings (workspace, limits, batching, cache).
    """

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.ws = Workspace.at(settings.home)
        if not self.ws.exists():
            raise NotFoundError(
                f"no Shopkeeper workspace at {self.ws.home}; run `shopkeeper ingest` first"
            )
        if settings.model_threads:
            _limit_threads(settings.model_threads)
        self.metrics = ServiceMetrics()
        self.keys = ApiKeyStore.of(self.ws)
        self.live = LiveEventStore.of(self.ws)
        self.pseudonymizer = self.ws.keys.load(create=False)
        self.cipher = self.ws.field_cipher.load()
        self.cache = TTLCache(settings.cache_size, settings.cache_ttl_s)
        self.batcher = MicroBatcher(
            settings.batch_window_ms / 1000.0,
            settings.batch_max,
            on_batch=self.metrics.batch_size.observe,
            enabled=settings.batching,
        )
        self._search_pool = ThreadPoolExecutor(1, thread_name_prefix="shopkeeper-search")
        self._searches = 0
        self._stamp: tuple[tuple[int, int], ...] = ()
        self.snapshot: Snapshot = self._open()
        self.started = time.time()

    # -- snapshots -----------------------------------------------------------------------

    def _open(self) -> Snapshot:
        key = snapshot_key(self.ws, self.live.erased_count())
        return self._published(open_snapshot(self.ws, key, self.settings.model_threads))

    def _published(self, snap: Snapshot) -> Snapshot:
        """`snap`, with the metrics that describe what is served set from it."""
        m = self.metrics
        m.model_version.set(snap.model_version)
        m.snapshot_loaded.set(time.time())
        if snap.data_latest_us is not None:
            m.data_latest.set(snap.data_latest_us / 1e6)
        return snap

    def reload_if_changed(self) -> bool:
        """Open a new snapshot when any served version changed; True when swapped.

        The old snapshot keeps serving until the new one is complete; requests that
        already hold it finish with it.
        """
        erased = self.live.erased_count()
        stamp = self._catalog_stamp()
        if stamp == self._stamp and erased == self.snapshot.key["erased"]:
            return False  # the catalog file did not change: skip opening it (tail latency)
        key = snapshot_key(self.ws, erased)
        self._stamp = stamp
        if key == self.snapshot.key:
            return False
        snap = self._published(open_snapshot(self.ws, key, self.settings.model_threads))
        old, self.snapshot = self.snapshot, snap
        if snap.key.get("events", 0):
            self.live.prune(snap.key["events"])
        _log.info("snapshot swapped", old=old.id, new=snap.id)
        return True

    def _catalog_stamp(self) -> tuple[tuple[int, int], ...]:
        """Size and modification time of the catalog file and its WAL (a commit moves them)."""
        out = []
        for p in (self.ws.catalog_path, self.ws.catalog_path.with_suffix(".duckdb.wal")):
            try:
                st = p.stat()
            except FileNotFoundError:
                continue
            out.append((st.st_mtime_ns, st.st_size))
        return tuple(out)

    def readiness(self) -> dict[str, Any]:
        """What is loaded: the basis of `/health` readiness."""
        s = self.snapshot
        return {
            "snapshot": s.id,
            "versions": s.key,
            "recommend": s.model is not None,
            "search": s.searcher is not None,
            "similar": s.ann is not None,
            "users": 0 if s.histories is None else len(s.histories),
            "uptime_s": round(time.time() - self.started, 1),
        }

    # -- recommend -----------------------------------------------------------------------

    def _check_k(self, k: int) -> None:
        if not 1 <= k <= self.settings.max_k:
            raise ConfigError(f"k must be between 1 and {self.settings.max_k}, not {k}")

    def history(self, snap: Snapshot, pseudo: str) -> tuple[npt.NDArray[np.int64], UserLive]:
        """The user's model items, oldest first: snapshot history, then live events.

        Each item counts once, at its first event, as in training.
        """
        assert snap.model is not None
        live = self.live.for_user(pseudo, snap.model.event_types, self.settings.live_window)
        past = (
            np.zeros(0, np.int64)
            if live.erased or snap.histories is None
            else snap.histories.row(pseudo)
        )
        fresh = [snap.item_row[i] for i in live.items if i in snap.item_row]
        if not fresh:
            return past, live
        both = np.concatenate([past, np.asarray(fresh, dtype=np.int64)])
        _, first = np.unique(both, return_index=True)
        return both[np.sort(first)], live

    async def recommend(self, user_id: str, k: int, include_seen: bool = False) -> dict[str, Any]:
        """The `k` best items for a user (the id as the source gave it), best first."""
        self._check_k(k)
        snap = self.snapshot
        if snap.model is None:
            raise NotFoundError("no trained recommender; run `shopkeeper train rec` first")
        pseudo = self.pseudonymizer.pseudonymize(user_id)
        if not pseudo or not user_id.strip():
            raise ConfigError("empty user id")
        hist, live = self.history(snap, pseudo)  # indexed SQLite reads: ~0.1 ms, inline
        key = (pseudo, "rec", snap.id, live.watermark, live.erased, k, include_seen)
        cached = self.cache.get(key)
        self.metrics.cache.labels("/recommend", "miss" if cached is None else "hit").inc()
        if cached is not None:
            return {**cached, "cached": True}
        out: dict[str, Any] = {
            "user_id": user_id,
            "model_version": snap.model_version,
            "history_length": len(hist),
            "live_events": len(live.items),
            "fallback": None,
            "cached": False,
        }
        if len(hist) == 0:
            out["items"] = self._popular(snap, hist, k, include_seen)
            out["fallback"] = "popularity"
            out["reason"] = "no history"
        else:
            job = _RecJob(hist, k, include_seen)
            try:
                out["items"] = await asyncio.wait_for(
                    self.batcher.submit(
                        (snap.id, "rec"), lambda jobs: self._score(snap, jobs), job
                    ),
                    self.settings.request_timeout_ms / 1000.0,
                )
            except TimeoutError:
                self.metrics.fallbacks.labels("/recommend", "timeout").inc()
                out["items"] = self._popular(snap, hist, k, include_seen)
                out["fallback"] = "popularity"
                out["reason"] = "timeout"
                return out  # a degraded answer is not cached
        self.cache.put(key, out)
        return out

    def _score(self, snap: Snapshot, jobs: list[_RecJob]) -> list[list[dict[str, Any]]]:
        """One model call for a batch of histories; each job's top k."""
        assert snap.model is not None
        model = snap.model
        lengths = np.array([len(j.history) for j in jobs], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        h = Histories(indptr, np.concatenate([j.history for j in jobs]), len(model.item_ids))
        scores = model.scorer.score(h)
        for r, j in enumerate(jobs):
            if not j.include_seen:
                scores[r, j.history] = -np.inf
        kk = min(max(j.k for j in jobs), len(model.item_ids))
        top = top_k(scores, kk)
        vals = round_scores(np.take_along_axis(scores, top, axis=1))
        return [_entries(model.item_ids, top[r, : j.k], vals[r, : j.k]) for r, j in enumerate(jobs)]

    def _popular(
        self, snap: Snapshot, seen: npt.NDArray[np.int64], k: int, include_seen: bool
    ) -> list[dict[str, Any]]:
        """The popularity ranking's top `k`, without the user's items unless asked."""
        assert snap.model is not None
        head = k if include_seen else k + len(seen)  # enough even if every seen one is in it
        rows, scores = snap.popular[:head], snap.popular_scores[:head]
        if not include_seen:
            keep = ~np.isin(rows, seen)
            rows, scores = rows[keep], scores[keep]
        return _entries(snap.model.item_ids, rows[:k], round_scores(scores[:k]))

    # -- similar and search --------------------------------------------------------------

    def similar(self, item_id: str, k: int) -> list[dict[str, Any]]:
        """The `k` items nearest to `item_id` by text embedding."""
        self._check_k(k)
        snap = self.snapshot
        if snap.ann is None:
            raise NotFoundError("no item index; run `shopkeeper features build` first")
        key = ("item:" + item_id, "similar", snap.id, k)
        cached = self.cache.get(key)
        self.metrics.cache.labels("/similar", "miss" if cached is None else "hit").inc()
        if cached is not None:
            return list(cached)
        out = snap.ann.similar(item_id, k)
        self.cache.put(key, out)
        return out

    async def run_search(
        self, query: str, k: int, filters: SearchFilters | None, user_id: str | None
    ) -> dict[str, Any]:
        """`search` on the worker's search thread (one query at a time: results never
        depend on what else is being searched).

        Raises:
            OverloadedError: `search_queue_max` searches are already queued (a 429).
        """
        if self._searches >= self.settings.search_queue_max:
            self.metrics.rejected.labels("search_queue").inc()
            raise OverloadedError("too many searches queued; retry shortly")
        self._searches += 1
        queued = time.monotonic()
        late_s = self.settings.search_timeout_ms / 1000.0
        loop = asyncio.get_running_loop()

        def run() -> dict[str, Any]:
            late = time.monotonic() - queued > late_s
            return self.search(query, k, filters, user_id, cheap=late)

        try:
            return await loop.run_in_executor(self._search_pool, run)
        finally:
            self._searches -= 1

    def close(self) -> None:
        """Stop the worker threads."""
        self.batcher.close()
        self._search_pool.shutdown(wait=True)

    def search(
        self,
        query: str,
        k: int,
        filters: SearchFilters | None,
        user_id: str | None,
        cheap: bool = False,
    ) -> dict[str, Any]:
        """The `k` best items for a query, with filters, personalized for `user_id`.

        With `cheap` (the request waited too long) BM25 alone answers, and says so.
        """
        self._check_k(k)
        query = query.strip()
        if not query:
            raise ConfigError("empty query")
        if len(query) > 500:
            raise ConfigError("query longer than 500 characters")
        snap = self.snapshot
        if snap.searcher is None:
            raise NotFoundError("no search index; run `shopkeeper search` once to build it")
        fkey = None if filters is None else filters.model_dump_json()
        tag = "q" if user_id is None else self.pseudonymizer.pseudonymize(user_id)
        key = (tag, "search", snap.id, query, k, fkey)
        cached = self.cache.get(key)
        self.metrics.cache.labels("/search", "miss" if cached is None else "hit").inc()
        if cached is not None:
            return {**cached, "cached": True}
        searcher = snap.lexical if cheap and snap.lexical is not None else snap.searcher
        hits = searcher.search([query], k, filters=filters, user=user_id)[0]
        out: dict[str, Any] = {
            "query": query,
            "model": searcher.name,
            "items": hits,
            "personalized": bool(hits and hits[0].get("personalized")),
            "cached": False,
            "fallback": None,
        }
        if searcher is not snap.searcher:
            self.metrics.fallbacks.labels("/search", "timeout").inc()
            out.update(fallback="bm25", reason="timeout")
            return out  # a degraded answer is not cached
        self.cache.put(key, out)
        return out

    # -- events --------------------------------------------------------------------------

    def post_events(self, raw: list[Any]) -> dict[str, Any]:
        """Validate a batch, store every valid event durably, report every bad one."""
        if len(raw) > self.settings.max_events_per_request:
            raise ConfigError(
                f"at most {self.settings.max_events_per_request} events per request, not {len(raw)}"
            )
        snap = self.snapshot
        now = datetime.now(UTC)
        validator = EventValidator(snap.knows_item, self.pseudonymizer, self.cipher)
        ok, bad = validator.validate(raw, now)
        seqs = self.live.append([e for _, e in ok], int(now.timestamp() * 1e6)) if ok else []
        self.metrics.events.labels("accepted").inc(len(ok))
        for r in bad:
            self.metrics.events.labels(r.reason).inc()
        return {
            "accepted": len(ok),
            "rejected": len(bad),
            "ids": seqs,
            "errors": [_rejection(r) for r in bad],
        }

    def forget(self, user_id: str, actor: str) -> dict[str, Any]:
        """Erase a user everywhere: warehouse versions, live events, caches, snapshots."""
        from shopkeeper.warehouse import forget_user

        pseudo = self.pseudonymizer.pseudonymize(user_id)
        report = forget_user(self.ws, user_id, actor=actor)
        live = self.live.erase(pseudo, int(time.time() * 1e6))
        dropped = self.cache.drop_tag(pseudo)
        self.reload_if_changed()
        return {**report, "live_events_removed": live, "cache_entries_dropped": dropped}


def _entries(
    item_ids: list[str], rows: npt.NDArray[np.int64], scores: npt.NDArray[np.float64]
) -> list[dict[str, Any]]:
    """`[{"item_id", "score"}, …]` for ranked rows; -inf slots (nothing left) dropped."""
    return [
        {"item_id": item_ids[i], "score": s}
        for i, s in zip(rows.tolist(), scores.tolist(), strict=True)
        if np.isfinite(s)
    ]


def _limit_threads(n: int) -> None:
    """Cap PyTorch's and the BLAS libraries' threads in this process."""
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass


def _rejection(r: Rejection) -> dict[str, Any]:
    out: dict[str, Any] = {"index": r.index, "reason": r.reason}
    if r.field:
        out["field"] = r.field
    if r.detail:
        out["detail"] = r.detail
    return out
