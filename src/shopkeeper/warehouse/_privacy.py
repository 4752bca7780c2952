"""Rotate the pseudonymization key: every stored user id is re-keyed in a new version."""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb

from shopkeeper.clean import hmac_sql
from shopkeeper.clean._pii import PSEUDONYM_HEX
from shopkeeper.ingest import sql_literal
from shopkeeper.warehouse._warehouse import Warehouse

if TYPE_CHECKING:
    from shopkeeper.warehouse._workspace import Workspace

_USER_KINDS = ("events", "users", "reviews")


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
            fd = os.open(dest, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
            rows.append((v, path))
            out.append({"asset": v.asset, "version": v.version + 1, "rows": v.row_count})
        con.close()
        c = wh.con
        c.execute("BEGIN TRANSACTION")
        try:
            for v, path in rows:
                n = v.version + 1
                c.execute(
                    f"INSERT INTO meta.versions VALUES ({', '.join('?' * 16)})",
                    [
                        v.asset,
                        n,
                        v.kind,
                        now,
                        load_id,
                        "privacy:rotate-key",
                        json.dumps({}),
                        v.row_count,
                        json.dumps(v.schema),
                        json.dumps(v.pii),
                        v.row_count,
                        v.row_count,
                        0,
                        0,
                        json.dumps({}),
                        json.dumps(
                            {
                                **v.quality,
                                "load": {
                                    "input_rows": v.row_count,
                                    "clean_rows": v.row_count,
                                    "quarantined_rows": 0,
                                    "duplicate_rows": 0,
                                },
                                "reasons": {},
                            },
                            default=str,
                        ),
                    ],
                )
                c.execute(
                    "INSERT INTO meta.files VALUES (?, ?, 'data', ?, ?)",
                    [v.asset, n, ws.relative(path), v.row_count],
                )
                c.execute(
                    "INSERT INTO meta.parents VALUES (?, ?, ?, ?, 'previous')",
                    [v.asset, n, v.asset, v.version],
                )
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            ws.keys.discard_pending()
            raise
        ws.keys.promote_pending()
    return out


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
