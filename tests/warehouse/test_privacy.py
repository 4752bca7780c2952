"""No raw user id reaches any stored table; pseudonyms are stable and keys rotate."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from shopkeeper.warehouse import (
    IngestRequest,
    Warehouse,
    Workspace,
    ingest,
    rotate_pseudonym_key,
)

RAW_IDS = ("alice.smith@example.com", "CUST-000042-SECRET", "4242")
EVENTS = (
    "\n".join(
        [
            "user_id,item_id,event_type,ts,query",
            f"{RAW_IDS[0]},i1,view,2024-01-01 10:00:00,red mug",
            f"{RAW_IDS[1]},i2,search,2024-01-01 10:05:00,call me on +44 20 7946 0958",
            f"{RAW_IDS[1]},i2,search,2024-01-01 10:05:00,call me on +44 20 7946 0958",
            f"{RAW_IDS[2]},i3,nonsense,2024-01-01 10:06:00,",
            f"{RAW_IDS[0]},i1,view,2024-01-01,extra,fields,here",
            f"{RAW_IDS[2]},i4,view,not a time,",
        ]
    )
    + "\n"
)


def _every_stored_value(ws: Workspace) -> str:
    """All rows of all Parquet files and all catalog tables, as one JSON text."""
    con = duckdb.connect()
    chunks: list[str] = []
    for f in sorted(ws.home.rglob("*.parquet")):
        rows = con.execute(f"SELECT to_json(t) FROM read_parquet('{f}') t").fetchall()
        chunks.extend(r[0] for r in rows)
    con.close()
    with Warehouse(ws, read_only=True) as wh:
        for table in ("versions", "files", "sources", "parents", "loads"):
            rows = wh.con.execute(f"SELECT to_json(t) FROM meta.{table} t").fetchall()
            chunks.extend(r[0] for r in rows)
    return "\n".join(chunks)


def test_no_raw_user_id_in_any_table(tmp_path: Path, workspace: Workspace) -> None:
    src = tmp_path / "events.csv"
    src.write_text(EVENTS, encoding="utf-8")
    (result,) = ingest(workspace, IngestRequest(src, kind="events"))
    assert result["reasons"]["malformed_row"] == 1
    assert result["reasons"]["invalid_event_type"] == 1
    assert result["reasons"]["unparseable_ts"] == 1
    stored = _every_stored_value(workspace)
    assert "quarantine" in {p.parent.parent.parent.name for p in workspace.home.rglob("*.parquet")}
    for raw in RAW_IDS:
        assert raw not in stored, f"raw id {raw!r} is stored"
    assert "7946" not in stored  # the phone number in the query was masked
    pseudo = workspace.keys.load()
    with Warehouse(workspace, read_only=True) as wh:
        _, rows = wh.query("SELECT DISTINCT user_id FROM events ORDER BY 1")
        assert sorted(r[0] for r in rows) == sorted(
            {pseudo.pseudonymize(RAW_IDS[0]), pseudo.pseudonymize(RAW_IDS[1])}
        )
        _, q = wh.query("SELECT raw FROM quarantine WHERE reason = 'invalid_event_type'")
        assert json.loads(q[0][0])["user_id"] == pseudo.pseudonymize(RAW_IDS[2])
        _, m = wh.query("SELECT raw FROM quarantine WHERE reason = 'malformed_row'")
        assert m[0][0].startswith(pseudo.pseudonymize(RAW_IDS[0]) + ",i1,view")


def test_key_file_is_private(workspace: Workspace) -> None:
    workspace.create()
    workspace.keys.load()
    assert workspace.keys.path.stat().st_mode & 0o777 == 0o600


def test_rotation_rekeys_latest_versions_consistently(tmp_path: Path, workspace: Workspace) -> None:
    src = tmp_path / "events.csv"
    src.write_text(EVENTS, encoding="utf-8")
    ingest(workspace, IngestRequest(src, kind="events"))
    old = workspace.keys.load().pseudonymize(RAW_IDS[0])
    out = rotate_pseudonym_key(workspace)
    assert [r["asset"] for r in out] == ["events"]
    new = workspace.keys.load()
    assert len(new.keys) == 2
    assert new.pseudonymize(RAW_IDS[0]) != old
    later = tmp_path / "events_later.csv"
    later.write_text(
        f"user_id,item_id,event_type,ts\n{RAW_IDS[0]},i9,view,2024-03-01\n", encoding="utf-8"
    )
    ingest(workspace, IngestRequest(later, kind="events"))
    with Warehouse(workspace, read_only=True) as wh:
        _, rows = wh.query(
            "SELECT count(*) FROM events WHERE user_id = ?".replace(
                "?", f"'{new.pseudonymize(RAW_IDS[0])}'"
            )
        )
        assert rows == [(2,)]  # the re-keyed old event and the new one share the pseudonym
        _, old_rows = wh.query(f"SELECT count(*) FROM events_v1 WHERE user_id = '{old}'")
        assert old_rows == [(1,)]
    assert not workspace.keys.pending_path.exists()
