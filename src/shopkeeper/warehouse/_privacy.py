"""Key rotation: re-key every stored user id, or re-seal every encrypted field, in new versions."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb

from shopkeeper.clean import hmac_sql
from shopkeeper.clean._pii import PSEUDONYM_HEX
from shopkeeper.ingest import quote_ident, sql_literal
from shopkeeper.warehouse._audit import append_audit
from shopkeeper.warehouse._durable import fsync_path, replace_durably
from shopkeeper.warehouse._fields import (
    ALGORITHM,
    encrypted_columns,
    register_string_function,
    reseal,
)
from shopkeeper.warehouse._warehouse import Warehouse

if TYPE_CHECKING:
    from pathlib import Path

    from shopkeeper.warehouse._warehouse import AssetVersion
    from shopkeeper.warehouse._workspace import Workspace

_USER_KINDS = ("events", "users", "reviews")
_REKEY = "privacy:rotate-key"
_RESEAL = "privacy:rotate-field-key"


def rotate_pseudonym_key(ws: Workspace) -> list[dict[str, Any]]:
    """Add a new key to the chain and write a re-keyed version of every asset with user ids.

    Old versions keep the old pseudonyms (history is immutable); the latest versions,
    and every later ingest, use the extended chain.
    """
    now = datetime.now(UTC)
    load_id = uuid.uuid4().hex[:12]
    out: list[dict[str, Any]] = []
    with ws.write_lock(), Warehouse(ws) as wh:
        targets = [v for v in wh.latest_versions() if v.kind in _USER_KINDS]
        recover_pending_rotation(ws, wh)
        new_key = ws.keys.stage_rotation(load_id)
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        rows: list[tuple[Any, ...]] = []
        for v in targets:
            files = [str(p) for p in wh.files(v.asset, v.version)]
            dest = ws.assets_dir / v.asset / f"v{v.version + 1:06d}-{load_id}"
            dest.mkdir(parents=True, exist_ok=True)
            path = dest / f"part-{v.version + 1:06d}.parquet"
            rekey = f"left({hmac_sql(new_key, 'user_id')}, {PSEUDONYM_HEX})"
            con.execute(
                f"COPY (SELECT * REPLACE ({rekey} AS user_id) FROM read_parquet("
                f"[{', '.join(map(sql_literal, files))}])) TO {sql_literal(str(path))} "
                "(FORMAT parquet, COMPRESSION zstd)"
            )
            fsync_path(dest)
            rows.append((v, path))
            out.append({"asset": v.asset, "version": v.version + 1, "rows": v.row_count})
        con.close()
        try:
            rewrites = [(v, ws.relative(p), _kept_params(v)) for v, p in rows]
            record_rewrites(wh, rewrites, load_id, now, _REKEY)
        except BaseException:
            ws.keys.discard_pending()
            raise
        ws.keys.promote_pending()
    return out


def _kept_params(v: AssetVersion) -> dict[str, Any]:
    """What a re-keyed copy still says about its data: the sealed-columns marker."""
    return {k: v.params[k] for k in ("encrypted",) if k in v.params}


def recover_pending_rotation(ws: Workspace, wh: Warehouse) -> None:
    """Finish or undo a key rotation interrupted between its commit and the key swap."""
    load_id = ws.keys.pending_load_id()
    if load_id is None:
        return
    row = wh.con.execute(
        "SELECT count(*) FROM meta.versions WHERE load_id = ?", [load_id]
    ).fetchone()
    if row and row[0]:
        ws.keys.promote_pending()
    else:
        ws.keys.discard_pending()


def record_rewrites(
    wh: Warehouse,
    rewrites: list[tuple[AssetVersion, str, dict[str, Any]]],
    load_id: str,
    now: datetime,
    transform: str,
) -> None:
    """Record, in one transaction, a next version of each asset holding one new file.

    Each `(v, path, params)` becomes version `v.version + 1` with v's rows, schema and
    quality, the file at workspace-relative `path`, and `v` as its previous version.
    """
    c = wh.con
    c.execute("BEGIN TRANSACTION")
    try:
        for v, path, params in rewrites:
            n = v.version + 1
            counts = {
                "input_rows": v.row_count,
                "clean_rows": v.row_count,
                "quarantined_rows": 0,
                "duplicate_rows": 0,
            }
            c.execute(
                f"INSERT INTO meta.versions VALUES ({', '.join('?' * 16)})",
                [
                    v.asset,
                    n,
                    v.kind,
                    now,
                    load_id,
                    transform,
                    json.dumps(params),
                    v.row_count,
                    json.dumps(v.schema),
                    json.dumps(v.pii),
                    v.row_count,
                    v.row_count,
                    0,
                    0,
                    json.dumps({}),
                    json.dumps({**v.quality, "load": counts, "reasons": {}}, default=str),
                ],
            )
            c.execute(
                "INSERT INTO meta.files VALUES (?, ?, 'data', ?, ?)",
                [v.asset, n, path, v.row_count],
            )
            c.execute(
                "INSERT INTO meta.parents VALUES (?, ?, ?, ?, 'previous')",
                [v.asset, n, v.asset, v.version],
            )
        c.execute("COMMIT")
    except BaseException:
        c.execute("ROLLBACK")
        raise


def rotate_field_key(ws: Workspace) -> list[dict[str, Any]]:
    """Add a field-encryption key and write a version of every sealed asset re-sealed under it.

    New files are written under `tmp/`, renamed into new version folders and recorded in
    one catalog transaction. The key ring only grows, so a crash anywhere leaves every
    stored token readable: before the commit the latest versions keep their old keys
    (the unreferenced folder is swept by the next writer) and a rerun rotates again.
    """
    now = datetime.now(UTC)
    load_id = uuid.uuid4().hex[:12]
    out: list[dict[str, Any]] = []
    with ws.write_lock(), Warehouse(ws) as wh:
        recover_pending_rotation(ws, wh)
        targets = [v for v in wh.latest_versions() if encrypted_columns(v.kind)]
        cipher = ws.field_cipher.load()
        new_id = cipher.rotate()
        con = duckdb.connect(":memory:")
        con.execute("SET TimeZone = 'UTC'")
        register_string_function(con, "sk_reseal", lambda t: reseal(cipher, t))
        rewrites: list[tuple[AssetVersion, str, dict[str, Any]]] = []
        try:
            for v in targets:
                path = _reseal_version(ws, wh, con, v, load_id)
                marker = {"columns": list(encrypted_columns(v.kind)), "algorithm": ALGORITHM}
                params = {"encrypted": {**marker, "key_id": new_id}}
                rewrites.append((v, ws.relative(path), params))
                out.append({"asset": v.asset, "version": v.version + 1, "rows": v.row_count})
        finally:
            con.close()
        record_rewrites(wh, rewrites, load_id, now, _RESEAL)
        append_audit(ws, {"action": "rotate_field_key", "key_id": new_id, "versions": out})
    return out


def _reseal_version(
    ws: Workspace, wh: Warehouse, con: duckdb.DuckDBPyConnection, v: AssetVersion, load_id: str
) -> Path:
    files = [str(p) for p in wh.files(v.asset, v.version)]
    n = v.version + 1
    tmp = ws.tmp_dir / load_id / f"part-{n:06d}.parquet"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    sealed = ", ".join(
        f"sk_reseal({quote_ident(c)}) AS {quote_ident(c)}" for c in encrypted_columns(v.kind)
    )
    con.execute(
        f"COPY (SELECT * REPLACE ({sealed}) FROM read_parquet("
        f"[{', '.join(map(sql_literal, files))}])) TO {sql_literal(str(tmp))} "
        "(FORMAT parquet, COMPRESSION zstd)"
    )
    dest = ws.assets_dir / v.asset / f"v{n:06d}-{load_id}" / tmp.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    replace_durably(tmp, dest)
    return dest
