"""`create_app`: the FastAPI application of one worker.

The lifespan opens the `Service` (snapshot, live store, keys) and runs the reload
loop (new model or data versions are picked up without dropping requests) and, when
configured, the compaction loop. A pure ASGI guard in front refuses work the worker
cannot take (429 with Retry-After past `max_inflight`, or past `steady_inflight` once
the oldest request in flight has waited `queue_age_ms`; 413 past `max_body_bytes`)
before any parsing, and records per-route metrics and one structured access line
that names the route template, never the raw path (which may hold a user id).
"""

from __future__ import annotations

import asyncio
import gc
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from shopkeeper import __version__
from shopkeeper.errors import OverloadedError, ShopkeeperError
from shopkeeper.logging import get_logger, set_progress_backend
from shopkeeper.serve._settings import ServeSettings
from shopkeeper.serve.schemas import ErrorBody

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    from shopkeeper.serve._service import Service

_log = get_logger(__name__)
_UNGUARDED = ("/health", "/metrics")


def _error(status: int, type_: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"type": type_, "message": message, **extra}, status_code=status)


class Guard:
    """Admission control, body size limit, per-route metrics and the access log."""

    def __init__(self, app: ASGIApp, settings: ServeSettings) -> None:
        self.app, self.settings = app, settings
        self.inflight = 0
        self._started: dict[int, float] = {}  # start time of each guarded request in flight
        self._next_token = 0

    def _admits(self, now: float) -> bool:
        """Room for one more: under the steady limit, or past it while the queue is young."""
        s = self.settings
        if self.inflight >= s.max_inflight:
            return False
        if self.inflight < s.steady_inflight:
            return True
        oldest = min(self._started.values(), default=now)
        return (now - oldest) * 1000 < s.queue_age_ms

    def _service(self, scope: Scope) -> Service | None:
        state = getattr(scope.get("app"), "state", None)
        return getattr(state, "service", None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        service = self._service(scope)
        guarded = not path.startswith(_UNGUARDED)
        start = time.perf_counter()
        if guarded and not self._admits(start):
            if service is not None:
                service.metrics.rejected.labels("overload").inc()
            resp = _error(429, "Overloaded", "the server is at capacity; retry shortly")
            resp.headers["Retry-After"] = str(self.settings.retry_after_s)
            await resp(scope, receive, send)
            return
        receive, too_big = await self._limit_body(scope, receive)
        if too_big:
            if service is not None:
                service.metrics.rejected.labels("body_too_large").inc()
            limit = self.settings.max_body_bytes
            await _error(413, "PayloadTooLarge", f"the body exceeds {limit} bytes")(
                scope, receive, send
            )
            return
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        token = self._next_token = self._next_token + 1
        if guarded:
            self.inflight += 1
            self._started[token] = start
            if service is not None:
                service.metrics.inflight.inc()
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if guarded:
                self.inflight -= 1
                del self._started[token]
            elapsed = time.perf_counter() - start
            route = getattr(scope.get("route"), "path", "unmatched")
            if service is not None:
                m = service.metrics
                if guarded:
                    m.inflight.dec()
                m.requests.labels(route, scope["method"], str(status["code"])).inc()
                m.latency.labels(route).observe(elapsed)
            _log.debug(
                "request",
                route=route,
                method=scope["method"],
                status=status["code"],
                ms=round(elapsed * 1000, 2),
            )

    async def _limit_body(self, scope: Scope, receive: Receive) -> tuple[Receive, bool]:
        """Read the body up front (bounded); a replaying `receive`, and whether it was too big."""
        limit = self.settings.max_body_bytes
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return receive, True
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return receive, False
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return receive, True
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay, False


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(ShopkeeperError)
    async def _shopkeeper(_: Request, exc: ShopkeeperError) -> JSONResponse:
        resp = _error(exc.http_status, type(exc).__name__, str(exc))
        if isinstance(exc, OverloadedError):
            resp.headers["Retry-After"] = str(app.state.retry_after_s)
        return resp

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        resp = _error(exc.status_code, "HTTPError", str(exc.detail))
        for k, v in (exc.headers or {}).items():
            resp.headers[k] = v
        return resp

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"location": list(e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors()
        ]
        first = errors[0] if errors else {"location": [], "message": "invalid request"}
        where = ".".join(str(p) for p in first["location"])
        return _error(422, "ValidationError", f"{where}: {first['message']}", errors=errors)


async def _every(seconds: float, what: str, fn: Any, service: Service) -> None:
    """Run `fn` in a thread every `seconds`; failures are logged and counted, never fatal."""
    while True:
        await asyncio.sleep(seconds)
        try:
            await asyncio.to_thread(fn)
        except Exception as exc:  # noqa: BLE001 - a loop must outlive one bad round
            service.metrics.reload_failures.inc()
            _log.warning(f"{what} failed", error=f"{type(exc).__name__}: {exc}")


def _dashboard(app: FastAPI) -> None:
    """The web dashboard under `/ui/` and its static files (needs jinja2)."""
    from fastapi.staticfiles import StaticFiles

    from shopkeeper.serve.ui import STATIC_DIR, router

    app.include_router(router)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")


def create_app(settings: ServeSettings | None = None) -> FastAPI:
    """The service app for `settings` (default: from `SHOPKEEPER_SERVE_*`)."""
    settings = settings or ServeSettings()
    set_progress_backend("none")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from shopkeeper.serve._compact import compact_live_events
        from shopkeeper.serve._service import Service

        service = await asyncio.to_thread(Service, settings)
        app.state.service = service
        gc.freeze()  # the snapshot's objects live as long as it: keep them out of GC passes
        tasks = [
            asyncio.create_task(
                _every(settings.reload_interval_s, "reload", service.reload_if_changed, service)
            )
        ]
        if settings.compact_interval_s > 0:

            def compact() -> None:
                compact_live_events(service.ws, service.live, service.cipher)

            tasks.append(
                asyncio.create_task(
                    _every(settings.compact_interval_s, "compaction", compact, service)
                )
            )
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            service.close()

    app = FastAPI(
        title="Shopkeeper",
        version=__version__,
        summary="Search, recommendations and live events over a Shopkeeper workspace.",
        lifespan=lifespan,
        responses={
            401: {"model": ErrorBody},
            403: {"model": ErrorBody},
            413: {"model": ErrorBody},
            429: {"model": ErrorBody},
        },
    )
    from shopkeeper.serve.routers import admin, assets, events, health, recommend, search

    for r in (health, recommend, search, events, assets, admin):
        app.include_router(r.router)
    _dashboard(app)
    app.state.retry_after_s = settings.retry_after_s
    _handlers(app)
    app.add_middleware(Guard, settings=settings)
    return app
