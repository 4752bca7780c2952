"""`DELETE /users/{user_id}`: erase a user everywhere (admin), recorded in the audit log."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from shopkeeper.serve._keys import ApiKey
from shopkeeper.serve._service import Service
from shopkeeper.serve.deps import get_service, require
from shopkeeper.serve.schemas import Erasure

router = APIRouter(tags=["admin"])


@router.delete("/users/{user_id}", response_model=Erasure)
async def delete_user(
    service: Annotated[Service, Depends(get_service)],
    key: Annotated[ApiKey, Depends(require("admin"))],
    user_id: Annotated[str, Path(min_length=1, max_length=200)],
) -> dict[str, Any]:
    """Remove the user's rows from every asset version, live events, caches and snapshots."""
    return await asyncio.to_thread(service.forget, user_id, f"api-key:{key.key_id}")
