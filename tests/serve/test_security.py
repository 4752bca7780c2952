"""API keys and roles, request limits, and no PII or key in logs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shopkeeper.errors import ConfigError, NotFoundError
from shopkeeper.serve import ApiKeyStore, create_app
from tests.cli.test_cli import run
from tests.serve.conftest import CUSTOMER, auth, settings


def test_roles(client: TestClient, keys: dict[str, str]) -> None:
    rec = f"/recommend/{CUSTOMER}"
    event = {"user_id": "x", "item_id": "22423", "event_type": "view"}
    assert client.get(rec).status_code == 401
    assert client.get(rec).headers["WWW-Authenticate"] == "Bearer"
    assert client.get(rec, headers=auth("sk_not-a-real-key")).status_code == 401
    assert client.get(rec, headers=auth(keys["reader"])).status_code == 200
    assert client.post("/events", json=event, headers=auth(keys["reader"])).status_code == 403
    assert client.post("/events", json=event, headers=auth(keys["writer"])).status_code == 200
    assert client.get("/assets", headers=auth(keys["writer"])).status_code == 403
    assert client.get("/assets", headers=auth(keys["admin"])).status_code == 200
    client.cookies.set("shopkeeper_key", keys["reader"])
    assert client.get(rec).status_code == 200
    client.cookies.clear()


def test_keys_are_stored_hashed_and_revocable(home: Path, keys: dict[str, str]) -> None:
    path = home / "keys" / "api_keys.json"
    text = path.read_text()
    assert all(k not in text for k in keys.values())
    assert path.stat().st_mode & 0o777 == 0o600
    store = ApiKeyStore(path)
    record = store.verify(keys["reader"])
    assert record is not None
    assert record.role == "reader"
    with TestClient(create_app(settings(home))) as c:
        assert c.get(f"/recommend/{CUSTOMER}", headers=auth(keys["reader"])).status_code == 200
        store.revoke(record.key_id)
        assert c.get(f"/recommend/{CUSTOMER}", headers=auth(keys["reader"])).status_code == 401
    with pytest.raises(NotFoundError):
        store.revoke(record.key_id)
    with pytest.raises(ConfigError):
        store.create("root")


def test_keys_cli_prints_the_key_once(home: Path) -> None:
    out = run(home, "keys", "create", "--role", "writer", "--json")
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    assert made["role"] == "writer"
    assert made["key"].startswith("sk_")
    listed = run(home, "keys", "list", "--json")
    assert made["key"] not in listed.stdout
    assert made["key_id"] in listed.stdout
    assert run(home, "keys", "create", "--role", "root").returncode == 2
    assert run(home, "keys", "revoke", made["key_id"]).returncode == 0
    assert run(home, "keys", "revoke", made["key_id"]).returncode == 2


def test_body_limit(home: Path, keys: dict[str, str]) -> None:
    with TestClient(create_app(settings(home, max_body_bytes=2000))) as c:
        big = [{"user_id": "u", "item_id": "22423", "event_type": "view"}] * 100
        r = c.post("/events", json=big, headers=auth(keys["writer"]))
        assert r.status_code == 413
        assert r.json()["type"] == "PayloadTooLarge"
        r = c.post("/events", json=big[:2], headers=auth(keys["writer"]))
        assert r.status_code == 200
    with TestClient(create_app(settings(home, max_events_per_request=3))) as c:
        r = c.post("/events", json=big[:4], headers=auth(keys["writer"]))
        assert r.status_code == 422
        assert "at most 3 events" in r.json()["message"]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_no_raw_id_or_key_in_logs(home: Path, keys: dict[str, str]) -> None:
    lines = _Lines()
    root = logging.getLogger("shopkeeper")
    old = root.level
    root.addHandler(lines)
    root.setLevel(logging.DEBUG)
    try:
        with TestClient(create_app(settings(home))) as c:
            c.get(f"/recommend/{CUSTOMER}", headers=auth(keys["reader"]))
            c.get("/search", params={"q": "bag", "user_id": CUSTOMER}, headers=auth(keys["reader"]))
            c.post(
                "/events",
                json={"user_id": CUSTOMER, "item_id": "22423", "event_type": "view"},
                headers=auth(keys["writer"]),
            )
            c.get("/recommend/x", headers=auth("sk_wrong"))
    finally:
        root.removeHandler(lines)
        root.setLevel(old)
    text = "\n".join(lines.lines)
    assert "route=/recommend/{user_id}" in text  # the access line names the template
    assert CUSTOMER not in text
    assert all(k not in text for k in keys.values())
    assert "sk_wrong" not in text
