"""Training examples: point-in-time features (nothing from the future), negatives, lineage."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shopkeeper.features import ItemEncoder, build_features
from shopkeeper.features._datasets import TRAINING_ASSET, DatasetConfig, build_training_examples
from shopkeeper.features._structured import StructuredConfig, build_item_features
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest, new_build_id

T0 = datetime(2024, 6, 1, tzinfo=UTC)
TYPES = ["view", "view", "click", "add_to_cart", "purchase"]


def _events(rng: np.random.Generator, n: int) -> list[tuple[str, str, str, datetime]]:
    out = []
    for _ in range(n):
        minute = int(rng.integers(0, 2000)) // 3 * 3  # shared timestamps on purpose
        out.append(
            (
                f"u{int(rng.integers(0, 12))}",
                f"SKU{int(rng.integers(0, 30)):05d}",
                TYPES[int(rng.integers(0, len(TYPES)))],
                T0 + timedelta(minutes=minute),
            )
        )
    return out


def _write(path: Path, rows: list[tuple[str, str, str, datetime]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "item_id", "event_type", "ts"])
        w.writerows((u, i, t, ts.isoformat()) for u, i, t, ts in rows)
    return path


def _ingest_events(ws: Workspace, path: Path) -> None:
    ingest(ws, IngestRequest(path, "generic", "events"))


def _examples(ws: Workspace) -> list[dict[str, Any]]:
    with Warehouse(ws, read_only=True) as wh:
        cols, rows = wh.query(f"SELECT * FROM {TRAINING_ASSET}")
    return [dict(zip(cols, r, strict=True)) for r in rows]


def _build(ws: Workspace, cfg: DatasetConfig) -> dict[str, Any]:
    with ws.write_lock():
        build_item_features(ws, StructuredConfig(), new_build_id())
        return build_training_examples(ws, cfg, new_build_id())


@pytest.fixture
def events_rows(rng: np.random.Generator) -> list[tuple[str, str, str, datetime]]:
    return _events(rng, 400)


def test_features_count_only_earlier_events(
    items_workspace: Workspace, events_rows: list[tuple[str, str, str, datetime]], tmp_path: Path
) -> None:
    """Every behaviour feature equals a brute-force count over events strictly before ts."""
    ingest(
        items_workspace, IngestRequest(_write(tmp_path / "e.csv", events_rows), "generic", "events")
    )
    out = _build(items_workspace, DatasetConfig(negatives=3, history=5))
    rows = _examples(items_workspace)
    with Warehouse(items_workspace, read_only=True) as wh:
        _, ev = wh.query("SELECT user_id, item_id, event_type, ts FROM events")
    assert out["positives"] == sum(1 for e in ev if e[2] in ("purchase", "add_to_cart", "click"))
    assert len(rows) == out["rows"]
    for r in rows[::7]:
        before = [e for e in ev if e[3] < r["ts"]]
        assert r["item_events_before"] == sum(1 for e in before if e[1] == r["item_id"])
        assert r["item_purchases_before"] == sum(
            1 for e in before if e[1] == r["item_id"] and e[2] == "purchase"
        )
        mine = sorted((e[3], e[1]) for e in before if e[0] == r["user_id"])
        assert r["user_events_before"] == len(mine)
        assert r["user_item_events_before"] == sum(1 for _, i in mine if i == r["item_id"])
        assert r["history"] == [i for _, i in mine][-5:]
        if mine:
            assert r["secs_since_user_event"] == (r["ts"] - mine[-1][0]).total_seconds()
    negatives = [r for r in rows if r["label"] == 0]
    assert negatives
    assert all(r["event_type"] is None for r in negatives)
    assert len(negatives) <= 3 * out["positives"]


def test_adding_later_events_changes_no_earlier_example(
    items_workspace: Workspace,
    events_rows: list[tuple[str, str, str, datetime]],
    tmp_path: Path,
) -> None:
    """The leakage test: examples built from a prefix equal those of the full data."""
    events_rows.sort(key=lambda e: e[3])
    cut = events_rows[len(events_rows) // 2][3]
    prefix = [e for e in events_rows if e[3] <= cut]
    ingest(items_workspace, IngestRequest(_write(tmp_path / "a.csv", prefix), "generic", "events"))
    _build(items_workspace, DatasetConfig(negatives=2))
    early = _examples(items_workspace)
    rest = [e for e in events_rows if e[3] > cut]
    ingest(items_workspace, IngestRequest(_write(tmp_path / "b.csv", rest), "generic", "events"))
    _build(items_workspace, DatasetConfig(negatives=2))
    full = _examples(items_workspace)
    key = lambda r: (r["ts"], r["user_id"], r["item_id"], r["label"], r["event_type"])  # noqa: E731
    later = sorted((r for r in full if r["ts"] <= cut), key=key)
    assert later == sorted(early, key=key)
    assert len(full) > len(early)


def test_rebuild_unchanged_and_lineage_reaches_the_encoder(
    items_workspace: Workspace,
    events_rows: list[tuple[str, str, str, datetime]],
    tmp_path: Path,
    tiny_encoder: ItemEncoder,
) -> None:
    ingest(
        items_workspace, IngestRequest(_write(tmp_path / "e.csv", events_rows), "generic", "events")
    )
    build_features(items_workspace, encoder=tiny_encoder)
    first = _build(items_workspace, DatasetConfig())
    again = _build(items_workspace, DatasetConfig())
    assert again == {"asset": TRAINING_ASSET, "version": first["version"], "status": "unchanged"}
    with Warehouse(items_workspace, read_only=True) as wh:
        parents = {p[0] for p in wh.parents(TRAINING_ASSET, first["version"])}
        version = wh.version(TRAINING_ASSET, first["version"])
    assert parents == {"events", "items", "item_features", "item_embeddings"}
    assert version.params["model_id"] == tiny_encoder.model_id
