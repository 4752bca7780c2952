"""Commit an evaluation report as a versioned asset, the way `features` commits its own.

Files are written under the workspace's `tmp/`, renamed into a new version folder and
become visible only when one catalog transaction records the version, its files and
its parents (the events version, the embeddings version, the previous report).
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shopkeeper import __version__
from shopkeeper.warehouse import Warehouse

if TYPE_CHECKING:
    from pathlib import Path

    from shopkeeper.warehouse import Workspace


def commit_report_version(
    ws: Workspace,
    asset: str,
    build_id: str,
    *,
    params: dict[str, Any],
    rows: int,
    schema: list[dict[str, Any]],
    files: list[tuple[str, Path, int]],
    parents: list[tuple[str, int, str]],
) -> int:
    """Move `files` (role, path under tmp, rows) into a new version of `asset`; record it.

    Call with the workspace write lock held. Returns the new version number.
    """
    now = datetime.now(UTC)
    with Warehouse(ws) as wh:
        latest = wh.latest(asset)
        version = (latest.version if latest else 0) + 1
        if latest is not None:
            parents = [*parents, (asset, latest.version, "previous")]
        vdir = ws.assets_dir / asset / f"v{version:06d}-{build_id}"
        vdir.mkdir(parents=True, exist_ok=True)
        moved = []
        for role, src, n in files:
            dest = vdir / src.name
            src.replace(dest)
            moved.append((role, ws.relative(dest), n))
        fd = os.open(vdir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        quality = {"status": "ok", "rows": rows}
        con = wh.con
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                "INSERT INTO meta.versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    asset,
                    version,
                    "report",
                    now,
                    build_id,
                    "rec.evaluate",
                    json.dumps({**params, "shopkeeper": __version__}, default=str),
                    rows,
                    json.dumps(schema),
                    json.dumps({c["name"]: "none" for c in schema}),
                    rows,
                    rows,
                    0,
                    0,
                    json.dumps({}),
                    json.dumps(quality),
                ],
            )
            for role, path, n in moved:
                con.execute(
                    "INSERT INTO meta.files VALUES (?, ?, ?, ?, ?)", [asset, version, role, path, n]
                )
            for p_asset, p_version, relation in parents:
                con.execute(
                    "INSERT INTO meta.parents VALUES (?, ?, ?, ?, ?)",
                    [asset, version, p_asset, p_version, relation],
                )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return version
