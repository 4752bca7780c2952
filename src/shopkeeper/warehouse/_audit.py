"""The workspace's append-only audit log of privacy actions (`audit/audit.jsonl`).

One JSON object per line, appended with `O_APPEND` and fsynced before the call returns;
the file is mode 0600 in a 0700 folder. Records name users by pseudonym only.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shopkeeper.errors import WarehouseError

if TYPE_CHECKING:
    from pathlib import Path

    from shopkeeper.warehouse._workspace import Workspace


def audit_path(ws: Workspace) -> Path:
    """Where the workspace's audit log lives."""
    return ws.home / "audit" / "audit.jsonl"


def append_audit(ws: Workspace, record: dict[str, Any]) -> dict[str, Any]:
    """Append one record (a `ts` is added first) and make it durable; return it."""
    path = audit_path(ws)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.parent.chmod(0o700)
    line = {"ts": datetime.now(UTC).isoformat(), **record}
    data = (json.dumps(line, sort_keys=True, default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return line


def read_audit_log(ws: Workspace) -> list[dict[str, Any]]:
    """Every audit record, oldest first (a torn last line from a crash is skipped).

    Raises:
        WarehouseError: a line before the last is not JSON (the log was edited).
    """
    path = audit_path(ws)
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, text in enumerate(lines):
        if not text.strip():
            continue
        try:
            out.append(json.loads(text))
        except json.JSONDecodeError as exc:
            if i != len(lines) - 1:
                raise WarehouseError(f"{path} line {i + 1} is not JSON") from exc
    return out
