"""The bundled Online Retail sample end to end: ingest, evaluate, report asset, CLI.

Figures measured on `online-retail-2010-12.csv.gz` (884 users, 2,407 items, leave-one-out,
seen items excluded, seed 0, 851 users evaluated): HR@10 random 0.002, popularity 0.072,
ItemKNN 0.163, EASE 0.187. The assertions keep wide margins around those.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shopkeeper.errors import NotFoundError
from shopkeeper.features import FeaturesConfig, ItemEncoder, build_features
from shopkeeper.rec import REPORT_ASSET, EvalConfig, read_report, run_evaluation
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest, lineage_graph
from tests.cli.test_cli import run
from tests.conftest import SAMPLES


@pytest.fixture(scope="module")
def sample_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = Workspace.at(tmp_path_factory.mktemp("rec-e2e") / "ws")
    ingest(ws, IngestRequest(SAMPLES / "online-retail-2010-12.csv.gz", "online-retail"))
    return ws


@pytest.fixture(scope="module")
def loo_report(sample_ws: Workspace) -> dict[str, Any]:
    models = ["random", "popularity", "itemknn", "ease"]
    return run_evaluation(sample_ws, models, EvalConfig(split="leave_one_out"))


def hr10(report: dict[str, Any]) -> dict[str, float]:
    return {r["model"]: r["metrics"]["all"]["HR@10"] for r in report["models"]}


def test_leave_one_out_on_the_sample(loo_report: dict[str, Any]) -> None:
    d = loo_report["data"]
    assert d["event_types"] == ["purchase"]
    assert d["evaluated_users"] > 500
    assert d["evaluated_users"] <= d["users"]
    hr = hr10(loo_report)
    assert hr["random"] < 0.02
    assert hr["popularity"] > 5 * max(hr["random"], 0.005)
    assert hr["itemknn"] > 1.5 * hr["popularity"]
    assert hr["ease"] > 1.5 * hr["popularity"]
    for r in loo_report["models"]:
        for seg in r["metrics"].values():
            assert all(0.0 <= v <= 1.0 for k, v in seg.items() if "@" in k and "novelty" not in k)
    assert loo_report["best"]["NDCG@10"] in ("itemknn", "ease")


def test_report_is_an_asset_with_lineage(sample_ws: Workspace, loo_report: dict[str, Any]) -> None:
    stored = read_report(sample_ws, loo_report["version"])
    assert stored["models"] == json.loads(json.dumps(loo_report["models"]))
    with Warehouse(sample_ws, read_only=True) as wh:
        parents = wh.parents(REPORT_ASSET, loo_report["version"])
        assert ("events", loo_report["data"]["events_version"], "evaluated_on") in parents
        graph = lineage_graph(wh, REPORT_ASSET, loo_report["version"])
        assert any(n.startswith("file:") for n in graph["nodes"])  # back to the raw file
        rows = wh.con.execute(
            f"SELECT value FROM {REPORT_ASSET}_v{loo_report['version']} "
            "WHERE model = 'ease' AND segment = 'all' AND metric = 'HR@10'"
        ).fetchall()
        md = list(wh.files(REPORT_ASSET, loo_report["version"], "artifact"))
    assert rows[0][0] == pytest.approx(hr10(loo_report)["ease"])
    assert any(p.name == "report.md" and "| ease |" in p.read_text() for p in md)
    fingerprints = {r["model"]: r["fingerprint"] for r in loo_report["models"]}
    assert len(set(fingerprints.values())) == len(fingerprints)


def test_same_seed_same_figures(sample_ws: Workspace, loo_report: dict[str, Any]) -> None:
    again = run_evaluation(sample_ws, ["itemknn", "random"], EvalConfig(), save=False)
    before = {r["model"]: r for r in loo_report["models"]}
    for r in again["models"]:
        assert r["metrics"] == before[r["model"]]["metrics"]
        assert r["fingerprint"] == before[r["model"]]["fingerprint"]


def test_temporal_split_on_the_sample(sample_ws: Workspace) -> None:
    report = run_evaluation(
        sample_ws, ["random", "popularity"], EvalConfig(split="temporal"), save=False
    )
    assert report["data"]["cutoff"] is not None
    assert report["data"]["cold_users"] > 0  # users first seen after the cut-off
    rec = {r["model"]: r["metrics"]["all"]["Recall@10"] for r in report["models"]}
    assert rec["popularity"] > 3 * max(rec["random"], 0.005)


def test_content_model_reads_the_embeddings(sample_ws: Workspace, tiny_model_dir: Path) -> None:
    with pytest.raises(NotFoundError, match="features build"):
        run_evaluation(sample_ws, ["content"], save=False)
    skipped = run_evaluation(sample_ws, ["content"], skip_unavailable=True, save=False)
    assert "skipped" in skipped["models"][0]
    encoder = ItemEncoder(model_path=tiny_model_dir, precision="fp32", batch_size=64)
    build_features(sample_ws, FeaturesConfig(), encoder=encoder)
    report = run_evaluation(sample_ws, ["content"], EvalConfig(max_users=200))
    (content,) = report["models"]
    assert content["info"]["items_with_embedding"] == report["data"]["items"]
    assert 0.0 <= content["metrics"]["all"]["HR@10"] <= 1.0
    with Warehouse(sample_ws, read_only=True) as wh:
        parents = wh.parents(REPORT_ASSET, report["version"])
    assert any(p[0] == "item_embeddings" and p[2] == "item_text_from" for p in parents)


def test_cli_evaluate_rec(sample_ws: Workspace, tmp_path: Path) -> None:
    out = run(sample_ws.home, "evaluate", "rec", "--model", "popularity", "--k", "5", "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["protocol"]["ks"] == [5]
    assert report["models"][0]["model"] == "popularity"
    assert "HR@5" in report["models"][0]["metrics"]["all"]
    human = run(sample_ws.home, "evaluate", "rec", "--model", "popularity", "--no-save")
    assert human.returncode == 0, human.stderr
    assert "popularity" in human.stdout
    assert "cold users" in human.stdout
    bad = run(sample_ws.home, "evaluate", "rec", "--model", "nope")
    assert bad.returncode == 2
    cfg = tmp_path / "protocol.yaml"
    cfg.write_text("split: temporal\nks: [5]\n")
    out = run(sample_ws.home, "evaluate", "rec", "--model", "popularity", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "Recall@5" in out.stdout
    cfg.write_text("splitt: temporal\n")
    out = run(sample_ws.home, "evaluate", "rec", "--config", str(cfg))
    assert out.returncode == 2
    assert "splitt" in out.stderr
    empty = run(tmp_path / "nothing", "evaluate", "rec", "--model", "popularity")
    assert empty.returncode == 2
    assert "ingest" in empty.stderr


def test_figures_do_not_depend_on_the_workspace_key(
    loo_report: dict[str, Any], tmp_path: Path
) -> None:
    """Another workspace has another pseudonym key (other user ids): the same figures."""
    other = Workspace.at(tmp_path / "other")
    ingest(other, IngestRequest(SAMPLES / "online-retail-2010-12.csv.gz", "online-retail"))
    again = run_evaluation(other, ["popularity", "ease"], EvalConfig(), save=False)
    before = {r["model"]: r["metrics"] for r in loo_report["models"]}
    for r in again["models"]:
        for seg, metrics in r["metrics"].items():
            assert metrics == pytest.approx(before[r["model"]][seg])
