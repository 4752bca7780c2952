"""Search filters (category, brand, price) inside retrieval, and facet counts.

A tiny tool shop whose right answers are obvious: which items match a filter can be
read off the table below.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

import shopkeeper.search._retrieve as retrieve_mod
from shopkeeper.errors import ConfigError
from shopkeeper.features import (
    AnnIndex,
    FeaturesConfig,
    IndexConfig,
    ItemEncoder,
    build_ann,
    build_features,
)
from shopkeeper.search import (
    DenseRetriever,
    ItemAttributes,
    Searcher,
    SearchFilters,
    price_buckets,
)
from shopkeeper.warehouse import IngestRequest, Workspace, ingest

# item_id, title, brand, category path, price ("" = none)
SHOP = [
    ("D1", "20V Cordless Drill Driver", "DeWalt", "Tools > Power Tools > Drills", "99.0"),
    ("D2", "Cordless Hammer Drill", "Bosch", "Tools > Power Tools > Drills", "149.0"),
    ("D3", "Drill Bit Set", "DeWalt", "Tools > Accessories", "19.99"),
    ("D4", "Compact Cordless Drill", "Ryobi", "Tools > Power Tools > Drills", "59.0"),
    ("D5", "Right Angle Drill", "Milwaukee", "Tools > Power Tools > Drills > Specialty", "229"),
    ("S1", "Cordless Circular Saw", "DeWalt", "Tools > Power Tools > Saws", "179.0"),
    ("S2", "Hand Saw", "Stanley", "Tools > Hand Tools", "25.0"),
    ("P1", "Interior Paint White", "Behr", "Paint > Interior", "35.0"),
    ("P2", "Paint Roller Cover", "Wooster", "Paint > Supplies", "10.0"),
    ("P3", "Drill Paint Mixer", "behr", "Paint > Supplies", ""),
    ("G1", "Garden Hose", "Flexzilla", "Outdoors > Watering", "49.0"),
    ("L1", "LED Light Bulb", "", "Lighting", "5.0"),
]
IDS = [r[0] for r in SHOP]


def write_shop(root: Path) -> Path:
    """The shop's items as a generic CSV."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "items.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["item_id", "title", "brand", "category", "price"])
        w.writerows(SHOP)
    return path


def ids_where(pred: object) -> set[str]:
    """Items of SHOP for which `pred(row)` holds."""
    return {r[0] for r in SHOP if pred(r)}  # type: ignore[operator]


@pytest.fixture
def attributes() -> ItemAttributes:
    table = pa.table(
        {
            "item_id": [r[0] for r in SHOP],
            "brand": [r[2] or None for r in SHOP],
            "category_path": [r[3] for r in SHOP],
            "price": [float(r[4]) if r[4] else None for r in SHOP],
        }
    )
    return ItemAttributes.from_table(IDS, table)


@pytest.fixture
def shop(workspace: Workspace, tmp_path: Path) -> Workspace:
    ingest(workspace, IngestRequest(write_shop(tmp_path / "data"), "generic", "items"))
    return workspace


def _matched(attributes: ItemAttributes, **filters: object) -> set[str]:
    mask = attributes.mask(SearchFilters.model_validate(filters))
    assert mask is not None
    return {IDS[i] for i in np.flatnonzero(mask)}


def test_filters_validate_their_input() -> None:
    assert not SearchFilters().active
    assert not SearchFilters(category="  ", brand="").active  # blank is no filter
    assert SearchFilters(min_price=0).active
    with pytest.raises(ValidationError, match="above max_price"):
        SearchFilters(min_price=50, max_price=10)
    with pytest.raises(ValidationError):
        SearchFilters(min_price=-1)
    with pytest.raises(ValidationError):
        SearchFilters(max_price=float("nan"))
    with pytest.raises(ValidationError):
        SearchFilters.model_validate({"colour": "red"})
    assert SearchFilters(min_price=10, max_price=10).active  # an equal range is fine


