"""Right to be forgotten: remove one user's rows from every stored version of every asset.

A user is matched by pseudonym under every prefix of the key chain, so versions written
before a pseudonym-key rotation are cleaned too. Every Parquet file the catalog lists
with a `user_id` column (events, users, reviews, derived feature tables), and every
quarantine file (by `user_id` or by its `raw` text, opening sealed lines), is scanned;
a file holding the user is rewritten without those rows under `tmp/`, fsynced and
renamed over the old one. Then one catalog transaction brings `meta.files.rows` and the
versions' row counts in line with the files on disk. The whole run holds the write lock.

A crash leaves each file either old or rewritten; the next call rewrites what is left
and repairs the counts from the files, so a rerun completes an interrupted one (and a
rerun after success removes nothing). Each call appends one record to the audit log.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shopkeeper.clean import Pseudonymizer, is_token
from shopkeeper.logging import Stopwatch, get_logger
from shopkeeper.warehouse._audit import append_audit
from shopkeeper.warehouse._durable import replace_durably
from shopkeeper.warehouse._privacy import recover_pending_rotation
from shopkeeper.warehouse._warehouse import Warehouse

if TYPE_CHECKING:
    from pathlib import Path

    from shopkeeper.clean import FieldCipher
    from shopkeeper.warehouse._workspace import Workspace

_log = get_logger(__name__)

_BATCH_ROWS = 122_880
"""Rows per batch read and per row group written (the ingest writer's row group size)."""


@dataclass
class _Matcher:
    """Finds one user's rows in Arrow batches."""

    pseudonyms: list[str]
    cipher: FieldCipher
    _ids: pa.Array = field(init=False)

    def __post_init__(self) -> None:
        self._ids = pa.array(self.pseudonyms, pa.string())

    def mask(self, batch: pa.RecordBatch, quarantine: bool) -> pa.Array:
        """True for the rows of `batch` that belong to the user."""
        names = batch.schema.names
        hit = pa.array([False] * batch.num_rows)
        if "user_id" in names:
            ids = batch.column("user_id").cast(pa.string())
            hit = pc.or_(hit, pc.fill_null(pc.is_in(ids, value_set=self._ids), False))
        if quarantine and "raw" in names:
            hit = pc.or_(hit, self._raw_mask(batch.column("raw").cast(pa.string())))
        return hit

    def _raw_mask(self, raw: pa.Array) -> pa.Array:
        hit = pa.array([False] * len(raw))
        for p in self.pseudonyms:
            hit = pc.or_(hit, pc.fill_null(pc.match_substring(raw, p), False))
        sealed = pc.fill_null(pc.starts_with(raw, "enc:v1:"), False)
        if pc.any(sealed).as_py():  # a whole line sealed at ingest: open it to look
            opened = [
                is_token(v) and any(p in self.cipher.decrypt(v) for p in self.pseudonyms)
                for v in raw.to_pylist()
            ]
            hit = pc.or_(hit, pa.array(opened))
        return hit


def _pseudonyms(ws: Workspace, raw_user_id: str) -> list[str]:
    """The user's pseudonym under each prefix of the key chain, the current one last."""
    chain = ws.keys.load(create=False).keys
    return [Pseudonymizer(chain[: i + 1]).pseudonymize(raw_user_id) for i in range(len(chain))]


def _candidates(wh: Warehouse) -> list[tuple[str, str, list[str]]]:
    """(relative path, role, assets) of every Parquet data or quarantine file, once each."""
    rows = wh.con.execute(
        "SELECT path, role, list(DISTINCT asset ORDER BY asset) FROM meta.files "
        "WHERE role IN ('data', 'quarantine') AND path LIKE '%.parquet' "
        "GROUP BY path, role ORDER BY path"
    ).fetchall()
    return [(str(p), str(r), list(a)) for p, r, a in rows]


def _scans(schema: pa.Schema, role: str) -> bool:
    return "user_id" in schema.names or (role == "quarantine" and "raw" in schema.names)


def _count(path: Path, matcher: _Matcher, quarantine: bool) -> dict[str, int]:
    """The user's rows in one file, by the `asset` column of a quarantine file."""
    pf = pq.ParquetFile(path)
    cols = [c for c in ("user_id", "raw", "asset") if c in pf.schema_arrow.names]
    out: dict[str, int] = {}
    for batch in pf.iter_batches(batch_size=_BATCH_ROWS, columns=cols):
        hit = matcher.mask(batch, quarantine)
        if quarantine and "asset" in batch.schema.names:
            for a in pc.filter(batch.column("asset"), hit).to_pylist():
                out[str(a)] = out.get(str(a), 0) + 1
        else:
            out[""] = out.get("", 0) + int(pc.sum(hit).as_py() or 0)
    return {k: n for k, n in out.items() if n}


def _rewrite(ws: Workspace, path: Path, matcher: _Matcher, quarantine: bool, tag: str) -> None:
    """Write `path` again without the user's rows (same Arrow schema), then swap it in."""
    tmp = ws.tmp_dir / f"forget-{tag}" / path.name
    tmp.parent.mkdir(parents=True, exist_ok=True)
    pf = pq.ParquetFile(path)
    with pq.ParquetWriter(tmp, pf.schema_arrow, compression="zstd") as writer:
        for batch in pf.iter_batches(batch_size=_BATCH_ROWS):
            keep = pc.invert(matcher.mask(batch, quarantine))
            writer.write_batch(batch.filter(keep), row_group_size=_BATCH_ROWS)
    replace_durably(tmp, path)


def _sync_counts(wh: Warehouse, paths: list[str]) -> int:
    """Set recorded rows of `paths` to the files' and move version row counts by the change."""
    ws = wh.workspace
    changes: list[tuple[str, int]] = []
    for rel in paths:
        actual = pq.read_metadata(ws.absolute(rel)).num_rows
        changes.append((rel, actual))
    con = wh.con
    fixed = 0
    con.execute("BEGIN TRANSACTION")
    try:
        for rel, actual in changes:
            entries = con.execute(
                "SELECT asset, version, role, rows FROM meta.files WHERE path = ? AND rows <> ?",
                [rel, actual],
            ).fetchall()
            for asset, version, role, rows in entries:
                fixed += 1
                if role == "data":
                    _shrink_version(wh, asset, version, int(rows) - actual)
            con.execute("UPDATE meta.files SET rows = ? WHERE path = ?", [actual, rel])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return fixed


def _shrink_version(wh: Warehouse, asset: str, version: int, delta: int) -> None:
    v = wh.version(asset, version)
    rows = v.row_count - delta
    quality = {**v.quality, "rows": rows} if "rows" in v.quality else v.quality
    wh.con.execute(
        "UPDATE meta.versions SET row_count = ?, quality = ? WHERE asset = ? AND version = ?",
        [rows, json.dumps(quality, default=str), asset, version],
    )


def forget_user(ws: Workspace, raw_user_id: str, *, actor: str) -> dict[str, Any]:
    """Erase every stored row of one user; see the module docstring.

    Args:
        ws: The workspace.
        raw_user_id: The user id as the source gave it (never stored or logged).
        actor: Who asked (recorded in the audit log).

    Returns:
        `{"user": pseudonym, "rows_removed": {asset: n}, "files_rewritten": n}`; quarantine
        rows count under `quarantine:<asset>`.

    Raises:
        WarehouseError: no workspace keys, or the writer lock is held elsewhere.
    """
    timer = Stopwatch()
    with ws.write_lock(), Warehouse(ws) as wh:
        recover_pending_rotation(ws, wh)
        ws.sweep(wh.referenced_dirs())
        pseudonyms = _pseudonyms(ws, raw_user_id)
        record: dict[str, Any] = {"action": "forget_user", "user": pseudonyms[-1], "actor": actor}
        try:
            removed, rewritten = _erase(ws, wh, _Matcher(pseudonyms, ws.field_cipher))
        except BaseException as exc:
            append_audit(ws, {**record, "status": "failed", "error": type(exc).__name__})
            raise
        done = {"rows_removed": removed, "files_rewritten": rewritten, "status": "completed"}
        append_audit(ws, {**record, **done})
    _log.info("forgot user", files_rewritten=rewritten, elapsed=str(timer), **removed)
    return {"user": pseudonyms[-1], "rows_removed": removed, "files_rewritten": rewritten}


def _count_names(key: str, assets: list[str], quarantine: bool) -> list[str]:
    """Where rows removed from one file count: its assets, or `quarantine:<asset>`.

    >>> _count_names("", ["events"], False), _count_names("users", ["events"], True)
    (['events'], ['quarantine:users'])
    """
    if not quarantine:
        return assets
    return [f"quarantine:{key}"] if key else [f"quarantine:{a}" for a in assets]


def _erase(ws: Workspace, wh: Warehouse, matcher: _Matcher) -> tuple[dict[str, int], int]:
    removed: dict[str, int] = {}
    rewritten = 0
    scanned: list[str] = []
    tag = matcher.pseudonyms[-1][:12]
    for rel, role, assets in _candidates(wh):
        path = ws.absolute(rel)
        quarantine = role == "quarantine"
        if not path.exists() or not _scans(pq.read_schema(path), role):
            continue
        scanned.append(rel)
        counts = _count(path, matcher, quarantine)
        if not counts:
            continue
        _rewrite(ws, path, matcher, quarantine, tag)
        rewritten += 1
        for key, n in counts.items():
            for name in _count_names(key, assets, quarantine):
                removed[name] = removed.get(name, 0) + n
    _sync_counts(wh, scanned)
    return dict(sorted(removed.items())), rewritten
