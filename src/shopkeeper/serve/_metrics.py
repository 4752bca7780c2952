"""Prometheus metrics of the service; one registry per app, multiprocess-aware.

With several workers (`PROMETHEUS_MULTIPROC_DIR` set by `shopkeeper serve`), every
process writes its samples to files there and `/metrics` sums them across workers.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as mp

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.25, 0.5, 1, 2.5)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


def multiprocess_dir() -> str | None:
    """The shared metrics folder when running several workers."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class ServiceMetrics:
    """The service's counters, histograms and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "shopkeeper_requests",
            "HTTP requests by route and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "shopkeeper_request_seconds",
            "Request latency by route.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.cache = Counter(
            "shopkeeper_cache_requests",
            "Cache lookups by route and result (hit, miss).",
            ["route", "result"],
            registry=r,
        )
        self.batch_size = Histogram(
            "shopkeeper_batch_size",
            "Requests scored per model call.",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.fallbacks = Counter(
            "shopkeeper_fallbacks",
            "Answers from a cheaper model, by route and reason.",
            ["route", "reason"],
            registry=r,
        )
        self.rejected = Counter(
            "shopkeeper_rejected_requests",
            "Requests refused before work (overload, size).",
            ["reason"],
            registry=r,
        )
        self.events = Counter(
            "shopkeeper_live_events",
            "Posted events by outcome (accepted, or the reason).",
            ["outcome"],
            registry=r,
        )
        self.inflight = Gauge(
            "shopkeeper_inflight_requests",
            "Requests being handled.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.model_version = Gauge(
            "shopkeeper_model_version",
            "The rec_model version served.",
            registry=r,
            multiprocess_mode="max",
        )
        self.data_latest = Gauge(
            "shopkeeper_data_latest_event_timestamp_seconds",
            "Unix time of the newest event in the served snapshot.",
            registry=r,
            multiprocess_mode="max",
        )
        self.snapshot_loaded = Gauge(
            "shopkeeper_snapshot_loaded_timestamp_seconds",
            "Unix time the served snapshot was loaded.",
            registry=r,
            multiprocess_mode="min",
        )
        self.reload_failures = Counter(
            "shopkeeper_reload_failures",
            "Snapshot reloads that failed (old one kept).",
            registry=r,
        )

        for reason in ("overload", "search_queue", "body_too_large"):
            self.rejected.labels(reason)  # exported at 0 before the first refusal
        self.fallbacks.labels("/recommend", "timeout")
        self.fallbacks.labels("/search", "timeout")
        self.events.labels("accepted")

    def exposition(self) -> tuple[bytes, str]:
        """The text format of every metric (summed over workers when multiprocess)."""
        if multiprocess_dir():
            registry = CollectorRegistry()
            mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
