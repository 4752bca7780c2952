"""The HTTP contract: recommend, similar, search, assets, health, metrics, errors."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from shopkeeper.rec import load_rec_model
from shopkeeper.rec._data import Histories
from shopkeeper.serve import create_app
from shopkeeper.serve._snapshot import read_all_histories
from shopkeeper.warehouse import Workspace
from tests.serve.conftest import CUSTOMER, auth, settings


def test_recommend_contract_excludes_history(
    client: TestClient, keys: dict[str, str], home: Path
) -> None:
    r = client.get(f"/recommend/{CUSTOMER}", params={"k": 7}, headers=auth(keys["reader"]))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user_id"] == CUSTOMER
    assert body["fallback"] is None
    assert len(body["items"]) == 7
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    ws = Workspace.at(home)
    model = load_rec_model(ws)
    pseudo = ws.keys.load().pseudonymize(CUSTOMER)
    users, indptr, items, _ = read_all_histories(ws, model)
    row = int((users == pseudo.encode()).nonzero()[0][0])
    seen = {model.item_ids[i] for i in items[indptr[row] : indptr[row + 1]]}
    assert body["history_length"] == len(seen) > 0
    assert not seen & {i["item_id"] for i in body["items"]}
    # the same ranking as the stored model scores offline
    h = Histories.from_lists([items[indptr[row] : indptr[row + 1]].tolist()], len(model.item_ids))
    s = model.scorer.score(h)[0]
    s[items[indptr[row] : indptr[row + 1]]] = float("-inf")
    best = [model.item_ids[i] for i in s.argsort()[::-1][:7]]
    assert [i["item_id"] for i in body["items"]] == best


def test_recommend_unknown_user_gets_popularity(client: TestClient, keys: dict[str, str]) -> None:
    r = client.get("/recommend/never-seen-42", params={"k": 5}, headers=auth(keys["reader"]))
    assert r.status_code == 200
    body = r.json()
    assert body["fallback"] == "popularity"
    assert body["reason"] == "no history"
    assert len(body["items"]) == 5


def test_cache_answers_repeats(client: TestClient, keys: dict[str, str]) -> None:
    h = auth(keys["reader"])
    first = client.get(f"/recommend/{CUSTOMER}", headers=h).json()
    again = client.get(f"/recommend/{CUSTOMER}", headers=h).json()
    assert not first["cached"]
    assert again["cached"]
    assert again["items"] == first["items"]
    metrics = client.get("/metrics").text
    assert 'shopkeeper_cache_requests_total{result="hit",route="/recommend"} 1.0' in metrics


def test_similar_and_search(client: TestClient, keys: dict[str, str]) -> None:
    h = auth(keys["reader"])
    r = client.get("/similar/85123A", params={"k": 4}, headers=h)
    assert r.status_code == 200
    assert len(r.json()) == 4
    assert "85123A" not in {i["item_id"] for i in r.json()}
    assert client.get("/similar/NO-SUCH-ITEM", headers=h).status_code == 404
    r = client.get("/search", params={"q": "lunch bag", "k": 5}, headers=h)
    assert r.status_code == 200, r.text
    hits = r.json()["items"]
    assert len(hits) == 5
    titles = client.get("/assets/items", headers=auth(keys["admin"])).status_code
    assert titles == 200
    r = client.get("/search", params={"q": "luch bagg", "k": 5}, headers=h)  # typos
    assert r.json()["items"][0]["item_id"] in {i["item_id"] for i in hits}
    r = client.get("/search", params={"q": "bag", "min_price": 5, "max_price": 1}, headers=h)
    assert r.status_code == 422
    assert r.json()["type"] == "ConfigError"


def test_bad_input_gets_clear_422(client: TestClient, keys: dict[str, str]) -> None:
    h = auth(keys["reader"])
    r = client.get(f"/recommend/{CUSTOMER}", params={"k": 0}, headers=h)
    assert r.status_code == 422
    assert r.json()["type"] == "ValidationError"
    assert "k" in r.json()["message"]
    r = client.get(f"/recommend/{CUSTOMER}", params={"k": "ten"}, headers=h)
    assert r.status_code == 422
    r = client.get("/search", params={"q": "   "}, headers=h)
    assert r.status_code == 422
    assert r.json()["message"] == "empty query"


def test_assets_quality_lineage(client: TestClient, keys: dict[str, str]) -> None:
    h = auth(keys["admin"])
    assets = client.get("/assets", headers=h).json()
    names = {a["asset"] for a in assets}
    assert {"events", "items", "users", "rec_model", "item_index"} <= names
    events = client.get("/assets/events", headers=h).json()
    assert events["version"] == 1
    assert events["pii"]["user_id"] == "pseudonymized"
    quality = client.get("/assets/events/quality", headers=h).json()
    assert quality["status"] in {"ok", "warning", "critical"}
    assert "missing_user_id" in quality["reasons"]
    lineage = client.get("/assets/rec_model/lineage", headers=h).json()
    assert any(n.startswith("asset:events@") for n in lineage["nodes"])
    r = client.get("/assets/nope", headers=h)
    assert r.status_code == 404
    assert r.json()["type"] == "NotFoundError"


def test_snapshot_is_memory_mapped(client: TestClient, home: Path) -> None:
    import numpy as np

    snap = client.app.state.service.snapshot  # type: ignore[attr-defined]
    assert snap.histories is not None
    for arr in (snap.histories.users, snap.histories.indptr, snap.histories.items, snap.catalog):
        assert isinstance(arr, np.memmap)  # shared by workers through the page cache
    assert not arr.flags.writeable
    folders = [p for p in (home / "serving").iterdir() if not p.name.startswith(".")]
    assert [p.name for p in folders] == [snap.id]


def test_health_and_metrics(client: TestClient, keys: dict[str, str]) -> None:
    r = client.get("/health", params={"ready": True})
    assert r.status_code == 200
    body = r.json()
    assert body["recommend"]
    assert body["search"]
    assert body["similar"]
    client.get(f"/recommend/{CUSTOMER}", headers=auth(keys["reader"]))
    text = client.get("/metrics").text
    for name in (
        'shopkeeper_requests_total{method="GET",route="/recommend/{user_id}",status="200"}',
        'shopkeeper_request_seconds_bucket{le="0.03",route="/recommend/{user_id}"}',
        "shopkeeper_batch_size_count",
        "shopkeeper_model_version 1.0",
        "shopkeeper_data_latest_event_timestamp_seconds 1.29",  # December 2010
    ):
        assert name in text, name
    assert CUSTOMER not in text


def test_not_ready_without_models(tmp_path: Path) -> None:
    from shopkeeper.warehouse import IngestRequest, ingest
    from tests.conftest import SAMPLES

    ws = Workspace.at(tmp_path / "bare")
    ingest(ws, IngestRequest(SAMPLES / "online-retail-2010-12.csv.gz", adapter="online-retail"))
    with TestClient(create_app(settings(ws.home))) as c:
        assert c.get("/health").status_code == 200
        assert c.get("/health", params={"ready": True}).status_code == 503
