"""Under pressure: micro-batching, deadlines with fallback, admission control, hot reload."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from shopkeeper.rec import train_rec
from shopkeeper.serve import create_app
from shopkeeper.warehouse import Workspace
from tests.serve.conftest import CUSTOMER, auth, settings

USERS = ("17850", "13047", "12583", "13748", "15100", "15291", "14688", "17809")
"""Customers of the December 2010 sample."""


async def _concurrently(app: FastAPI, paths: list[str], key: str) -> list[httpx.Response]:
    """Send every request at once to the app, its lifespan running."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return list(await asyncio.gather(*(c.get(p, headers=auth(key)) for p in paths)))


def test_concurrent_requests_share_one_model_call(home: Path, keys: dict[str, str]) -> None:
    paths = [f"/recommend/{u}?k=5" for u in USERS]
    app = create_app(settings(home, batch_window_ms=50, cache_size=0))
    batched = asyncio.run(_concurrently(app, paths, keys["reader"]))
    metrics = app.state.service.metrics
    sizes = metrics.batch_size.collect()[0].samples
    count = next(s.value for s in sizes if s.name.endswith("_count"))
    assert count < len(USERS)  # fewer model calls than requests
    alone = asyncio.run(
        _concurrently(create_app(settings(home, batching=False)), paths, keys["reader"])
    )
    assert [r.json()["items"] for r in batched] == [r.json()["items"] for r in alone]


def test_deadline_falls_back_to_popularity(home: Path, keys: dict[str, str]) -> None:
    with TestClient(create_app(settings(home, request_timeout_ms=0.001))) as c:
        body = c.get(f"/recommend/{CUSTOMER}", headers=auth(keys["reader"])).json()
        assert body["fallback"] == "popularity"
        assert body["reason"] == "timeout"
        again = c.get(f"/recommend/{CUSTOMER}", headers=auth(keys["reader"])).json()
        assert not again["cached"]  # degraded answers are not cached
        text = c.get("/metrics").text
    assert 'shopkeeper_fallbacks_total{reason="timeout",route="/recommend"} 2.0' in text


def test_overload_gets_fast_429_with_retry_after(home: Path, keys: dict[str, str]) -> None:
    app = create_app(settings(home, max_inflight=2, batch_window_ms=300, cache_size=0))
    paths = [f"/recommend/{u}" for u in USERS]
    responses = asyncio.run(_concurrently(app, paths, keys["reader"]))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 2
    assert codes.count(429) == len(USERS) - 2
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["type"] == "Overloaded"


def test_past_the_steady_limit_a_burst_gets_in_only_while_the_queue_is_young(
    home: Path, keys: dict[str, str]
) -> None:
    paths = [f"/recommend/{u}" for u in USERS]
    slow = {"batch_window_ms": 300, "cache_size": 0, "steady_inflight": 1}
    young = create_app(settings(home, **slow, queue_age_ms=60_000))  # every wait is young
    codes = [r.status_code for r in asyncio.run(_concurrently(young, paths, keys["reader"]))]
    assert codes == [200] * len(USERS)
    old = create_app(settings(home, **slow, queue_age_ms=0.001))  # the first one is old at once
    codes = [r.status_code for r in asyncio.run(_concurrently(old, paths, keys["reader"]))]
    assert sorted(codes) == [200] + [429] * (len(USERS) - 1)


def test_hot_reload_swaps_model_without_dropping_requests(home: Path, keys: dict[str, str]) -> None:
    ws = Workspace.at(home)
    codes: list[int] = []
    versions: set[int] = set()
    stop = threading.Event()
    with TestClient(create_app(settings(home, reload_interval_s=0.2, cache_size=0))) as c:

        def hammer() -> None:
            while not stop.is_set():
                r = c.get(f"/recommend/{CUSTOMER}", headers=auth(keys["reader"]))
                codes.append(r.status_code)
                if r.status_code == 200:
                    versions.add(r.json()["model_version"])

        t = threading.Thread(target=hammer)
        t.start()
        try:
            train_rec(ws, "itemknn")  # a new rec_model version while requests run
            for _ in range(100):
                if 2 in versions:
                    break
                stop.wait(0.1)
        finally:
            stop.set()
            t.join()
        health: dict[str, Any] = c.get("/health").json()
    assert versions == {1, 2}
    assert set(codes) == {200}
    assert health["versions"]["rec_model"] == 2


def test_search_queue_full_gets_429(home: Path, keys: dict[str, str]) -> None:
    app = create_app(settings(home, search_queue_max=1, cache_size=0))
    paths = [f"/search?q=bag%20{i}" for i in range(6)]
    responses = asyncio.run(_concurrently(app, paths, keys["reader"]))
    codes = [r.status_code for r in responses]
    assert codes.count(200) >= 1
    assert 429 in codes
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["type"] == "OverloadedError"
    assert set(codes) <= {200, 429}


def test_late_search_falls_back_to_bm25(home: Path, keys: dict[str, str]) -> None:
    with TestClient(create_app(settings(home, search_timeout_ms=1e-6))) as c:
        body = c.get("/search", params={"q": "lunch bag"}, headers=auth(keys["reader"])).json()
        text = c.get("/metrics").text
    assert body["fallback"] == "bm25"
    assert body["reason"] == "timeout"
    assert body["model"] == "bm25"
    assert body["items"]
    assert 'shopkeeper_fallbacks_total{reason="timeout",route="/search"} 1.0' in text
