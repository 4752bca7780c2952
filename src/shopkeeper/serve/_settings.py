"""Settings of the online service, read from `SHOPKEEPER_SERVE_*` (workers inherit them)."""

from __future__ import annotations

from pathlib import Path

from pydantic import NonNegativeFloat, PositiveFloat, PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServeSettings(BaseSettings):
    """How `shopkeeper serve` runs; every field can be set as `SHOPKEEPER_SERVE_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="SHOPKEEPER_SERVE_", extra="forbid")

    home: Path = Path(".shopkeeper")
    """The workspace served (the CLI passes its `--home`)."""
    max_inflight: PositiveInt = 32
    """Requests one worker holds at once, ever; more get 429 with Retry-After."""
    steady_inflight: PositiveInt = 8
    """Past this many in flight, a request is admitted only while the oldest one in flight
    is younger than `queue_age_ms`: a burst on a server that keeps up gets in, sustained
    overload is refused at about this many. At capacity the admitted requests are the
    queue, so the limit bounds the wait (Little's law: about `steady_inflight` over the
    worker's rate, ~20 ms at 400/s) and leaves the event loop free to refuse the excess
    fast; a flat 32 measured 429s at p99 164 ms at 1,000/s (benchmarks/README.md)."""
    queue_age_ms: PositiveFloat = 10.0
    """How old the oldest request in flight may be for a worker past `steady_inflight`
    to admit one more."""
    retry_after_s: PositiveInt = 1
    """The Retry-After of a 429."""
    request_timeout_ms: PositiveFloat = 250.0
    """Model inference time allowed per request before it falls back to popularity."""
    search_queue_max: PositiveInt = 8
    """Searches one worker holds queued or running; more get 429 (a search is CPU-bound)."""
    search_timeout_ms: PositiveFloat = 100.0
    """A search that waited longer than this in the queue runs BM25 only (and says so)."""
    batching: bool = True
    """Score concurrent requests together (requests arriving while the model is busy
    join its next call); false: one model call per request."""
    batch_window_ms: NonNegativeFloat = 0.0
    """How long a request that finds the model idle waits for company (0: not at all)."""
    batch_max: PositiveInt = 64
    """Most requests scored in one model call."""
    cache_size: int = 10_000
    """Entries in each worker's LRU cache (0: no cache)."""
    cache_ttl_s: PositiveFloat = 60.0
    """Seconds a cached answer lives."""
    reload_interval_s: PositiveFloat = 2.0
    """How often a worker checks the catalog for a new model, index or data version."""
    compact_interval_s: NonNegativeFloat = 0.0
    """Seconds between background compactions of live events into the warehouse (0: off)."""
    model_threads: PositiveInt | None = None
    """Threads of PyTorch and BLAS in each worker (`serve` sets cores / workers, so that
    workers do not oversubscribe the cores; None: the libraries' default)."""
    max_body_bytes: PositiveInt = 1_048_576
    """Largest request body accepted (413 beyond)."""
    max_events_per_request: PositiveInt = 1000
    """Most events in one POST /events."""
    max_k: PositiveInt = 200
    """Largest k a request may ask for."""
    live_window: PositiveInt = 200
    """Most recent live events per user folded into their history."""
