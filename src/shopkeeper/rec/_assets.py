"""Commit an evaluation report as a versioned asset through the warehouse's derived-version
commit: files renamed into a new version folder, one catalog transaction recording the
version, its files and its parents (the events, the embeddings, the previous report)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shopkeeper.warehouse import DerivedVersion, Warehouse, commit_derived

if TYPE_CHECKING:
    from pathlib import Path

    from shopkeeper.warehouse import FileRole, Workspace


def commit_report_version(
    ws: Workspace,
    asset: str,
    build_id: str,
    *,
    params: dict[str, Any],
    rows: int,
    schema: list[dict[str, Any]],
    files: list[tuple[FileRole, Path, int]],
    parents: list[tuple[str, int, str]],
) -> int:
    """Move `files` (role, path under tmp, rows) into a new version of `asset`; record it.

    Call with the workspace write lock held. Returns the new version number.
    """
    with Warehouse(ws, read_only=True) as wh:
        latest = wh.latest(asset)
    if latest is not None:
        parents = [*parents, (asset, latest.version, "previous")]
    dv = DerivedVersion(
        asset=asset,
        kind="report",
        transform="rec.evaluate",
        params=params,
        row_count=rows,
        schema=[{**c, "pii": c.get("pii", "none")} for c in schema],
        files=files,
        parents=parents,
    )
    return commit_derived(ws, dv, build_id)