def test_category_matches_the_node_and_its_descendants(attributes: ItemAttributes) -> None:
    assert _matched(attributes, category="Tools") == ids_where(lambda r: r[3].startswith("Tools"))
    drills = _matched(attributes, category="tools >power tools> DRILLS")
    assert drills == {"D1", "D2", "D4", "D5"}  # D5 sits one level deeper
    # A node that no path starts with matches wherever it sits.
    assert _matched(attributes, category="Power Tools > Saws") == {"S1"}
    assert _matched(attributes, category="Specialty") == {"D5"}
    with pytest.raises(ConfigError, match=r"unknown category 'Toolz'.*Lighting, Outdoors"):
        attributes.mask(SearchFilters(category="Toolz"))


def test_brand_is_case_insensitive_and_exact(attributes: ItemAttributes) -> None:
    assert _matched(attributes, brand="behr") == {"P1", "P3"}  # "Behr" and "behr"
    assert _matched(attributes, brand="DEWALT") == {"D1", "D3", "S1"}
    with pytest.raises(ConfigError, match="did you mean Bosch"):
        attributes.mask(SearchFilters(brand="Bosh"))
    with pytest.raises(ConfigError):
        attributes.mask(SearchFilters(brand="Dewal"))  # no prefix matching


def test_price_bounds_are_inclusive(attributes: ItemAttributes) -> None:
    price = {r[0]: float(r[4]) for r in SHOP if r[4]}
    assert _matched(attributes, min_price=59, max_price=99) == {"D1", "D4"}
    assert _matched(attributes, max_price=10) == {"P2", "L1"}
    assert _matched(attributes, min_price=229) == {"D5"}
    # P3 has no price: any price bound leaves it out.
    assert _matched(attributes, min_price=0) == set(price)
    assert _matched(attributes, min_price=1000) == set()
    both = _matched(attributes, brand="dewalt", category="Tools > Power Tools", max_price=150)
    assert both == {"D1"}
    assert attributes.mask(SearchFilters()) is None


def test_facet_counts_equal_direct_counts(attributes: ItemAttributes) -> None:
    rows = np.array([[0, 1, 3, 4, 5, 9, -1], [2, 7, 8, 10, 11, -1, -1]])
    got = attributes.facets(rows, category="Tools > Power Tools")
    picked = [SHOP[i] for i in rows.ravel() if i >= 0]
    assert got["items"] == len(picked)
    top = Counter(r[3].split(" > ")[0] for r in picked)
    assert {c["value"]: c["count"] for c in got["category"]} == top
    assert [c["count"] for c in got["category"]] == sorted(top.values(), reverse=True)
    brands = Counter(r[2].lower() for r in picked if r[2])
    assert {c["value"].lower(): c["count"] for c in got["brand"]} == brands
    under = Counter(
        r[3].split(" > ")[2] for r in picked if r[3].startswith("Tools > Power Tools >")
    )
    assert got["subcategory"]["parent"] == "Tools > Power Tools"
    assert {c["value"]: c["count"] for c in got["subcategory"]["values"]} == under
    prices = np.array([float(r[4]) if r[4] else np.nan for r in picked])
    assert got["price"] == price_buckets(prices)
    assert sum(b["count"] for b in got["price"]) == len(picked)


def test_price_buckets_cover_every_item() -> None:
    prices = np.array([0.0, 9.99, 10.0, 99.0, 100.0, 999.0, 1000.0, 5000.0, np.nan])
    buckets = price_buckets(prices)
    assert sum(b["count"] for b in buckets) == len(prices)
    first = buckets[0]
    assert (first["min"], first["max"], first["count"]) == (0.0, 10.0, 2)
    assert buckets[-1] == {"min": None, "max": None, "count": 1}
    assert {"min": 1000.0, "max": None, "count": 2} in buckets


