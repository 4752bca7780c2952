"""The live view's numbers, from the service's own Prometheus metrics (all workers)."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from prometheus_client.parser import text_string_to_metric_families

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shopkeeper.serve._service import Service

PERCENTILES = (0.5, 0.9, 0.95, 0.99)
_OWN = ("/ui", "/metrics", "/health")
"""Routes left out of the service totals (the dashboard's own polling, scrapes, probes)."""


def _api(route: str) -> bool:
    return not route.startswith(_OWN) and route != "unmatched"


def quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """The `q` quantile estimated from cumulative histogram buckets `(le, count)`.

    Linear within the bucket, as Prometheus' `histogram_quantile` does.

    >>> quantile([(0.1, 5), (0.2, 10), (math.inf, 10)], 0.75)
    0.15
    """
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if math.isinf(le):
                return prev_le
            if count == prev_count:
                return le
            return round(prev_le + (le - prev_le) * (rank - prev_count) / (count - prev_count), 6)
        prev_le, prev_count = le, count
    return prev_le


def _samples(service: Service) -> dict[str, list[tuple[dict[str, str], float]]]:
    text, _ = service.metrics.exposition()
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out.setdefault(s.name, []).append((dict(s.labels), float(s.value)))
    return out


def _buckets(
    samples: list[tuple[dict[str, str], float]], keep: set[str] | None
) -> list[tuple[float, float]]:
    merged: dict[float, float] = {}
    for labels, value in samples:
        if keep is not None and labels.get("route") not in keep:
            continue
        le = float(labels["le"])
        merged[le] = merged.get(le, 0.0) + value
    return sorted(merged.items())


def live_stats(service: Service) -> dict[str, Any]:
    """Cumulative counts (the page turns them into rates), latency percentiles, cache, fallbacks."""
    s = _samples(service)
    per_route: dict[str, dict[str, Any]] = {}
    for labels, value in s.get("shopkeeper_requests_total", []):
        r = per_route.setdefault(
            labels["route"], {"route": labels["route"], "requests": 0.0, "errors": 0.0}
        )
        r["requests"] += value
        if labels["status"].startswith("5"):
            r["errors"] += value
    bucket_samples = s.get("shopkeeper_request_seconds_bucket", [])
    for route, r in per_route.items():
        b = _buckets(bucket_samples, {route})
        r["p50_ms"], r["p95_ms"] = (_ms(quantile(b, q)) for q in (0.5, 0.95))
    api = {r for r in per_route if _api(r)}
    overall = _buckets(bucket_samples, api)
    cache = {"hit": 0.0, "miss": 0.0}
    for labels, value in s.get("shopkeeper_cache_requests_total", []):
        cache[labels["result"]] = cache.get(labels["result"], 0.0) + value
    lookups = cache["hit"] + cache["miss"]
    fallbacks = [
        {"route": lb["route"], "reason": lb["reason"], "count": v}
        for lb, v in s.get("shopkeeper_fallbacks_total", [])
    ]
    rejected = {lb["reason"]: v for lb, v in s.get("shopkeeper_rejected_requests_total", [])}
    return {
        "t": time.time(),
        "uptime_s": round(time.time() - service.started, 1),
        "requests": sum(per_route[r]["requests"] for r in api),
        "errors": sum(per_route[r]["errors"] for r in api),
        "latency_ms": {f"p{round(q * 100)}": _ms(quantile(overall, q)) for q in PERCENTILES},
        "cache": {**cache, "hit_rate": round(cache["hit"] / lookups, 4) if lookups else None},
        "fallbacks": fallbacks,
        "fallback_total": sum(f["count"] for f in fallbacks),
        "rejected": rejected,
        "routes": sorted(per_route.values(), key=lambda r: -r["requests"]),
        "model_version": service.snapshot.model_version,
        "snapshot": service.snapshot.id,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)
