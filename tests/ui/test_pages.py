"""Each dashboard page's data, and the pages as served (offline, fast, masked)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shopkeeper.rec import EvalConfig, run_evaluation
from shopkeeper.serve import create_app
from shopkeeper.serve.ui._assets import (
    ENCRYPTED,
    asset_detail,
    catalog_rows,
    lineage_view,
    mask_cell,
)
from shopkeeper.serve.ui._live import live_stats, quantile
from shopkeeper.serve.ui._models import _curves, models_overview
from shopkeeper.serve.ui._playground import active_users
from shopkeeper.serve.ui._svg import scatter_chart
from shopkeeper.serve.ui.routes import STATIC_DIR, TEMPLATES_DIR
from shopkeeper.warehouse import Warehouse, Workspace
from tests.serve.conftest import settings
from tests.ui.conftest import CUSTOMER, auth, login


def test_catalog_lists_every_asset_with_versions_rows_and_quality(home):
    rows = {r["asset"]: r for r in catalog_rows(Workspace.at(home))}
    with Warehouse(Workspace.at(home), read_only=True) as wh:
        assert set(rows) == {v.asset for v in wh.latest_versions()}
    assert {"events", "items", "users", "rec_model", "item_index", "rec_report"} <= set(rows)
    assert rows["items"]["rows"] == 2731
    assert rows["events"]["quality_status"] in {"ok", "warning", "critical"}
    assert rows["events"]["quarantined"] > 0
    assert rows["events"]["latest_data"].startswith("2010-12")
    assert "user_id" in rows["events"]["pii"]
    assert all(r["versions"] >= 1 for r in rows.values())


def test_asset_detail_masks_sealed_fields_and_counts_quarantine(home):
    ws = Workspace.at(home)
    users = asset_detail(ws, "users", admin=True, reason=None)
    col = users["columns"].index("attributes")
    assert users["sample"]
    assert all(r[col] in (ENCRYPTED, "") for r in users["sample"])
    assert not any("enc:v" in cell for r in users["sample"] for cell in r)
    schema = {c["name"]: c for c in users["schema"]}
    assert schema["user_id"]["pii"] == "pseudonymized"
    assert schema["attributes"]["sealed"]
    events = asset_detail(ws, "events", admin=False, reason=None)
    total = sum(c["rows"] for c in events["quarantine_counts"])
    assert total == events["latest"].quarantined_rows
    assert "missing_user_id" in events["reasons"]
    assert events["quarantine_rows"] == []  # not for readers
    assert events["charts"]
    admin = asset_detail(ws, "events", admin=True, reason="non_product_code")
    assert admin["quarantine_rows"]
    assert {r["reason"] for r in admin["quarantine_rows"]} == {"non_product_code"}
    assert all(r["source_file"] and r["source_line"] for r in admin["quarantine_rows"])


def test_mask_cell():
    assert mask_cell("enc:v1:k1:abc", sealed=False) == ENCRYPTED
    assert mask_cell("plain", sealed=True) == ENCRYPTED
    assert mask_cell(None, sealed=False) == ""
    assert mask_cell(list(range(384)), sealed=False) == "[384 values]"
    assert mask_cell("x" * 500, sealed=False).endswith("…")


def test_lineage_reaches_raw_files_and_downstream_models_and_indexes(home):
    view = lineage_view(Workspace.at(home), "items", None, {"rec_model": 1})
    nodes = view["nodes"]
    assert any(n.startswith("file:") and n.endswith(".csv.gz") for n in nodes)
    assets = {n["asset"] for n in nodes.values() if n["type"] == "asset"}
    assert {
        "items",
        "events",
        "item_embeddings",
        "item_index",
        "search_index",
        "rec_model",
    } <= assets
    assert ("asset:item_embeddings@v1", "asset:item_index@v1", "indexed_from") in view["edges"]
    svg = str(view["svg"])
    assert 'href="/ui/lineage/rec_model?version=1"' in svg
    assert 'href="/ui/assets/items"' in svg  # the root goes to its asset page
    assert "live" in svg
    up = lineage_view(Workspace.at(home), "rec_model", 1, {})
    assert any(n.endswith("online-retail-2010-12.csv.gz") for n in up["nodes"])


def test_models_overview_has_the_evaluation_and_the_live_version(home):
    data = models_overview(Workspace.at(home), live_version=1)
    (model,) = data["models"]
    assert model["model"] == "ease"
    assert model["live"]
    assert model["curves"] == []  # EASE has no epochs: nothing is drawn, nothing invented
    (ev,) = data["evaluations"]
    overall = ev["segments"]["all"]["models"]
    assert set(overall) == {"popularity", "ease"}
    assert overall["ease"]["NDCG@10"] > overall["popularity"]["NDCG@10"]
    assert ev["chart"] is not None
    assert {t["model"] for t in ev["timings"]} == {"popularity", "ease"}
    assert model["parameters"] is None  # EASE stores no parameter count
    assert data["compression"] is None  # no report measured compressed models


def test_models_page_says_how_to_measure_compression_when_no_report_has(client, keys):
    login(client, keys["reader"])
    page = client.get("/ui/models").text
    assert 'id="no-compression"' in page
    assert "shopkeeper evaluate rec --model sasrec --compress int8,prune50" in page
    assert 'id="compression"' not in page


TINY_SASREC = {"dim": 16, "heads": 2, "layers": 1, "max_len": 8, "max_epochs": 2}


def test_models_page_shows_the_measured_compression_trade_offs(home, keys):
    ws = Workspace.at(home)
    report = run_evaluation(
        ws,
        ["sasrec"],
        EvalConfig(max_users=100),
        model_configs={"sasrec": TINY_SASREC},
        compress=["int8", "prune50"],
    )
    measured = {v["variant"]: v for v in report["compression"]["variants"]}
    data = models_overview(ws, live_version=1)
    comp = data["compression"]
    assert comp["version"] == report["version"]
    assert (comp["ndcg_name"], comp["hit_name"]) == ("NDCG@10", "HR@10")
    rows = {r["variant"]: r for r in comp["rows"]}
    assert list(rows) == ["full", "int8", "prune50"]
    for name, r in rows.items():
        m = measured[name]
        assert r["ndcg"] == m["metrics"]["all"]["NDCG@10"]
        assert r["ndcg_change"] == m["change"]["NDCG@10"]
        assert r["ms_per_user"] == m["latency_ms"]["per_user"] > 0
        assert r["latency_change"] == m["latency_change"]["per_user"]
        assert r["users"] == 100
    assert rows["full"]["ndcg_change"] in (0.0, None)
    assert rows["prune50"]["nonzero_linear_weights"] < rows["full"]["nonzero_linear_weights"]
    assert rows["prune50"]["steps"] == "50% pruned"
    assert rows["int8"]["steps"] == "int8 dynamic"
    assert "<circle" in str(comp["chart"])  # accuracy against latency, one point per variant
    (ev,) = [e for e in data["evaluations"] if e["version"] == report["version"]]
    assert set(ev["segments"]["all"]["models"]) == {"sasrec"}  # variants not among baselines
    with TestClient(create_app(settings(home)), follow_redirects=False) as client:
        login(client, keys["reader"])
        page = client.get("/ui/models").text
    assert 'id="no-compression"' not in page
    table = page[page.index('<table id="compression"') :]
    table = table[: table.index("</table>")]
    assert table.count("<tr data-variant=") == 3
    for name in ("full", "int8", "prune50"):
        assert f'data-variant="{name}"' in table
    assert f"{rows['prune50']['ndcg']:.4f}" in table
    assert f"{rows['prune50']['ndcg_change'] * 100:+.1f}%" in table
    assert f"{rows['int8']['ms_per_user']:.3f}" in table


def test_stored_epoch_history_is_drawn_per_metric():
    info = {"history": [{"epoch": e, "loss": 1 / e, "val_ndcg": e / 10, "seconds": 1.0}
                        for e in (1, 2, 3)]}  # fmt: skip
    charts = _curves(info)
    assert len(charts) == 2
    assert "<polyline" in str(charts[0])
    assert _curves({}) == []


def test_scatter_chart_draws_named_points_inside_its_plot():
    svg = str(scatter_chart([("full", 0.37, 0.081), ("int8", 0.33, 0.081)], title="t",
                            x_label="ms", y_label="NDCG@10"))  # fmt: skip
    assert svg.count("<circle") == 4  # a point and a legend dot each
    assert "int8: ms 0.33, NDCG@10 0.081" in svg  # equal values: still a range to draw in
    xs = [float(x) for x in re.findall(r'<circle cx="([\d.]+)" cy="[\d.]+" r="5"', svg)]
    assert all(56 < x < 460 - 104 for x in xs)
    assert "No data" in str(scatter_chart([], title="t", x_label="x", y_label="y"))


def test_quantile_from_buckets():
    buckets = [(0.01, 50.0), (0.1, 90.0), (1.0, 100.0), (float("inf"), 100.0)]
    assert quantile(buckets, 0.5) == 0.01
    assert quantile(buckets, 0.9) == pytest.approx(0.1)
    p95 = quantile(buckets, 0.95)
    assert p95 is not None
    assert 0.1 < p95 < 1.0
    assert quantile([], 0.5) is None
    assert quantile([(float("inf"), 0.0)], 0.5) is None


def test_live_stats_count_api_requests_cache_and_latency(client, keys):
    for _ in range(3):
        assert (
            client.get("/search?q=lunch+bag&k=5", headers=auth(keys["reader"])).status_code == 200
        )
    client.get(f"/recommend/{CUSTOMER}", headers=auth(keys["reader"]))
    stats = live_stats(client.app.state.service)
    assert stats["requests"] == 4
    assert stats["cache"]["hit"] >= 2
    assert 0 < stats["cache"]["hit_rate"] < 1
    assert stats["latency_ms"]["p50"] is not None
    assert stats["latency_ms"]["p99"] >= stats["latency_ms"]["p50"]
    assert {r["route"] for r in stats["routes"]} >= {"/search", "/recommend/{user_id}"}
    feed = client.get("/ui/live.json", headers=auth(keys["reader"])).json()
    assert feed["requests"] == 4  # the feed's own polling is left out
    assert feed["model_version"] == 1


def test_playground_shows_items_prices_stages_and_why(client, keys):
    login(client, keys["reader"])
    page = client.get("/ui/playground", params={"q": "lunch bag", "k": 5}).text
    assert 'id="search-results"' in page
    assert page.count('class="hit"') == 5
    assert re.search(r"LUNCH BAG", page, re.IGNORECASE)
    assert "retrieval (" in page
    page = client.get("/ui/playground", params={"q": "lunch bag", "user_id": CUSTOMER}).text
    assert 'id="rec-results"' in page
    assert "similar to" in page or "popular overall" in page
    assert CUSTOMER not in page.replace(f'value="{CUSTOMER}"', "")  # only in the input echo
    service = client.app.state.service
    first = active_users(service.snapshot)[0]
    page = client.get("/ui/playground", params={"pseudonym": first["pseudonym"]}).text
    assert page.count('class="hit"') == 10
    assert "similar to" in page


def test_playground_reports_errors_on_the_page(client, keys):
    login(client, keys["reader"])
    resp = client.get("/ui/playground", params={"q": "   "})
    assert resp.status_code == 200
    assert 'id="search-results"' not in resp.text


PAGES = [
    "/ui/",
    "/ui/assets/events",
    "/ui/assets/users",
    "/ui/assets/item_index",
    "/ui/assets/rec_report",
    "/ui/lineage/items",
    "/ui/lineage/rec_model",
    "/ui/models",
    "/ui/playground?q=lunch+bag&user_id=17850",
    "/ui/live",
]


def test_every_page_renders_fast_offline_and_with_a_csp(client, keys):
    login(client, keys["admin"])
    for page in PAGES:
        assert client.get(page).status_code == 200  # warm caches
    for page in PAGES:
        start = time.perf_counter()
        resp = client.get(page)
        elapsed = time.perf_counter() - start
        assert resp.status_code == 200, page
        assert elapsed < 1.0, (page, elapsed)
        assert "default-src 'self'" in resp.headers["content-security-policy"]
        for url in re.findall(r'(?:src|href|action)="([^"]+)"', resp.text):
            assert url.startswith(("/", "#")), (page, url)
        assert "enc:v1" not in resp.text
        assert keys["admin"] not in resp.text


def test_unknown_asset_is_an_html_404(client, keys):
    login(client, keys["reader"])
    resp = client.get("/ui/assets/no_such_asset")
    assert resp.status_code == 404
    assert "no asset" in resp.text


def test_templates_and_static_files_load_nothing_from_outside():
    files = [*TEMPLATES_DIR.glob("*.html"), *STATIC_DIR.glob("*")]
    assert len(files) >= 10
    for path in files:
        text = Path(path).read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path
        assert "@import" not in text
        assert "<script>" not in text  # no inline script: the CSP allows none