def test_bm25_search_filters_inside_retrieval(shop: Workspace) -> None:
    s = Searcher.open(shop, "bm25")
    plain = [h["item_id"] for h in s.search(["cordless drill"], k=3)[0]]
    assert sum(i in {"D1", "D3", "S1"} for i in plain) < 3  # other brands rank in between
    # Every DeWalt item mentions a query word: filtering inside retrieval finds all three,
    # where filtering the unfiltered top 3 would leave fewer.
    got = s.search(["cordless drill"], k=3, filters=SearchFilters(brand="dewalt"))[0]
    assert {h["item_id"] for h in got} == {"D1", "D3", "S1"}
    paint = s.search(["drill"], k=5, filters=SearchFilters(category="Paint"))[0]
    assert [h["item_id"] for h in paint] == ["P3"]  # the only paint item with "drill"
    cheap = s.search(["drill"], k=10, filters=SearchFilters(max_price=60))[0]
    assert {h["item_id"] for h in cheap} == {"D3", "D4"}
    assert s.search(["drill"], k=3, filters=SearchFilters(min_price=5000)) == [[]]
    with pytest.raises(ConfigError, match="unknown category"):
        s.search(["drill"], filters=SearchFilters(category="Garden Gnomes"))


def test_filters_apply_to_reranking_and_facets(shop: Workspace) -> None:
    s = Searcher.open(shop, "bm25")
    got = s.rerank(["drill"], [["D1", "D2", "P3", "D3"]], filters=SearchFilters(brand="DeWalt"))
    assert {h["item_id"] for h in got[0]} == {"D1", "D3"}
    page = s.pages(["drill"], k=2, filters=SearchFilters(category="Tools"))[0]
    assert len(page.hits) == 2
    assert page.facets is not None
    # Facets count every matching candidate, not just the k shown: five tools say drill.
    assert page.facets["items"] == 5
    assert page.facets["category"] == [{"value": "Tools", "count": 5}]
    under = {c["value"]: c["count"] for c in page.facets["subcategory"]["values"]}
    assert under == {"Power Tools": 4, "Accessories": 1}


@pytest.fixture
def encoder(tiny_model_dir: Path) -> ItemEncoder:
    return ItemEncoder(model_path=tiny_model_dir, precision="fp32", batch_size=16)


def test_dense_and_hybrid_return_k_filtered_items(shop: Workspace, encoder: ItemEncoder) -> None:
    build_features(shop, FeaturesConfig(encoder=encoder.cfg), encoder)
    paint = ids_where(lambda r: r[3].startswith("Paint"))
    for model in ("dense", "hybrid"):
        s = Searcher.open(shop, model, encoder=encoder)
        got = s.search(["cordless drill"], k=3, filters=SearchFilters(category="Paint"))[0]
        # Dense scores every item, so all three paint items come back for a tool query.
        assert {h["item_id"] for h in got} == paint
        scores = [h["score"] for h in got]
        assert scores == sorted(scores, reverse=True)
        many = s.search(["saw"], k=20, filters=SearchFilters(max_price=50))[0]
        assert {h["item_id"] for h in many} == ids_where(lambda r: r[4] and float(r[4]) <= 50)


def test_dense_filtered_search_exact_and_through_hnsw(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    n, d, k = 600, 16, 10
    vecs = rng.normal(size=(n, d)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    queries = rng.normal(size=(5, d)).astype(np.float32)
    ids = [f"i{i:04d}" for i in range(n)]
    mask = rng.random(n) < 0.1  # about 60 items pass
    truth = np.argsort(-(queries @ vecs.T) + np.where(mask, 0, 10), axis=1)[:, :k]
    for kind in ("flat", "hnsw"):
        index, built = build_ann(vecs, IndexConfig(exact_max_items=n if kind == "flat" else 1))
        assert built == kind
        dense = DenseRetriever(AnnIndex(index, ids, built), None, ids)  # type: ignore[arg-type]
        if kind == "hnsw":  # the id-selector path, not the exact one
            monkeypatch.setattr(retrieve_mod, "EXACT_FILTERED_MAX", 0)
        got = dense.retrieve(queries, k, mask)
        assert (got.rows >= 0).all()
        assert mask[got.rows].all()
        overlap = np.mean([len(set(a) & set(b)) / k for a, b in zip(got.rows, truth, strict=True)])
        assert overlap >= (1.0 if kind == "flat" else 0.9)
        few = np.zeros(n, bool)
        few[[3, 77, 500]] = True
        short = dense.retrieve(queries, k, few)  # fewer matches than k
        assert {tuple(sorted(r[r >= 0])) for r in short.rows} == {(3, 77, 500)}
