"""Commit a derived asset version (embeddings, indexes, reports) the way ingest commits its own.

Files are written under the workspace's `tmp/`, renamed into a new version folder,
and become visible only when one catalog transaction records the version, its files,
its sources and its parents. Call with the workspace write lock held.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, TypeGuard

from shopkeeper import __version__
from shopkeeper.warehouse._durable import fsync_path
from shopkeeper.warehouse._warehouse import Warehouse

if TYPE_CHECKING:
    from pathlib import Path

    from shopkeeper.warehouse._warehouse import AssetVersion
    from shopkeeper.warehouse._workspace import Workspace

FileRole = Literal["data", "artifact"]


@dataclass
class DerivedVersion:
    """A new version of a derived asset, its files still in tmp."""

    asset: str
    kind: str
    transform: str
    params: dict[str, Any]
    row_count: int
    schema: list[dict[str, Any]]
    files: list[tuple[FileRole, Path, int]] = field(default_factory=list)
    """(role, path under tmp, rows); `data` files are Parquet and get a SQL view."""
    parents: list[tuple[str, int, str]] = field(default_factory=list)
    """(asset, version, relation) this version was built from."""
    sources: list[tuple[str, str, int]] = field(default_factory=list)
    """(path, sha256, bytes) of files read from outside the workspace (a model)."""
    quality: dict[str, Any] = field(default_factory=dict)
    tree: Path | None = None
    """Files under this folder keep their path below it in the version folder (a model
    folder with subfolders); other files land at the top by name."""


def built_from(last: AssetVersion | None, params: dict[str, Any]) -> TypeGuard[AssetVersion]:
    """True when `last` was built from exactly these inputs and settings (`params`).

    >>> built_from(None, {"items_version": 1})
    False
    """
    return last is not None and all(last.params.get(k) == v for k, v in params.items())


def new_build_id() -> str:
    """A short random id naming one build's tmp and version folders."""
    return uuid.uuid4().hex[:12]


def commit_derived(ws: Workspace, dv: DerivedVersion, build_id: str) -> int:
    """Move `dv`'s files into a new version folder and record it; return the version."""
    now = datetime.now(UTC)
    with Warehouse(ws) as wh:
        latest = wh.latest(dv.asset)
        version = (latest.version if latest else 0) + 1
        vdir = ws.assets_dir / dv.asset / f"v{version:06d}-{build_id}"
        vdir.mkdir(parents=True, exist_ok=True)
        rows: list[tuple[str, str, int]] = []
        for role, src, n in dv.files:
            inside = dv.tree is not None and src.is_relative_to(dv.tree)
            dest = vdir / (src.relative_to(dv.tree) if inside and dv.tree else src.name)
            dest.parent.mkdir(parents=True, exist_ok=True)
            src.replace(dest)
            rows.append((role, ws.relative(dest), n))
        fsync_path(vdir)
        params = {**dv.params, "shopkeeper": __version__}
        n = dv.row_count
        counts = {"input_rows": n, "clean_rows": n, "quarantined_rows": 0, "duplicate_rows": 0}
        quality = {
            "status": "ok",
            "rows": n,
            **dv.quality,
            "load": {**counts, **dv.quality.get("load", {})},
        }
        con = wh.con
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                "INSERT INTO meta.versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    dv.asset,
                    version,
                    dv.kind,
                    now,
                    build_id,
                    dv.transform,
                    json.dumps(params, default=str),
                    dv.row_count,
                    json.dumps(dv.schema),
                    json.dumps({c["name"]: c.get("pii", "none") for c in dv.schema}),
                    dv.row_count,
                    dv.row_count,
                    0,
                    0,
                    json.dumps({}),
                    json.dumps(quality, default=str),
                ],
            )
            for file_role, path, n in rows:
                con.execute(
                    "INSERT INTO meta.files VALUES (?, ?, ?, ?, ?)",
                    [dv.asset, version, file_role, path, n],
                )
            for path, sha, size in dv.sources:
                con.execute(
                    "INSERT INTO meta.sources VALUES (?, ?, ?, ?, ?)",
                    [dv.asset, version, path, sha, size],
                )
            for pa_, pv, rel in dv.parents:
                con.execute(
                    "INSERT INTO meta.parents VALUES (?, ?, ?, ?, ?)",
                    [dv.asset, version, pa_, pv, rel],
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return version
