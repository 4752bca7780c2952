"""`POST /events`: one event or a batch, validated like ingest, stored before the answer."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Response

from shopkeeper.errors import ConfigError
from shopkeeper.serve._service import Service
from shopkeeper.serve.deps import get_service, require
from shopkeeper.serve.schemas import EVENT_EXAMPLE, EventsAccepted

router = APIRouter(tags=["events"], dependencies=[Depends(require("writer"))])

_DOC = (
    'One event object, a JSON list of them, or `{"events": [...]}`. Fields: `user_id`, '
    "`item_id`, `event_type` (required), `ts` (ISO 8601 or Unix seconds; default now), "
    "`session_id`, `query`, `value`."
)


@router.post(
    "/events",
    response_model=EventsAccepted,
    responses={207: {"model": EventsAccepted}, 422: {"model": EventsAccepted}},
)
async def post_events(
    service: Annotated[Service, Depends(get_service)],
    response: Response,
    payload: Annotated[
        dict[str, Any] | list[Any], Body(description=_DOC, examples=[EVENT_EXAMPLE])
    ],
) -> dict[str, Any]:
    """Store valid events durably (200; 207 when some were refused, 422 when all were)."""
    if isinstance(payload, dict) and "events" in payload:
        batch = payload["events"]
        if not isinstance(batch, list) or len(payload) != 1:
            raise ConfigError('"events" must be the only field, holding a list')
    elif isinstance(payload, dict):
        batch = [payload]
    else:
        batch = payload
    if not batch:
        raise ConfigError("no events in the request")
    out = await asyncio.to_thread(service.post_events, batch)
    if out["accepted"] == 0:
        response.status_code = 422
    elif out["rejected"]:
        response.status_code = 207
    return out
