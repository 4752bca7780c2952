"""Dashboard access: login form, HttpOnly cookie, Bearer header, logout, roles."""

from __future__ import annotations

import pytest

from shopkeeper.serve.deps import COOKIE
from shopkeeper.serve.ui._auth import safe_next
from tests.ui.conftest import auth, login

PAGES = [
    "/ui/",
    "/ui/assets/events",
    "/ui/lineage/items",
    "/ui/models",
    "/ui/playground",
    "/ui/live",
]


@pytest.mark.parametrize("page", PAGES)
def test_pages_redirect_to_login_without_a_key(client, page):
    resp = client.get(page)
    assert resp.status_code == 303
    assert resp.headers["location"].startswith("/ui/login?next=%2Fui%2F")


def test_login_sets_an_httponly_strict_cookie_and_logout_clears_it(client, keys):
    resp = client.get("/ui/login?next=/ui/models")
    assert resp.status_code == 200
    assert 'name="key"' in resp.text
    resp = client.post("/ui/login", data={"key": keys["reader"], "next": "/ui/models"})
    assert resp.status_code == 303
    assert resp.headers["location"] == "/ui/models"
    cookie = resp.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert client.get("/ui/models").status_code == 200
    resp = client.post("/ui/logout")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/ui/login"
    assert client.get("/ui/models").status_code == 303


def test_a_wrong_key_is_refused_and_not_echoed(client):
    resp = client.post("/ui/login", data={"key": "sk_not_a_real_key", "next": "/ui/"})
    assert resp.status_code == 401
    assert "Unknown or revoked" in resp.text
    assert "sk_not_a_real_key" not in resp.text
    assert "set-cookie" not in resp.headers


def test_bearer_header_works_without_a_cookie(client, keys):
    assert client.get("/ui/", headers=auth(keys["reader"])).status_code == 200
    assert client.get("/ui/live.json", headers=auth(keys["reader"])).status_code == 200
    assert client.get("/ui/live.json").status_code == 401


def test_a_revoked_key_stops_working(client, keys):
    from shopkeeper.serve import ApiKeyStore

    login(client, keys["reader"])
    store = client.app.state.service.keys
    assert isinstance(store, ApiKeyStore)
    (record,) = [k for k in store.list() if k.role == "reader"]
    store.revoke(record.key_id)
    assert client.get("/ui/").status_code == 303


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/ui/models", "/ui/models"),
        ("/ui/assets/events?reason=x", "/ui/assets/events?reason=x"),
        ("//evil.example/ui/", "/ui/"),
        ("https://evil.example/", "/ui/"),
        ("/docs", "/ui/"),
        ("/ui/\\evil", "/ui/"),
        (None, "/ui/"),
    ],
)
def test_login_only_returns_to_dashboard_pages(target, expected):
    assert safe_next(target) == expected


def test_readers_see_no_raw_quarantined_rows_admins_do(client, keys):
    login(client, keys["reader"])
    page = client.get("/ui/assets/events").text
    assert 'id="quarantine-counts"' in page
    assert 'id="quarantine-hidden"' in page
    assert 'id="quarantine-rows"' not in page
    assert "InvoiceNo=" not in page
    # a reader asking for a reason's rows still gets none
    assert "InvoiceNo=" not in client.get("/ui/assets/events?reason=missing_user_id").text
    client.post("/ui/logout")
    client.cookies.clear()
    login(client, keys["admin"])
    page = client.get("/ui/assets/events?reason=non_product_code").text
    assert 'id="quarantine-rows"' in page
    assert "InvoiceNo=" in page
    assert "online-retail-2010-12.csv.gz" in page
