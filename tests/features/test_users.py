"""User vectors, sequences and session vectors against direct computations."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from shopkeeper.features import ItemEncoder, build_features, read_embeddings
from shopkeeper.features._users import (
    SESSION_VECTORS_ASSET,
    USER_SEQUENCES_ASSET,
    USER_VECTORS_ASSET,
    UserConfig,
    build_user_features,
)
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest, new_build_id

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
EVENTS = [
    # user, item, type, minutes after T0, session
    ("alice", "SKU00001", "view", 0, ""),
    ("alice", "SKU00002", "purchase", 10, ""),
    ("alice", "SKU00003", "click", 24 * 60 * 30, ""),  # 30 days later: a new session
    ("bob", "SKU00004", "view", 5, "S9"),
    ("bob", "SKU00005", "view", 24 * 60, "S9"),  # a day apart, but one source session
    ("bob", "SKU00004", "return", 24 * 60 + 1, "S9"),
    ("carol", "SKU00006", "view", 24 * 60 * 30, ""),  # the last event: as_of
]


def _write_events(path: Path) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "item_id", "event_type", "ts", "session_id"])
        for u, i, t, m, s in EVENTS:
            w.writerow([u, i, t, (T0 + timedelta(minutes=m)).isoformat(), s])
    return path


@pytest.fixture
def users_ws(items_workspace: Workspace, tiny_encoder: ItemEncoder, tmp_path: Path) -> Workspace:
    ingest(items_workspace, IngestRequest(_write_events(tmp_path / "ev.csv"), "generic", "events"))
    build_features(items_workspace, encoder=tiny_encoder)
    return items_workspace


def _rows(ws: Workspace, asset: str) -> dict[str, dict[str, object]]:
    with Warehouse(ws, read_only=True) as wh:
        cols, rows = wh.query(f"SELECT * FROM {asset}")
    return {str(r[0]): dict(zip(cols, r, strict=True)) for r in rows}


def test_user_vector_is_the_decayed_weighted_sum(users_ws: Workspace) -> None:
    cfg = UserConfig(half_life_days=10)
    with users_ws.write_lock():
        out = build_user_features(users_ws, cfg, new_build_id())
    assert out["status"] == "written"
    with Warehouse(users_ws, read_only=True) as wh:
        ids, vectors = read_embeddings(wh, 1)
    vec = dict(zip(ids, vectors, strict=True))
    pseudo = users_ws.keys.load()
    users = _rows(users_ws, USER_VECTORS_ASSET)
    assert "alice" not in users  # stored pseudonymized
    alice = users[pseudo.pseudonymize("alice")]
    age = [30.0, 30.0 - 10 / 1440, 0.0]  # days before the data's last event
    w = [0.5, 4.0, 1.0]
    expected = sum(
        wi * math.exp(-math.log(2) * a / 10) * vec[i]
        for wi, a, i in zip(w, age, ("SKU00001", "SKU00002", "SKU00003"), strict=True)
    )
    expected = expected / np.linalg.norm(expected)
    assert np.allclose(np.array(alice["vector"]), expected, atol=1e-5)
    assert alice["events"] == 3
    bob = users[pseudo.pseudonymize("bob")]
    # The return weighs nothing: bob is his two views, equally old to within a day.
    assert float(np.linalg.norm(np.array(bob["vector"]))) == pytest.approx(1.0, abs=1e-5)


def test_sequences_are_chronological_and_truncated(users_ws: Workspace) -> None:
    with users_ws.write_lock():
        build_user_features(users_ws, UserConfig(max_sequence=2), new_build_id())
    pseudo = users_ws.keys.load()
    seqs = _rows(users_ws, USER_SEQUENCES_ASSET)
    alice = seqs[pseudo.pseudonymize("alice")]
    assert alice["items"] == ["SKU00002", "SKU00003"]  # the last two, oldest first
    assert alice["event_types"] == ["purchase", "click"]
    assert alice["length"] == 2
    bob = seqs[pseudo.pseudonymize("bob")]
    assert bob["items"] == ["SKU00005", "SKU00004"]


def test_sessions_from_source_ids_or_gaps(users_ws: Workspace) -> None:
    with users_ws.write_lock():
        build_user_features(users_ws, UserConfig(), new_build_id())
    sessions = _rows(users_ws, SESSION_VECTORS_ASSET)
    pseudo = users_ws.keys.load()
    alice = pseudo.pseudonymize("alice")
    alice_sessions = sorted(
        (s["events"], s["start_ts"]) for s in sessions.values() if s["user_id"] == alice
    )
    assert [n for n, _ in alice_sessions] == [1, 2]  # split by 30 days of silence
    assert sessions["S9"]["events"] == 3  # the source's session id holds across a day
    assert len(sessions) == 4


def test_rebuild_is_unchanged_and_lineage_reaches_the_encoder(users_ws: Workspace) -> None:
    """`features build` (the fixture) made them; building again changes nothing."""
    with Warehouse(users_ws, read_only=True) as wh:
        built = wh.latest(USER_VECTORS_ASSET)
    assert built is not None
    with users_ws.write_lock():
        again = build_user_features(users_ws, UserConfig(), new_build_id())
    assert again == {"asset": USER_VECTORS_ASSET, "version": built.version, "status": "unchanged"}
    with Warehouse(users_ws, read_only=True) as wh:
        v = wh.latest(USER_VECTORS_ASSET)
        assert v is not None
        assert v.params["model_id"]
        assert {p[0] for p in wh.parents(USER_VECTORS_ASSET, v.version)} == {
            "events",
            "item_embeddings",
        }
        for asset in (USER_SEQUENCES_ASSET, SESSION_VECTORS_ASSET):
            assert wh.latest(asset) is not None
