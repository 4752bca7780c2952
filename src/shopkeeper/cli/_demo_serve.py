"""The demo's last step: start the service, talk to it over HTTP, print curl commands."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

from shopkeeper.errors import ShopkeeperError

if TYPE_CHECKING:
    from rich.console import Console

    from shopkeeper.cli._app import State

DEMO_SHOPPER = "DEMO-SHOPPER"
"""Customers the sample has never seen (one per run): the demo posts a purchase for one."""


def _call(url: str, key: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    req.add_header("Authorization", f"Bearer {key}")
    if data:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def serve_tour(state: State) -> dict[str, Any]:
    """Start `shopkeeper serve` on a free port, make a few requests, stop it."""
    from shopkeeper.serve import ApiKeyStore
    from shopkeeper.serve._process import running_server

    ws = state.workspace
    store = ApiKeyStore.of(ws)
    reader, _ = store.create("reader")
    writer, _ = store.create("writer")
    shopper = f"{DEMO_SHOPPER}-{time.time_ns() // 1000}"
    out: dict[str, Any] = {"reader_key": reader, "writer_key": writer, "shopper": shopper}
    quiet = {"SHOPKEEPER_SERVE_RELOAD_INTERVAL_S": "3600"}
    try:
        with running_server(ws.home, env=quiet) as server:
            url = out["url"] = server.url
            q = urllib.parse.quote("luch bagg")
            out["search"] = _call(f"{url}/search?q={q}&k=3", reader)[1]
            out["before"] = _call(f"{url}/recommend/{shopper}?k=3", reader)[1]
            event = {"user_id": shopper, "item_id": "22423", "event_type": "purchase"}
            out["event"] = _call(f"{url}/events", writer, event)[1]
            out["after"] = _call(f"{url}/recommend/{shopper}?k=3", reader)[1]
    except ShopkeeperError as exc:
        return {**out, "skipped": str(exc)}
    return out


def render_serve_tour(c: Console, tour: dict[str, Any], home: str) -> None:
    """The requests the demo made, and the curl commands to try."""
    if "skipped" in tour:
        c.print(f"service: skipped ({tour['skipped']})")
        return
    c.rule("shopkeeper serve")

    def items(answer: dict[str, Any]) -> str:
        return ", ".join(i["item_id"] for i in answer.get("items", []))

    before, after = tour["before"], tour["after"]
    c.print(f"GET /search?q=luch bagg → {items(tour['search'])} ({tour['search']['model']})")
    c.print(
        f"GET /recommend/{tour['shopper']} → {items(before)} "
        f"(fallback: {before.get('fallback')}, {before.get('reason')})"
    )
    c.print(f"POST /events (purchase of 22423) → accepted {tour['event']['accepted']}")
    c.print(
        f"GET /recommend/{tour['shopper']} → {items(after)} "
        f"(history {after.get('history_length')}, from the live event, no retraining)"
    )
    c.rule("Try the service")
    lines = (
        f"shopkeeper --home {home} serve --workers 2    # then http://127.0.0.1:8000/docs",
        f"export KEY={tour['reader_key']}    # a reader key; writer: {tour['writer_key']}",
        'curl -H "Authorization: Bearer $KEY" "localhost:8000/recommend/12347?k=5"',
        'curl -H "Authorization: Bearer $KEY" "localhost:8000/search?q=luch%20bagg&k=5"',
        'curl -H "Authorization: Bearer $KEY" "localhost:8000/similar/85123A?k=5"',
        "curl -s localhost:8000/metrics | grep ^shopkeeper_",
    )
    for line in lines:
        c.print(line, soft_wrap=True, highlight=False, markup=False)
