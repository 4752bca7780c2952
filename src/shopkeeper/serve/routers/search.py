"""`GET /search`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from shopkeeper.serve._service import Service
from shopkeeper.serve.deps import get_service, require
from shopkeeper.serve.schemas import SearchResults

router = APIRouter(tags=["search"], dependencies=[Depends(require("reader"))])


@router.get("/search", response_model=SearchResults)
async def search(
    service: Annotated[Service, Depends(get_service)],
    q: Annotated[str, Query(min_length=1, max_length=500, description="What the shopper typed.")],
    k: Annotated[int, Query(ge=1, le=1000)] = 10,
    user_id: Annotated[
        str | None, Query(max_length=200, description="Personalize for this user.")
    ] = None,
    category: Annotated[str | None, Query(max_length=500)] = None,
    brand: Annotated[str | None, Query(max_length=200)] = None,
    min_price: Annotated[float | None, Query(ge=0)] = None,
    max_price: Annotated[float | None, Query(ge=0)] = None,
) -> dict[str, Any]:
    """The best items for a query (typos tolerated), filtered and optionally personalized."""
    from shopkeeper.search import parse_filters

    filters = parse_filters(category, brand, min_price, max_price)
    return await service.run_search(q, k, filters, user_id or None)
