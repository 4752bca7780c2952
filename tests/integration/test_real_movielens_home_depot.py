"""The MovieLens 100K and Home Depot adapters on the real files in ../shared/data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = [pytest.mark.realdata, pytest.mark.integration]


def _counts(results: list[dict[str, Any]]) -> dict[str, tuple[int, int, int, int]]:
    return {
        r["asset"]: (r["input_rows"], r["clean_rows"], r["quarantined_rows"], r["duplicate_rows"])
        for r in results
    }


def _one(wh: Warehouse, sql: str) -> tuple[Any, ...]:
    return wh.query(sql)[1][0]


def test_movielens_100k(shared_data: Path, tmp_path: Path) -> None:
    ws = Workspace.at(tmp_path / "ws")
    results = ingest(ws, IngestRequest(shared_data / "movielens-100k", "movielens"))
    assert _counts(results) == {
        "items": (1682, 1682, 0, 0),
        "users": (943, 943, 0, 0),
        "events": (100_000, 100_000, 0, 0),
        "reviews": (100_000, 100_000, 0, 0),
    }
    assert all(r["reasons"] == {} for r in results)
    with Warehouse(ws, read_only=True) as wh:
        assert _one(
            wh,
            "SELECT count(DISTINCT user_id), count(DISTINCT item_id), "
            "min(epoch(ts)), max(epoch(ts)) FROM events",
        ) == (943, 1682, 874_724_710, 893_286_638)
        stars = wh.query("SELECT value, count(*) FROM events GROUP BY 1 ORDER BY 1")[1]
        assert stars == [(1.0, 6110), (2.0, 11370), (3.0, 27145), (4.0, 34174), (5.0, 21201)]
        assert _one(wh, "SELECT count(*) FROM events e ANTI JOIN users u USING (user_id)") == (0,)
        assert _one(wh, "SELECT count(*) FROM reviews WHERE rating BETWEEN 1 AND 5") == (100_000,)
        # the broken movie 267 ("unknown", no date, no URL) stays, with its 9 ratings
        assert _one(
            wh, "SELECT title, updated_at, tags, attributes FROM items WHERE item_id = '267'"
        ) == ("unknown", None, None, '{"imdb_url":null,"year":null}')
        assert _one(wh, "SELECT count(*) FROM events WHERE item_id = '267'") == (9,)
        assert _one(
            wh,
            "SELECT count(updated_at), count(tags), "
            "count(*) FILTER (WHERE updated_at < '1990-01-01') FROM items",
        ) == (1681, 1680, 333)
        assert _one(wh, "SELECT title FROM items WHERE item_id = '543'") == (
            "Misérables, Les (1995)",
        )
        assert _one(wh, "SELECT count(*) FROM items WHERE contains(title, '\ufffd')") == (0,)
        assert _one(
            wh,
            "SELECT count(created_at), min(created_at) = (SELECT min(ts) FROM events) FROM users",
        ) == (943, True)


def test_home_depot_train(shared_data: Path, tmp_path: Path) -> None:
    ws = Workspace.at(tmp_path / "ws")
    archive = shared_data / "home-depot-search-relevance" / "train.csv.zip"
    results = ingest(ws, IngestRequest(archive, "home-depot"))
    assert _counts(results) == {
        "items": (59_380, 45_876, 0, 13_504),
        "queries": (59_380, 9_436, 0, 49_944),
        "judgments": (59_380, 59_380, 0, 0),
    }
    reasons = {r["asset"]: r["reasons"] for r in results}
    assert reasons == {
        "items": {"superseded": 13_504},
        "queries": {"superseded": 49_944},
        "judgments": {},
    }
    with Warehouse(ws, read_only=True) as wh:
        assert _one(
            wh,
            "SELECT min(relevance), max(relevance), count(DISTINCT relevance), "
            "count(DISTINCT query_id), count(DISTINCT item_id) FROM judgments",
        ) == (1.0, 3.0, 13, 9_436, 45_876)
        assert _one(wh, "SELECT count(*) FROM judgments ANTI JOIN queries USING (query_id)") == (0,)
        assert _one(wh, "SELECT count(*) FROM judgments ANTI JOIN items USING (item_id)") == (0,)
        # Mac Roman decoding plus the mojibake repair leave no `Â°`-style debris
        assert _one(
            wh,
            "SELECT count(*) FILTER (WHERE regexp_matches(title, '[ÂâÃËï\ufffd]')), "
            "count(*) FILTER (WHERE contains(title, '°')) FROM items",
        ) == (0, 132)
        assert _one(wh, "SELECT count(*) FROM queries WHERE query LIKE '%[%]%'") == (0,)
        quality = wh.latest("queries")
        assert quality is not None
        assert quality.quality["pii_masked"] == {"email": 0, "card": 0, "phone": 0}
        # model and SKU numbers in queries are kept as typed
        assert _one(
            wh,
            "SELECT count(*) FROM queries WHERE query IN "
            "('sku 877 370 tiller', 'flooring sku 1000-019-492', "
            "'whirlpool 2188808 inlet valve')",
        ) == (3,)
