"""`POST /events`: validation, durability, real time, compaction, erasure."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from fastapi.testclient import TestClient

from shopkeeper.serve import create_app
from shopkeeper.serve._compact import compact_live_events
from shopkeeper.serve._live import LiveEventStore
from shopkeeper.warehouse import Warehouse, Workspace, read_audit_log
from tests.serve.conftest import CUSTOMER, auth, settings

ITEM = "22423"
"""REGENCY CAKESTAND 3 TIER: sold in December 2010."""


def _event(
    user: str, item: str = ITEM, kind: str = "purchase", **extra: object
) -> dict[str, object]:
    return {"user_id": user, "item_id": item, "event_type": kind, **extra}


def test_batch_keeps_valid_and_reports_each_bad(
    client: TestClient, keys: dict[str, str], home: Path
) -> None:
    batch = [
        _event("u-1", query="mail me: jo@example.com"),
        _event("", item=ITEM),
        _event("u-2", item="NO-SUCH-ITEM"),
        _event("u-3", kind="teleport"),
        _event("u-4", ts="yesterday"),
        _event("u-5", ts="2999-01-01T00:00:00Z"),
        "not an object",
        {**_event("u-6"), "colour": "red"},
        _event("u-7", kind="View", ts=1291200000, value=2),
    ]
    r = client.post("/events", json={"events": batch}, headers=auth(keys["writer"]))
    assert r.status_code == 207, r.text
    body = r.json()
    assert body["accepted"] == 2
    assert body["rejected"] == 7
    assert len(body["ids"]) == 2
    reasons = {e["index"]: e["reason"] for e in body["errors"]}
    assert reasons == {
        1: "missing_user_id",
        2: "unknown_item",
        3: "invalid_event_type",
        4: "unparseable_ts",
        5: "future_timestamp",
        6: "malformed_row",
        7: "malformed_row",
    }
    # durable and readable by another process's store; no raw id, no PII, sealed ids
    raw = (home / "live" / "events.sqlite").read_bytes() + b"".join(
        p.read_bytes() for p in (home / "live").glob("events.sqlite-*")
    )
    assert b"u-1" not in raw
    assert b"u-7" not in raw
    assert b"jo@example.com" not in raw
    con = sqlite3.connect(home / "live" / "events.sqlite")
    rows = con.execute("SELECT event_type, query, user_sealed FROM live_events ORDER BY seq")
    got = rows.fetchall()
    assert [(g[0], g[1]) for g in got] == [("purchase", "mail me: [EMAIL]"), ("view", None)]
    assert all(g[2].startswith("enc:v1:") for g in got)


def test_single_event_list_and_all_bad(client: TestClient, keys: dict[str, str]) -> None:
    h = auth(keys["writer"])
    assert client.post("/events", json=_event("solo"), headers=h).status_code == 200
    assert client.post("/events", json=[_event("a"), _event("b")], headers=h).json()["ids"]
    r = client.post("/events", json=[_event("", item="")], headers=h)
    assert r.status_code == 422
    assert r.json()["accepted"] == 0
    assert client.post("/events", json=[], headers=h).status_code == 422
    r = client.post("/events", content=b"{not json", headers=h)
    assert r.status_code == 422


def test_event_changes_next_recommendation_within_a_second(
    client: TestClient, keys: dict[str, str]
) -> None:
    user = "brand-new-shopper"
    before = client.get(f"/recommend/{user}", headers=auth(keys["reader"])).json()
    assert before["fallback"] == "popularity"
    posted = time.monotonic()
    r = client.post("/events", json=_event(user), headers=auth(keys["writer"]))
    assert r.status_code == 200
    after = client.get(f"/recommend/{user}", headers=auth(keys["reader"])).json()
    assert time.monotonic() - posted < 1.0
    assert after["fallback"] is None
    assert after["history_length"] == 1
    assert after["live_events"] == 1
    assert ITEM not in {i["item_id"] for i in after["items"]}
    assert after["items"] != before["items"]


def test_other_worker_sees_the_event(home: Path, keys: dict[str, str]) -> None:
    """Two apps over one workspace stand for two worker processes."""
    user = "cross-worker"
    with (
        TestClient(create_app(settings(home))) as a,
        TestClient(create_app(settings(home))) as b,
    ):
        cold = b.get(f"/recommend/{user}", headers=auth(keys["reader"])).json()
        a.post("/events", json=_event(user), headers=auth(keys["writer"]))
        warm = b.get(f"/recommend/{user}", headers=auth(keys["reader"])).json()
    assert cold["fallback"] == "popularity"
    assert not warm["cached"]  # the event invalidated b's cached answer
    assert warm["history_length"] == 1


def test_compaction_folds_live_events_into_the_warehouse(
    client: TestClient, keys: dict[str, str], home: Path
) -> None:
    h = auth(keys["writer"])
    batch = [_event(CUSTOMER, ts="2011-01-05T10:00:00Z"), _event("c-2", "85123A", "view")]
    assert client.post("/events", json=batch, headers=h).json()["accepted"] == 2
    ws = Workspace.at(home)
    live = LiveEventStore(home / "live" / "events.sqlite")
    out = compact_live_events(ws, live, ws.field_cipher.load())
    assert out["events"] == 2
    assert out["version"] == 2
    assert out["input_rows"] == out["clean_rows"] + out["quarantined_rows"] + out["duplicate_rows"]
    assert out["clean_rows"] == 2
    pseudo = ws.keys.load().pseudonymize(CUSTOMER)
    with Warehouse(ws, read_only=True) as wh:
        rows = wh.query(
            "SELECT event_type FROM events WHERE user_id = ? AND ts = TIMESTAMPTZ "
            "'2011-01-05 10:00:00+00'".replace("?", f"'{pseudo}'")
        )[1]
    assert rows == [("purchase",)]
    assert live.stats() == {"events": 2, "unfolded": 0}
    assert compact_live_events(ws, live, ws.field_cipher.load()) == {"events": 0}
    # the service picks up the new events version and prunes what it now holds
    service = client.app.state.service  # type: ignore[attr-defined]
    assert service.reload_if_changed()
    assert service.snapshot.key["events"] == 2
    assert live.stats()["events"] == 0
    r = client.get(f"/recommend/{CUSTOMER}", headers=auth(keys["reader"])).json()
    assert r["live_events"] == 0


def test_admin_erases_a_user_everywhere(
    client: TestClient, keys: dict[str, str], home: Path
) -> None:
    h = auth(keys["admin"])
    client.post("/events", json=_event(CUSTOMER, "85123A", "view"), headers=h)
    before = client.get(f"/recommend/{CUSTOMER}", headers=h).json()
    assert before["history_length"] > 1
    assert client.delete(f"/users/{CUSTOMER}", headers=auth(keys["writer"])).status_code == 403
    r = client.delete(f"/users/{CUSTOMER}", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    ws = Workspace.at(home)
    pseudo = ws.keys.load().pseudonymize(CUSTOMER)
    assert body["user"] == pseudo
    assert body["live_events_removed"] == 1
    assert body["rows_removed"]["events"] > 0
    after = client.get(f"/recommend/{CUSTOMER}", headers=h).json()
    assert after["history_length"] == 0
    assert after["fallback"] == "popularity"
    with Warehouse(ws, read_only=True) as wh:
        assert wh.query(f"SELECT count(*) FROM events WHERE user_id = '{pseudo}'")[1] == [(0,)]
    log = read_audit_log(ws)
    assert log[-1]["action"] == "forget_user"
    assert CUSTOMER not in str(log)
