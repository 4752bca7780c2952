"""`GET /recommend/{user_id}` and `GET /similar/{item_id}`."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse

from shopkeeper.serve._service import Service
from shopkeeper.serve.deps import get_service, require
from shopkeeper.serve.schemas import ItemScore, Recommendations

router = APIRouter(tags=["recommend"], dependencies=[Depends(require("reader"))])

_K = Query(ge=1, le=1000, description="How many items.")


@router.get("/recommend/{user_id}", response_model=Recommendations, response_class=JSONResponse)
async def recommend(
    service: Annotated[Service, Depends(get_service)],
    user_id: Annotated[
        str, Path(min_length=1, max_length=200, description="As the source gave it.")
    ],
    k: Annotated[int, _K] = 10,
    include_seen: Annotated[bool, Query(description="Keep items already in the history.")] = False,
) -> JSONResponse:
    """The user's next items, best first; their newest events count within a second."""
    # Returned as a response: the hot path skips re-validating what the service built.
    return JSONResponse(await service.recommend(user_id, k, include_seen))


@router.get("/similar/{item_id}", response_model=list[ItemScore])
async def similar(
    service: Annotated[Service, Depends(get_service)],
    item_id: Annotated[str, Path(min_length=1, max_length=200)],
    k: Annotated[int, _K] = 10,
) -> list[dict[str, Any]]:
    """Items nearest to this one by text embedding (cosine), the item itself left out."""
    return await asyncio.to_thread(service.similar, item_id, k)
