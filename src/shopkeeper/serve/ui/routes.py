"""The dashboard's routes under `/ui/`: server-rendered pages and one JSON feed."""

from __future__ import annotations

import asyncio
from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from shopkeeper import __version__
from shopkeeper.errors import NotFoundError
from shopkeeper.serve._keys import ApiKey
from shopkeeper.serve._service import Service
from shopkeeper.serve.deps import COOKIE, get_service, require
from shopkeeper.serve.ui._assets import asset_detail, catalog_rows, lineage_view
from shopkeeper.serve.ui._auth import HOME, LOGIN, is_admin, safe_next, viewer
from shopkeeper.serve.ui._live import live_stats
from shopkeeper.serve.ui._models import models_overview
from shopkeeper.serve.ui._playground import playground

TEMPLATES_DIR = FsPath(__file__).parent / "templates"
STATIC_DIR = FsPath(__file__).parent / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""Nothing loads from anywhere but this server (the dashboard works offline)."""

templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.globals["version"] = __version__
router = APIRouter(prefix="/ui", tags=["dashboard"], include_in_schema=False)

_Name = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_]+$")]
_Viewer = Annotated[ApiKey, Depends(viewer)]
_Svc = Annotated[Service, Depends(get_service)]


def _page(
    request: Request, template: str, key: ApiKey | None, status_code: int = 200, **ctx: Any
) -> HTMLResponse:
    resp = templates.TemplateResponse(
        request,
        template,
        {"role": key.role if key else None, "admin": bool(key and is_admin(key)), **ctx},
        status_code=status_code,
    )
    resp.headers["Content-Security-Policy"] = CSP
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


def _missing(request: Request, key: ApiKey, exc: NotFoundError) -> HTMLResponse:
    return _page(request, "error.html", key, 404, title="Not found", message=str(exc))


@router.get("", include_in_schema=False)
async def ui_root() -> RedirectResponse:
    """The dashboard's home is the catalog."""
    return RedirectResponse(HOME, status_code=307)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    """The login page: paste an API key."""
    return _page(request, "login.html", None, title="Log in", next=safe_next(next))


@router.post("/login", response_model=None)
async def login(
    request: Request,
    service: _Svc,
    key: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=2000)] = HOME,
) -> Response:
    """Check the key; keep it in an HttpOnly, SameSite=Strict cookie and go on."""
    record = service.keys.verify(key.strip()) if key.strip() else None
    if record is None:
        return _page(
            request,
            "login.html",
            None,
            401,
            title="Log in",
            next=safe_next(next),
            error="Unknown or revoked API key.",
        )
    resp = RedirectResponse(safe_next(next), status_code=303)
    resp.set_cookie(
        COOKIE,
        key.strip(),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return resp


@router.post("/logout")
async def logout() -> RedirectResponse:
    """Forget the key (the cookie is cleared)."""
    resp = RedirectResponse(LOGIN, status_code=303)
    resp.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return resp


@router.get("/", response_class=HTMLResponse)
async def catalog(request: Request, key: _Viewer, service: _Svc) -> HTMLResponse:
    """Every asset with its versions, rows, freshness and quality; filter and sort."""
    rows = await asyncio.to_thread(catalog_rows, service.ws)
    kinds = sorted({r["kind"] for r in rows})
    return _page(request, "catalog.html", key, title="Catalog", assets=rows, kinds=kinds)


@router.get("/assets/{name}", response_class=HTMLResponse)
async def asset(
    request: Request,
    key: _Viewer,
    service: _Svc,
    name: _Name,
    reason: Annotated[str | None, Query(max_length=100)] = None,
) -> HTMLResponse:
    """Schema with PII tags, masked samples, quality over versions, the quarantine."""
    try:
        data = await asyncio.to_thread(
            asset_detail, service.ws, name, admin=is_admin(key), reason=reason or None
        )
    except NotFoundError as exc:
        return _missing(request, key, exc)
    return _page(request, "asset.html", key, title=name, name=name, **data)


@router.get("/lineage/{name}", response_class=HTMLResponse)
async def lineage(
    request: Request,
    key: _Viewer,
    service: _Svc,
    name: _Name,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> HTMLResponse:
    """Raw files → cleaned versions → features → models and indexes, clickable."""
    try:
        data = await asyncio.to_thread(
            lineage_view, service.ws, name, version, dict(service.snapshot.key)
        )
    except NotFoundError as exc:
        return _missing(request, key, exc)
    return _page(request, "lineage.html", key, title=f"Lineage of {name}", **data)


@router.get("/models", response_class=HTMLResponse)
async def models(request: Request, key: _Viewer, service: _Svc) -> HTMLResponse:
    """Evaluations against baselines, training curves, compression, the live version."""
    data = await asyncio.to_thread(models_overview, service.ws, service.snapshot.model_version)
    return _page(request, "models.html", key, title="Models", **data)


@router.get("/playground", response_class=HTMLResponse)
async def play(
    request: Request,
    key: _Viewer,
    service: _Svc,
    q: Annotated[str, Query(max_length=500)] = "",
    user_id: Annotated[str, Query(max_length=200)] = "",
    pseudonym: Annotated[str, Query(max_length=64, pattern=r"^[0-9a-f]*$")] = "",
    k: Annotated[int, Query(ge=1, le=50)] = 10,
) -> HTMLResponse:
    """Try search and recommendations: item text, price, each stage's score, and why."""
    data = await playground(service, q.strip(), user_id.strip(), pseudonym, k)
    return _page(request, "playground.html", key, title="Playground", **data)


@router.get("/live", response_class=HTMLResponse)
async def live(request: Request, key: _Viewer, service: _Svc) -> HTMLResponse:
    """Requests per second, latency percentiles, cache hit rate and fallbacks."""
    stats = await asyncio.to_thread(live_stats, service)
    return _page(request, "live.html", key, title="Live service", stats=stats)


@router.get("/live.json", dependencies=[Depends(require("reader"))])
async def live_json(service: _Svc) -> JSONResponse:
    """The live view's numbers (cumulative; the page turns them into rates)."""
    return JSONResponse(await asyncio.to_thread(live_stats, service))
