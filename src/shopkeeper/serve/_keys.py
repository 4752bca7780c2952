"""API keys with roles, stored hashed (SHA-256) in the workspace; a key is shown once.

Roles are ordered: a writer may also read, an admin may do everything.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, get_args

from shopkeeper.errors import ConfigError, NotFoundError

if TYPE_CHECKING:
    from pathlib import Path

    from shopkeeper.warehouse import Workspace

Role = Literal["reader", "writer", "admin"]
ROLES: tuple[Role, ...] = get_args(Role)
_RANK = {r: i for i, r in enumerate(ROLES)}
KEY_PREFIX = "sk_"


def role_allows(have: Role, need: Role) -> bool:
    """Whether a key of role `have` may call what needs `need`.

    >>> role_allows("admin", "reader"), role_allows("reader", "writer")
    (True, False)
    """
    return _RANK[have] >= _RANK[need]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    """One stored key: its id, role and when it was made (never the key itself)."""

    key_id: str
    role: Role
    created_at: str


class ApiKeyStore:
    """The key file (`keys/api_keys.json`, mode 0600): SHA-256 digest → id and role."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: float | None = None
        self._by_digest: dict[str, ApiKey] = {}

    @classmethod
    def of(cls, ws: Workspace) -> ApiKeyStore:
        """The key file of a workspace."""
        return cls(ws.home / "keys" / "api_keys.json")

    def create(self, role: str) -> tuple[str, ApiKey]:
        """Make a new random key of `role`; return the key (shown once) and its record.

        Raises:
            ConfigError: an unknown role.
        """
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r}; known: {', '.join(ROLES)}")
        key = f"{KEY_PREFIX}{secrets.token_urlsafe(32)}"
        record = ApiKey(
            key_id=secrets.token_hex(4),
            role=role,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        entries = self._read()
        entries[_digest(key)] = record
        self._write(entries)
        return key, record

    def revoke(self, key_id: str) -> None:
        """Remove the key with id `key_id`.

        Raises:
            NotFoundError: no such key.
        """
        entries = self._read()
        kept = {d: r for d, r in entries.items() if r.key_id != key_id}
        if len(kept) == len(entries):
            raise NotFoundError(f"no API key with id {key_id!r}")
        self._write(kept)

    def list(self) -> list[ApiKey]:
        """Every stored key, oldest first."""
        return sorted(self._read().values(), key=lambda r: r.created_at)

    def verify(self, key: str) -> ApiKey | None:
        """The record of `key`, or None (re-reads the file when it changed)."""
        if not key.startswith(KEY_PREFIX):
            return None
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        if mtime != self._mtime:
            self._by_digest, self._mtime = self._read(), mtime
        return self._by_digest.get(_digest(key))

    def _read(self) -> dict[str, ApiKey]:
        if not self.path.exists():
            return {}
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return {d: ApiKey(**r) for d, r in data["keys"].items()}

    def _write(self, entries: dict[str, ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.parent.chmod(0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"hash": "sha256", "keys": {d: r.__dict__ for d, r in entries.items()}}, f)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.path)
