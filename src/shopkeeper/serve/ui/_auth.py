"""Dashboard access: the API key from `Authorization: Bearer` or the HttpOnly cookie."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from fastapi import HTTPException, Request, status

from shopkeeper.serve._keys import role_allows
from shopkeeper.serve.deps import COOKIE, get_service

if TYPE_CHECKING:
    from shopkeeper.serve._keys import ApiKey

LOGIN = "/ui/login"
HOME = "/ui/"


def presented_key(request: Request) -> str | None:
    """The key the request carries: the Bearer header first, then the cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(COOKIE) or None


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a dashboard path only (never another site)."""
    if not target or not target.startswith("/ui/") or target.startswith("//") or "\\" in target:
        return HOME
    return target


def viewer(request: Request) -> ApiKey:
    """A dependency admitting any valid key; without one, a redirect to the login page."""
    key = presented_key(request)
    record = get_service(request).keys.verify(key) if key else None
    if record is None:
        here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(
            status.HTTP_303_SEE_OTHER,
            "log in with an API key",
            headers={"Location": f"{LOGIN}?next={quote(here, safe='')}"},
        )
    request.state.key_id = record.key_id
    return record


def is_admin(record: ApiKey) -> bool:
    """Whether the key may see raw quarantined rows."""
    return role_allows(record.role, "admin")
