"""The online service: search, recommendations and live events over HTTP (`serve` extra)."""

from __future__ import annotations

from shopkeeper.serve._app import create_app
from shopkeeper.serve._keys import ROLES, ApiKey, ApiKeyStore, Role
from shopkeeper.serve._settings import ServeSettings

__all__ = ["ROLES", "ApiKey", "ApiKeyStore", "Role", "ServeSettings", "create_app"]
