"""Request dependencies: the worker's `Service` and API key checks by role."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shopkeeper.serve._keys import ApiKey, Role, role_allows
from shopkeeper.serve._service import Service

COOKIE = "shopkeeper_key"
"""The dashboard keeps the key in this HttpOnly cookie."""

_bearer = HTTPBearer(auto_error=False, description="An API key from `shopkeeper keys create`.")


def get_service(request: Request) -> Service:
    """The worker's service, made in the app's lifespan."""
    service: Service = request.app.state.service
    return service


def require(role: Role) -> Callable[..., ApiKey]:
    """A dependency admitting keys of `role` or above (401 without a key, 403 below it)."""

    def check(
        request: Request,
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> ApiKey:
        key = creds.credentials if creds is not None else request.cookies.get(COOKIE)
        if not key:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "an API key is required: Authorization: Bearer KEY",
                headers={"WWW-Authenticate": "Bearer"},
            )
        record = get_service(request).keys.verify(key)
        if record is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown or revoked API key",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not role_allows(record.role, role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"this needs a {role} key; yours is {record.role}"
            )
        request.state.key_id = record.key_id
        return record

    return check
