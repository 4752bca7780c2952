"""A small workspace end to end: index as an asset, dense and hybrid search, evaluation,
and the command line."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from shopkeeper.features import FeaturesConfig, ItemEncoder, build_features
from shopkeeper.search import (
    SEARCH_INDEX_ASSET,
    FusionConfig,
    Searcher,
    SearchEvalConfig,
    build_search_index,
    evaluate_search,
    load_search_index,
)
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest, lineage_graph
from tests.cli.test_cli import run
from tests.search.catalog import ITEMS, write_catalogue

# Every query lands in validation or test with these fractions and seed 0 on 8 queries.
EVAL = SearchEvalConfig(validation_fraction=0.45, test_fraction=0.5, fusion_weights=[0.0, 0.5, 1.0])


@pytest.fixture
def encoder(tiny_model_dir: Path) -> ItemEncoder:
    return ItemEncoder(model_path=tiny_model_dir, precision="fp32", batch_size=16)


def test_index_is_a_versioned_asset_with_lineage(
    search_workspace: Workspace, tmp_path: Path
) -> None:
    first = build_search_index(search_workspace)
    assert (first["status"], first["version"], first["items"]) == ("written", 1, len(ITEMS))
    assert build_search_index(search_workspace)["status"] == "unchanged"
    with Warehouse(search_workspace, read_only=True) as wh:
        graph = lineage_graph(wh, SEARCH_INDEX_ASSET)
        n = wh.con.execute(f"SELECT count(*) FROM {SEARCH_INDEX_ASSET}").fetchone()
    assert "asset:items@v1" in set(graph["nodes"])
    assert n == (len(ITEMS),)
    # A new items version makes the index stale: the next build indexes it.
    extra = tmp_path / "more.csv"
    extra.write_text("item_id,title\nX1,Shower Curtain Rod\n", encoding="utf-8")
    ingest(search_workspace, IngestRequest(extra, "generic", "items"))
    second = build_search_index(search_workspace)
    assert (second["status"], second["version"], second["items_version"]) == ("written", 2, 2)
    index = load_search_index(search_workspace)
    assert index.version == 2
    assert "X1" in index.item_ids


def test_dense_and_hybrid_search_and_evaluation(
    search_workspace: Workspace, encoder: ItemEncoder
) -> None:
    with pytest.raises(Exception, match="features build"):
        Searcher.open(search_workspace, "dense", encoder=encoder)
    assert Searcher.open(search_workspace).name == "bm25"  # auto without vectors
    build_features(search_workspace, FeaturesConfig(encoder=encoder.cfg), encoder)
    for model in ("bm25", "dense", "hybrid"):
        s = Searcher.open(search_workspace, model, encoder=encoder)
        hits = s.search(["toilet seat", "cordless drill"], k=5)
        assert len(hits) == 2
        assert all(len(h) <= 5 for h in hits)
        scores = [x["score"] for x in hits[0]]
        assert scores == sorted(scores, reverse=True)
        reranked = s.rerank(["toilet seat"], [["T3", "T1", "NOPE"]])
        assert {x["item_id"] for x in reranked[0]} == {"T1", "T3"}
    # All weight on BM25: hybrid keeps BM25's winner; all on dense: the dense winner.
    for weight, model in ((1.0, "bm25"), (0.0, "dense")):
        fusion = FusionConfig(method="linear", weight=weight)
        hybrid = Searcher.open(search_workspace, "hybrid", fusion, encoder=encoder)
        alone = Searcher.open(search_workspace, model, encoder=encoder)  # type: ignore[arg-type]
        for q in ("cordless drill", "paint roller"):
            assert (
                hybrid.search([q], k=1)[0][0]["item_id"] == alone.search([q], k=1)[0][0]["item_id"]
            )

    report = evaluate_search(
        search_workspace, ["random", "bm25", "dense", "hybrid"], EVAL, encoder, per_query=True
    )
    by = {m["model"]: m for m in report["models"]}
    assert {"random", "bm25", "dense"} <= set(by)
    assert report["data"]["evaluated_queries"] >= 3
    bm25 = by["bm25"]
    # BM25 finds the right items of these easy queries at the top of the catalogue.
    assert bm25["full"]["nDCG@10"] > 0.8
    assert bm25["full"]["nDCG@10"] > by["random"]["full"]["nDCG@10"]
    assert 0 <= bm25["rerank"]["nDCG@10"] <= 1
    assert report["fusion"]["chosen"]["method"] in ("rrf", "linear")
    assert len(report["fusion"]["grid"]) == 6
    assert report["rmse"]["constant_train_mean"] > 0
    rows = report["per_query"]
    assert len(rows) == 4 * report["data"]["evaluated_queries"]
    assert {"query_id", "query", "model", "full_nDCG@10", "rerank_nDCG@10"} <= set(rows[0])


def test_cli_search_and_evaluate(tmp_path: Path, tiny_model_dir: Path) -> None:
    home = tmp_path / "ws"
    for kind, path in write_catalogue(tmp_path / "data").items():
        assert run(home, "ingest", str(path), "--kind", kind).returncode == 0
    out = run(home, "search", "toliet seat", "--k", "2", "--json")
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)
    assert {h["item_id"] for h in hits} == {"T1", "T2"}
    assert all(set(h) == {"item_id", "score"} for h in hits)
    human = run(home, "search", "cordless drill", "--k", "1")
    assert "20V Cordless Drill Driver Kit" in human.stdout

    queries = tmp_path / "q.tsv"
    queries.write_text("query_id\tquery\na\tgarden hose\nb\tpaint roler\n", encoding="utf-8")
    batch = json.loads(run(home, "search", "--queries", str(queries), "--k", "1").stdout)
    assert batch == {"a": [batch["a"][0]], "b": [batch["b"][0]]}
    assert (batch["a"][0]["item_id"], batch["b"][0]["item_id"]) == ("G1", "P2")
    cands = tmp_path / "c.tsv"
    cands.write_text("a\tL1\na\tG2\nb\tP1\n", encoding="utf-8")
    out = run(home, "search", "--queries", str(queries), "--candidates", str(cands))
    reranked = json.loads(out.stdout)
    assert [h["item_id"] for h in reranked["a"]] == ["G2", "L1"]
    assert [h["item_id"] for h in reranked["b"]] == ["P1"]

    assert run(home, "search").returncode == 2  # neither QUERY nor --queries
    assert run(home, "search", "x", "--model", "dense").returncode == 2  # no vectors yet
    assert run(home, "features", "build", "--model", str(tiny_model_dir)).returncode == 0
    per_query = tmp_path / "per-query.csv"
    out = run(home, "evaluate", "search", "--per-query", str(per_query), "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert [m["model"] for m in report["models"]][:3] == ["random", "bm25", "dense"]
    with per_query.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4 * report["data"]["evaluated_queries"]
    human = run(home, "evaluate", "search", "--model", "bm25")
    assert human.returncode == 0, human.stderr
    assert "rerank nDCG@10" in human.stdout
