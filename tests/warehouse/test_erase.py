"""forget_user: one user leaves every version of every asset and the quarantine, audited."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from shopkeeper.clean import Pseudonymizer
from shopkeeper.features import ItemEncoder, build_features
from shopkeeper.warehouse import (
    IngestRequest,
    Warehouse,
    Workspace,
    _durable,
    _erase,
    forget_user,
    ingest,
    read_audit_log,
    rotate_pseudonym_key,
)
from tests.conftest import SAMPLES

USER = "13520"
"""In both sample months, with a quarantined postage line in December."""
DERIVED = ("user_vectors", "user_sequences", "session_vectors", "training_examples")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """Two months of Online Retail with a key rotation in between, and user features."""
    ws = Workspace.at(tmp_path_factory.mktemp("erase") / "ws")
    ingest(ws, IngestRequest(SAMPLES / "online-retail-2010-12.csv.gz", adapter="online-retail"))
    rotate_pseudonym_key(ws)  # December's first versions keep the one-key pseudonyms
    ingest(ws, IngestRequest(SAMPLES / "online-retail-2011-01.csv.gz", adapter="online-retail"))
    encoder = ItemEncoder(model_path=tiny_model_dir, precision="fp32", batch_size=64)
    build_features(ws, encoder=encoder)
    return ws.home


@pytest.fixture
def ws(built: Path, tmp_path: Path) -> Workspace:
    """A private copy of the built workspace."""
    return Workspace.at(shutil.copytree(built, tmp_path / "ws"))


def _pseudonyms(ws: Workspace) -> list[str]:
    chain = ws.keys.load(create=False).keys
    return [Pseudonymizer(chain[: i + 1]).pseudonymize(USER) for i in range(len(chain))]


def _parquet_files(ws: Workspace) -> list[Path]:
    return sorted(ws.home.rglob("*.parquet"))


def _user_rows_by_version(ws: Workspace, ids: list[str]) -> dict[str, tuple[int, int]]:
    """`<asset>_v<N>` view -> (rows, the user's rows), for every version with user ids."""
    out: dict[str, tuple[int, int]] = {}
    with Warehouse(ws, read_only=True) as wh:
        views = wh.con.execute(
            "SELECT DISTINCT asset || '_v' || version FROM meta.files f "
            "JOIN meta.versions v USING (asset, version) WHERE role = 'data' "
            "AND CAST(v.schema AS VARCHAR) LIKE '%\"user_id\"%'"
        ).fetchall()
        listed = ", ".join(f"'{p}'" for p in ids)
        for (view,) in views:
            _, rows = wh.query(
                f'SELECT count(*), count(*) FILTER (WHERE user_id IN ({listed})) FROM "{view}"'
            )
            out[view] = (int(rows[0][0]), int(rows[0][1]))
    return out


def _quarantine_hits(ws: Workspace, ids: list[str]) -> dict[str, int]:
    """The user's quarantined rows, by asset."""
    cond = " OR ".join(f"contains(raw, '{p}')" for p in ids)
    with Warehouse(ws, read_only=True) as wh:
        _, rows = wh.query(f"SELECT asset, count(*) FROM quarantine WHERE {cond} GROUP BY 1")
    return {f"quarantine:{a}": int(n) for a, n in rows}


def _catalog_matches_files(ws: Workspace) -> None:
    with Warehouse(ws, read_only=True) as wh:
        for path, rows in wh.con.execute(
            "SELECT path, rows FROM meta.files WHERE path LIKE '%.parquet'"
        ).fetchall():
            assert rows == pq.read_metadata(ws.absolute(path)).num_rows, path
        for asset, version, count, n, stored in wh.con.execute(
            "SELECT v.asset, v.version, v.row_count, sum(f.rows), v.quality->>'rows' "
            "FROM meta.versions v JOIN meta.files f USING (asset, version) "
            "WHERE f.role = 'data' AND v.asset IN ('events', 'users', 'user_vectors', "
            "'user_sequences', 'session_vectors', 'training_examples') GROUP BY ALL"
        ).fetchall():
            assert count == n, (asset, version)
            assert stored is None or int(stored) == count, (asset, version)


def _stored_text(ws: Workspace) -> str:
    con = duckdb.connect()
    chunks = [
        r[0]
        for f in _parquet_files(ws)
        for r in con.execute(f"SELECT to_json(t) FROM read_parquet('{f}') t").fetchall()
    ]
    con.close()
    with Warehouse(ws, read_only=True) as wh:
        for table in ("versions", "files", "sources", "parents", "loads"):
            chunks += [
                r[0] for r in wh.con.execute(f"SELECT to_json(t) FROM meta.{table} t").fetchall()
            ]
    return "\n".join(chunks)


def test_forget_removes_the_user_everywhere(ws: Workspace) -> None:
    ids = _pseudonyms(ws)
    before = _user_rows_by_version(ws, ids)
    assert {v.rsplit("_v", 1)[0] for v, (_, mine) in before.items() if mine} >= {
        "events",
        "users",
        *DERIVED,
    }
    assert before["events_v1"][1] > 0  # found under the pre-rotation pseudonym
    quarantined = _quarantine_hits(ws, ids)
    assert quarantined

    out = forget_user(ws, USER, actor="dpo@example.com")

    assert out["user"] == ids[-1]
    assert out["files_rewritten"] > 0
    assert {k: n for k, n in out["rows_removed"].items() if ":" in k} == quarantined
    after = _user_rows_by_version(ws, ids)
    assert set(after) == set(before)
    for view, (rows, mine) in before.items():
        assert after[view] == (rows - mine, 0), view
    assert _quarantine_hits(ws, ids) == {}
    stored = _stored_text(ws)
    for p in ids:
        assert p not in stored
        for f in _parquet_files(ws):
            assert p.encode() not in f.read_bytes(), f
    _catalog_matches_files(ws)
    with Warehouse(ws, read_only=True) as wh:  # every view still reads its files
        for v in wh.latest_versions():
            if wh.files(v.asset, v.version):
                _, n = wh.query(f'SELECT count(*) FROM "{v.asset}"')
                assert n[0][0] == v.row_count, v.asset
        _, q = wh.query("SELECT count(*) FROM quarantine")
        assert q[0][0] > 0


def test_counts_are_per_asset_over_distinct_files(ws: Workspace) -> None:
    ids = _pseudonyms(ws)
    con = duckdb.connect()
    expected: dict[str, int] = {}
    with Warehouse(ws, read_only=True) as wh:
        files = wh.con.execute(
            "SELECT DISTINCT asset, path FROM meta.files WHERE role = 'data' "
            "AND path LIKE '%.parquet'"
        ).fetchall()
    for asset, path in files:
        f = ws.absolute(path)
        if "user_id" not in pq.read_schema(f).names:
            continue
        (n,) = con.execute(
            f"SELECT count(*) FROM read_parquet('{f}') WHERE user_id IN (SELECT unnest(?))",
            [ids],
        ).fetchone() or (0,)
        if n:
            expected[asset] = expected.get(asset, 0) + int(n)
    out = forget_user(ws, USER, actor="test")
    assert {k: n for k, n in out["rows_removed"].items() if ":" not in k} == expected


def test_audit_log_and_rerun_is_a_no_op(ws: Workspace) -> None:
    first = forget_user(ws, USER, actor="dpo@example.com")
    mtimes = {f: f.stat().st_mtime_ns for f in _parquet_files(ws)}
    again = forget_user(ws, USER, actor="dpo@example.com")
    assert again == {"user": first["user"], "rows_removed": {}, "files_rewritten": 0}
    assert {f: f.stat().st_mtime_ns for f in _parquet_files(ws)} == mtimes
    log = read_audit_log(ws)
    assert [r["status"] for r in log] == ["completed", "completed"]
    rec: dict[str, Any] = log[0]
    assert rec["action"] == "forget_user"
    assert rec["user"] == first["user"]
    assert rec["actor"] == "dpo@example.com"
    assert rec["rows_removed"] == first["rows_removed"]
    assert "ts" in rec
    path = ws.home / "audit" / "audit.jsonl"
    assert path.stat().st_mode & 0o777 == 0o600
    assert USER not in path.read_text(encoding="utf-8")


def test_an_interrupted_run_is_completed_by_the_next(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _pseudonyms(ws)
    real = _durable.replace_durably
    calls = {"n": 0}

    def crash_on_third(src: Path, dest: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # a kill mid-run: two files swapped, the rest untouched
        real(src, dest)

    monkeypatch.setattr(_erase, "replace_durably", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        forget_user(ws, USER, actor="test")
    monkeypatch.undo()
    assert read_audit_log(ws)[-1]["status"] == "failed"
    forget_user(ws, USER, actor="test")
    third = forget_user(ws, USER, actor="test")
    assert third["rows_removed"] == {}
    assert all(mine == 0 for _, mine in _user_rows_by_version(ws, ids).values())
    assert _quarantine_hits(ws, ids) == {}
    _catalog_matches_files(ws)
    assert not list((ws.tmp_dir).glob("forget-*/*"))


def test_unknown_user_changes_nothing(ws: Workspace) -> None:
    out = forget_user(ws, "no-such-customer", actor="test")
    assert (out["rows_removed"], out["files_rewritten"]) == ({}, 0)
    _catalog_matches_files(ws)
