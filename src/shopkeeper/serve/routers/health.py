"""`GET /health` (liveness and readiness) and `GET /metrics` (Prometheus)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from shopkeeper.serve._service import Service
from shopkeeper.serve.deps import get_service

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(
    service: Annotated[Service, Depends(get_service)],
    response: Response,
    ready: Annotated[bool, Query(description="Also check that models are loaded.")] = False,
) -> dict[str, Any]:
    """Alive when it answers; ready when a recommender or a searcher is loaded (else 503)."""
    info = service.readiness()
    ok = info["recommend"] or info["search"] or info["similar"]
    if ready and not ok:
        response.status_code = 503
    return {"status": "ok" if ok else "degraded", **info}


@router.get("/metrics", response_class=Response)
async def metrics(service: Annotated[Service, Depends(get_service)]) -> Response:
    """Prometheus text format, summed over the workers."""
    body, ctype = service.metrics.exposition()
    return Response(body, media_type=ctype)
