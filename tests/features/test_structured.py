"""Structured item features: category levels, vocabularies with an unknown bucket, price,
popularity and recency, checked against direct computations on the same data."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shopkeeper.features._structured import (
    ITEM_FEATURES_ASSET,
    StructuredConfig,
    build_item_features,
)
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest, new_build_id
from tests.conftest import SAMPLES
from tests.features.catalog import ingest_items, item_rows, write_items

AS_OF = datetime(2024, 3, 31, 12, 0, tzinfo=UTC)


def _write_events(path: Path) -> Path:
    """SKU00000: 3 events (one purchase, 2 users, last 1 day before AS_OF);
    SKU00001: 1 view 40 days before AS_OF; the rest: none."""
    rows = [
        ("u1", "SKU00000", "view", AS_OF - timedelta(days=10)),
        ("u1", "SKU00000", "purchase", AS_OF - timedelta(days=5)),
        ("u2", "SKU00000", "view", AS_OF - timedelta(days=1)),
        ("u3", "SKU00001", "view", AS_OF - timedelta(days=40)),
        ("u3", "SKU00002", "view", AS_OF),  # fixes as_of: the last event of the data
    ]
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "item_id", "event_type", "ts"])
        w.writerows((u, i, t, ts.isoformat()) for u, i, t, ts in rows)
    return path


@pytest.fixture
def features_ws(workspace: Workspace, tmp_path: Path) -> Workspace:
    rows = item_rows(40)
    rows[0]["category"] = "Home > Kitchen > Mugs > Tea"
    rows[1]["category"] = ""
    rows[2]["brand"] = "OnlyOnce"  # a brand on one item only: the unknown bucket
    ingest_items(workspace, write_items(tmp_path / "items.csv", rows))
    ingest(workspace, IngestRequest(_write_events(tmp_path / "ev.csv"), "generic", "events"))
    return workspace


def _features(ws: Workspace) -> dict[str, dict[str, object]]:
    with Warehouse(ws, read_only=True) as wh:
        cols, rows = wh.query(f"SELECT * FROM {ITEM_FEATURES_ASSET}")
    return {r[0]: dict(zip(cols, r, strict=True)) for r in rows}


def test_item_features_match_direct_computation(features_ws: Workspace) -> None:
    with features_ws.write_lock():
        out = build_item_features(features_ws, StructuredConfig(), new_build_id())
    assert out["status"] == "written"
    assert out["items"] == 40
    f = _features(features_ws)
    a, b, c = f["SKU00000"], f["SKU00001"], f["SKU00002"]
    assert (a["cat_l1"], a["cat_l2"], a["cat_l3"]) == (
        "Home",
        "Home > Kitchen",
        "Home > Kitchen > Mugs",
    )
    assert a["category_depth"] == 4
    assert (b["cat_l1"], b["category_depth"], b["cat_l1_code"]) == (None, 0, 0)
    assert (a["events"], a["purchases"], a["users"], a["recent_events"]) == (3, 1, 2, 3)
    assert (b["events"], b["recent_events"]) == (1, 0)
    assert a["recency_days"] == pytest.approx(1.0)
    assert a["age_days"] == pytest.approx(10.0)
    assert b["recency_days"] == pytest.approx(40.0)
    assert f["SKU00010"]["events"] == 0
    assert f["SKU00010"]["recency_days"] is None
    assert c["brand"] == "OnlyOnce"
    assert c["brand_code"] == 0
    assert all(0.0 <= r["price_pct"] <= 1.0 for r in f.values())  # type: ignore[operator]
    assert a["popularity_pct"] == 1.0


def test_vocabularies_are_stored_and_codes_follow_them(features_ws: Workspace) -> None:
    with features_ws.write_lock():
        build_item_features(features_ws, StructuredConfig(), new_build_id())
    with Warehouse(features_ws, read_only=True) as wh:
        v = wh.latest(ITEM_FEATURES_ASSET)
        assert v is not None
        vocab_file = wh.files(ITEM_FEATURES_ASSET, v.version, role="artifact")[0]
        parents = {p[0] for p in wh.parents(ITEM_FEATURES_ASSET, v.version)}
    vocab = json.loads(vocab_file.read_text())
    assert "OnlyOnce" not in vocab["brand"]
    for item in _features(features_ws).values():
        for col in ("brand", "cat_l1", "cat_l2"):
            value, code = item[col], item[f"{col}_code"]
            if value in vocab[col]:
                assert code == vocab[col].index(value) + 1
            else:
                assert code == 0
    assert parents == {"items", "events"}


def test_rebuild_on_same_data_is_unchanged_and_new_events_make_a_version(
    features_ws: Workspace, tmp_path: Path
) -> None:
    with features_ws.write_lock():
        first = build_item_features(features_ws, StructuredConfig(), new_build_id())
        again = build_item_features(features_ws, StructuredConfig(), new_build_id())
    assert again == {**first, "status": "unchanged"}
    more = tmp_path / "more.csv"
    more.write_text(f"user_id,item_id,event_type,ts\nu9,SKU00003,purchase,{AS_OF.isoformat()}\n")
    ingest(features_ws, IngestRequest(more, "generic", "events"))
    with features_ws.write_lock():
        third = build_item_features(features_ws, StructuredConfig(), new_build_id())
    assert (third["status"], third["version"]) == ("written", first["version"] + 1)
    assert _features(features_ws)["SKU00003"]["purchases"] == 1


def test_online_retail_sample(workspace: Workspace) -> None:
    """Real data without brands or categories: every categorical code is the unknown bucket."""
    ingest(workspace, IngestRequest(SAMPLES / "online-retail-2010-12.csv.gz", "online-retail"))
    with workspace.write_lock():
        out = build_item_features(workspace, StructuredConfig(), new_build_id())
    f = _features(workspace)
    assert out["items"] == len(f) > 1000
    assert {r["brand_code"] for r in f.values()} == {0}
    with Warehouse(workspace, read_only=True) as wh:
        _, rows = wh.query(
            "SELECT item_id, count(*) FROM events WHERE event_type = 'purchase' GROUP BY 1"
        )
    purchases = dict(rows)
    assert all(f[i]["purchases"] == n for i, n in purchases.items())
