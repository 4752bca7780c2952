"""`shopkeeper search` with filters, facets and a user: JSON shapes and exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_cli import run
from tests.search.test_filters import SHOP, write_shop
from tests.search.test_personalize import _events

PRICE = {r[0]: float(r[4]) if r[4] else None for r in SHOP}
BRAND = {r[0]: r[2].lower() for r in SHOP}
CATEGORY = {r[0]: r[3] for r in SHOP}


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    root = tmp_path_factory.mktemp("search-filters")
    home = root / "ws"
    for kind, path in (
        ("items", write_shop(root / "data")),
        ("events", _events(root / "events.csv")),
    ):
        out = run(home, "ingest", str(path), "--kind", kind, "--json")
        assert out.returncode == 0, out.stderr
    out = run(home, "features", "build", "--model", str(tiny_model_dir), "--json")
    assert out.returncode == 0, out.stderr
    return home


def _json(home: Path, *args: str) -> Any:
    out = run(home, "search", *args, "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_filters_keep_the_contract_shape(home: Path) -> None:
    hits = _json(home, "drill", "--k", "3", "--brand", "DEWALT")
    assert isinstance(hits, list)
    assert all(set(h) == {"item_id", "score"} for h in hits)
    assert len(hits) == 3  # all DeWalt items, though a saw says nothing of drills
    assert {BRAND[h["item_id"]] for h in hits} == {"dewalt"}
    tools = _json(home, "drill", "--k", "20", "--category", "tools > power tools")
    assert {h["item_id"] for h in tools} == {"D1", "D2", "D4", "D5", "S1"}
    ranged = _json(home, "drill", "--k", "20", "--min-price", "59", "--max-price", "99")
    assert {h["item_id"] for h in ranged} == {"D1", "D4"}  # both bounds inclusive


def test_facets_and_batches(home: Path, tmp_path: Path) -> None:
    page = _json(home, "drill", "--k", "2", "--facets", "--category", "Tools")
    assert isinstance(page, dict)
    assert set(page) == {"results", "facets"}
    assert len(page["results"]) == 2
    facets = page["facets"]
    tools = [i for i, c in CATEGORY.items() if c.startswith("Tools")]
    assert facets["items"] == len(tools)  # hybrid: every tool is a candidate
    assert facets["category"] == [{"value": "Tools", "count": len(tools)}]
    assert sum(c["count"] for c in facets["subcategory"]["values"]) == len(tools)
    assert sum(b["count"] for b in facets["price"]) == len(tools)
    queries = tmp_path / "q.tsv"
    queries.write_text("query_id\tquery\na\tpaint\nb\tsaw\n", encoding="utf-8")
    batch = _json(home, "--queries", str(queries), "--k", "5", "--max-price", "30")
    assert isinstance(batch, dict)
    assert set(batch) == {"a", "b"}
    for hits in batch.values():
        assert hits
        assert all((PRICE[h["item_id"]] or 1e9) <= 30 for h in hits)
    faceted = _json(home, "--queries", str(queries), "--facets", "--brand", "behr")
    assert isinstance(faceted, dict)
    assert {h["item_id"] for h in faceted["a"]["results"]} == {"P1", "P3"}
    assert faceted["a"]["facets"]["brand"] == [{"value": "Behr", "count": 2}]
    cands = tmp_path / "c.tsv"
    cands.write_text("a\tP1\na\tP2\nb\tS1\nb\tS2\n", encoding="utf-8")
    reranked = _json(
        home, "--queries", str(queries), "--candidates", str(cands), "--brand", "wooster"
    )
    assert reranked == {"a": [reranked["a"][0]], "b": []}
    assert reranked["a"][0]["item_id"] == "P2"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--min-price", "50", "--max-price", "10"], "above max_price"),
        (["--min-price", "-1"], "-1"),
        (["--category", "Garden Gnomes"], "unknown category"),
        (["--brand", "Bosh"], "did you mean Bosch"),
        (["--user", "alice", "--personalization-weight", "1.5"], "1.5"),
    ],
)
def test_bad_filter_input_exits_2(home: Path, args: list[str], message: str) -> None:
    out = run(home, "search", "drill", *args, "--json")
    assert out.returncode == 2
    assert message in out.stderr
    assert out.stdout == ""


def test_user_personalizes_or_says_why_not(home: Path) -> None:
    plain = _json(home, "drill", "--k", "5")
    at_zero = _json(home, "drill", "--k", "5", "--user", "alice", "--personalization-weight", "0")
    assert [h["item_id"] for h in at_zero] == [h["item_id"] for h in plain]
    assert all(h["personalized"] for h in at_zero)
    by_user = _json(home, "drill", "--k", "5", "--user", " alice ", "--personalization-weight", "1")
    stages = [h["stages"]["personalization"] for h in by_user]
    assert stages == sorted(stages, reverse=True)
    assert by_user[0]["item_id"] in {"D1", "D3"}
    out = run(home, "search", "drill", "--k", "5", "--user", "mallory", "--json")
    assert out.returncode == 0, out.stderr
    unknown = json.loads(out.stdout)
    assert [h["item_id"] for h in unknown] == [h["item_id"] for h in plain]
    assert all(h["personalized"] is False for h in unknown)
    assert "unknown user" in out.stderr
    human = run(home, "search", "drill", "--k", "3", "--user", "alice", "--facets")
    assert human.returncode == 0, human.stderr
    assert "retrieval" in human.stdout
    assert "facets over the top" in human.stdout
