"""Export an asset's versions as a Delta Lake table, so that Spark or any Delta reader can use them.

Each Shopkeeper version becomes one Delta commit, in order, with `shopkeeper.version`
and the version's files (path and rows) in the commit's metadata. A version whose files
extend the previous one's (an events append) is written as a Delta append of the new
files only; any other version overwrites. A second export writes only the versions the
table does not hold yet.

Erasure: when a version already exported no longer matches its files (`privacy forget`
rewrote them), the table is overwritten with the newest version and vacuumed with no
retention, so the erased rows leave the Delta files too; the older Delta versions are
then gone (their files are deleted) and the export says so.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from shopkeeper.errors import ConfigError, NotFoundError
from shopkeeper.logging import get_logger
from shopkeeper.warehouse._warehouse import Warehouse

if TYPE_CHECKING:
    from pathlib import Path

    from shopkeeper.warehouse._workspace import Workspace

_log = get_logger(__name__)
_VERSION_KEY, _FILES_KEY = "shopkeeper.version", "shopkeeper.files"
Files = list[tuple[str, int]]


def _deltalake() -> Any:
    try:
        import deltalake
    except ImportError as exc:
        raise ImportError('Delta export needs its extra: pip install "shopkeeper[lake]"') from exc
    return deltalake


def _version_files(wh: Warehouse, asset: str, version: int) -> Files:
    """(path relative to the workspace, rows) of one version's data files, as stored now."""
    rows = wh.con.execute(
        "SELECT path, rows FROM meta.files WHERE asset = ? AND version = ? AND role = 'data' "
        "ORDER BY path",
        [asset, version],
    ).fetchall()
    return [(str(p), int(n)) for p, n in rows]


def _reader(ws: Workspace, files: Files, schema_of: Files) -> pa.RecordBatchReader:
    """The rows of `files` as one stream, with the columns of all of `schema_of` unified
    by name (as the SQL views do); no files: an empty stream of that schema."""
    schema = pa.unify_schemas([pq.read_schema(ws.absolute(p)) for p, _ in schema_of])
    paths = [str(ws.absolute(p)) for p, _ in files]
    if not paths:
        return pa.RecordBatchReader.from_batches(schema, [])
    return pads.dataset(paths, schema=schema, format="parquet").scanner().to_reader()


def _exported(dest: Path) -> list[tuple[int, Files]]:
    """(Shopkeeper version, files) of every commit in the Delta table at `dest`, oldest first."""
    dl = _deltalake()
    if not (dest / "_delta_log").is_dir():
        return []
    out = []
    for entry in sorted(dl.DeltaTable(str(dest)).history(), key=lambda e: e["version"]):
        if _VERSION_KEY in entry:
            files = [(str(p), int(n)) for p, n in json.loads(entry[_FILES_KEY])]
            out.append((int(entry[_VERSION_KEY]), files))
    return out


def export_delta(ws: Workspace, asset: str, dest: Path) -> dict[str, Any]:
    """Bring the Delta table at `dest` up to date with `asset`'s versions.

    Returns:
        What was done: the versions written (and how), whether the table was rewritten
        after an erasure, the Delta version now current and its row count.

    Raises:
        NotFoundError: no such asset, or it has no table data (a model, an index).
        ConfigError: `dest` holds a Delta table that is not an export of this asset.
    """
    dl = _deltalake()
    dest = dest.resolve()
    with Warehouse(ws, read_only=True) as wh:
        versions = [v.version for v in wh.versions(asset)]
        current = {v: _version_files(wh, asset, v) for v in versions}
    if not current[versions[-1]]:
        raise NotFoundError(f"{asset} has no table data to export (a model or an index file)")
    if dest.exists() and any(dest.iterdir()) and not (dest / "_delta_log").is_dir():
        raise ConfigError(f"{dest} is not empty and holds no Delta table")
    done = _exported(dest)
    if (dest / "_delta_log").is_dir() and not done:
        raise ConfigError(f"{dest} holds a Delta table that Shopkeeper did not write")
    stale = [v for v, files in done if current.get(v) != files]
    written: list[dict[str, Any]] = []
    if stale:
        _write(dl, ws, dest, asset, versions[-1], current[versions[-1]], "overwrite")
        table = dl.DeltaTable(str(dest))
        removed = table.vacuum(
            retention_hours=0, dry_run=False, enforce_retention_duration=False, full=True
        )
        _log.info("delta export rewritten", asset=asset, stale=stale, files_removed=len(removed))
        written.append({"version": versions[-1], "mode": "overwrite"})
    else:
        last = done[-1] if done else None
        for v in versions:
            if last is not None and v <= last[0]:
                continue
            files = current[v]
            prev = last[1] if last is not None else None
            if prev is not None and set(prev) <= set(files):
                mode: Literal["append", "overwrite"] = "append"
                new = [f for f in files if f not in set(prev)]
            else:
                mode, new = "overwrite", files
            _write(dl, ws, dest, asset, v, files, mode, data=new)
            written.append({"version": v, "mode": mode, "files": len(new)})
            last = (v, files)
    table = dl.DeltaTable(str(dest))
    return {
        "asset": asset,
        "format": "delta",
        "path": str(dest),
        "written": written,
        "rewritten_after_erasure": bool(stale),
        "stale_versions": stale,
        "delta_version": table.version(),
        "shopkeeper_version": versions[-1],
        "rows": sum(n for _, n in current[versions[-1]]),
    }


def _write(
    dl: Any,
    ws: Workspace,
    dest: Path,
    asset: str,
    version: int,
    files: Files,
    mode: Literal["append", "overwrite"],
    *,
    data: Files | None = None,
) -> None:
    """One Delta commit: `data` (default: all of `files`), recording `files` as the version's."""
    props = dl.CommitProperties(
        custom_metadata={_VERSION_KEY: str(version), _FILES_KEY: json.dumps(files)}
    )
    dl.write_deltalake(
        str(dest),
        _reader(ws, files if data is None else data, files),
        mode=mode,
        schema_mode="overwrite" if mode == "overwrite" else "merge",
        name=asset,
        commit_properties=props,
    )
