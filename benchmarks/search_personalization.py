"""Personalized search benchmark on Home Depot, with SIMULATED shoppers.

Home Depot's search-relevance data has queries and graded judgments but no shoppers and
no purchase histories, so the shoppers here are simulated, with known preferences:

* Home Depot's `train.csv` has no brand column either; an item's brand is taken as the
  first word of its title (the titles start with the maker: "BEHR Premium …",
  "DEWALT 20-Volt …"). Sixteen common one-word brands are used (BRANDS below).
* Each simulated shopper prefers one brand: their history is `--history` purchases of
  distinct random items of that brand plus `--noise` views of random catalogue items,
  spread over 60 days. Three shoppers per brand by default (48 shoppers).
* The histories are ingested as an `events` asset of a copy of the search benchmark's
  workspace (`benchmarks/search.py` builds and caches it), and `features build` turns
  them into user vectors with the real features code (event weights, time decay).

For every judged test query (the query-disjoint split of `evaluate search`, seed 0) and
every shopper, the hybrid search's top 100 candidates are reordered with the shopper's
vector, for several personalization weights w (w = 0 is the unpersonalized order):

* the share of the top 10 whose brand is the shopper's (all pairs, and the pairs whose
  candidates hold at least one item of that brand, the only ones personalization can
  change), also counting only items the shopper has not bought;
* nDCG@10 on the judgments, which know nothing of shoppers: it measures what
  personalization costs in relevance to the query.

The reordering is the same `personalize` call the searcher makes; a sample of (query,
shopper) pairs is also run through `Searcher.search(..., user=...)` and must agree.
Results go to `<out>/search-personalization-results.{json,md}`; without `../shared/data`
it says so and exits 0.

    nice -n 10 python benchmarks/search_personalization.py --out benchmarks/out
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SOURCE = "home-depot-search-relevance/train.csv.zip"
BRANDS = [
    "everbilt", "behr", "kohler", "ge", "delta", "dewalt", "philips", "milwaukee",
    "rust-oleum", "moen", "husky", "ridgid", "makita", "ryobi", "bosch", "glidden",
]  # fmt: skip
"""Preferred brands of the simulated shoppers: common one-word first words of titles."""
K = 10
POOL = 100


def _search_bench() -> Any:
    """benchmarks/search.py as a module (its cached-workspace `prepare`)."""
    spec = importlib.util.spec_from_file_location("search_bench", REPO / "benchmarks" / "search.py")
    assert spec is not None
    assert spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def copy_workspace(base: Path, dest: Path) -> None:
    """A fresh copy of the cached search workspace (its catalog stores relative paths)."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(base, dest, ignore=shutil.ignore_patterns("tmp", ".lock"))


def item_brands(titles: list[str]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """Index into BRANDS of each item's title's first word (-1: another brand)."""
    code = {b: i for i, b in enumerate(BRANDS)}
    first = [t.split(" ", 1)[0].lower() if t else "" for t in titles]
    return np.array([code.get(w, -1) for w in first], dtype=np.int64)


def simulate(
    brand: np.ndarray[Any, np.dtype[np.int64]],
    item_ids: list[str],
    per_brand: int,
    history: int,
    noise: int,
    seed: int,
) -> list[dict[str, Any]]:
    """Shoppers, each with a preferred brand and the items of their history."""
    rng = np.random.default_rng(seed)
    shoppers = []
    for b, name in enumerate(BRANDS):
        pool = np.flatnonzero(brand == b)
        for j in range(per_brand):
            bought = rng.choice(pool, size=history, replace=False)
            seen = rng.choice(len(item_ids), size=noise, replace=False)
            shoppers.append(
                {
                    "user_id": f"sim-{name}-{j}",
                    "brand": b,
                    "bought": bought.tolist(),
                    "viewed": seen.tolist(),
                }
            )
    return shoppers


def write_events(path: Path, shoppers: list[dict[str, Any]], item_ids: list[str], seed: int) -> int:
    """The shoppers' histories as a generic events CSV; returns the number of events."""
    rng = np.random.default_rng(seed + 1)
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    n = 0
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id", "item_id", "event_type", "ts"])
        for s in shoppers:
            events = [("purchase", r) for r in s["bought"]] + [("view", r) for r in s["viewed"]]
            for kind, row in events:
                ts = t0 + timedelta(minutes=int(rng.integers(0, 60 * 24 * 60)))
                w.writerow([s["user_id"], item_ids[row], kind, ts.isoformat()])
                n += 1
    return n


def test_queries(ws: Any) -> Any:
    """The judged test queries of `evaluate search`'s default split."""
    from shopkeeper.search import SearchEvalConfig, load_judged, split_queries

    cfg = SearchEvalConfig()
    judged = load_judged(ws)
    split = split_queries(judged.query_ids, cfg.seed, cfg.validation_fraction, cfg.test_fraction)
    return judged.subset(split == "test"), cfg


def measure(
    pool: Any,
    affinity: np.ndarray[Any, Any],
    shoppers: list[dict[str, Any]],
    brand: np.ndarray[Any, np.dtype[np.int64]],
    qrels: Any,
    weights: list[float],
) -> list[dict[str, Any]]:
    """Brand share and nDCG@10 of the personalized top 10, per weight, over all pairs."""
    from shopkeeper.search import personalize

    rows_ok = pool.rows >= 0
    pool_brand = np.where(rows_ok, brand[np.maximum(pool.rows, 0)], -1)
    out = []
    for w in weights:
        share, share_new, share_can, ndcg = [], [], [], []
        for s, shopper in enumerate(shoppers):
            aff = np.where(rows_ok, affinity[np.maximum(pool.rows, 0), s], 0).astype(np.float32)
            top = personalize(pool, aff, w, K).ranked.rows
            ok = top >= 0
            mine = ok & (brand[np.maximum(top, 0)] == shopper["brand"])
            new = mine & ~np.isin(top, shopper["bought"])
            share.append(mine.sum(axis=1) / K)
            share_new.append(new.sum(axis=1) / K)
            can = (pool_brand == shopper["brand"]).any(axis=1)
            share_can.append(np.where(can, mine.sum(axis=1) / K, np.nan))
            ndcg.append(qrels.full_metrics(top, K, K)[f"nDCG@{K}"])
        out.append(
            {
                "weight": w,
                "brand_share@10": round(float(np.mean(share)), 4),
                "brand_share@10_not_bought": round(float(np.mean(share_new)), 4),
                "brand_share@10_brand_in_pool": round(float(np.nanmean(share_can)), 4),
                "pairs_brand_in_pool": int(np.isfinite(np.array(share_can)).sum()),
                "nDCG@10": round(float(np.nanmean(ndcg)), 4),
            }
        )
    return out


def agreement(
    searcher: Any,
    queries: list[str],
    affinity: np.ndarray[Any, Any],
    shoppers: list[dict[str, Any]],
    n: int,
    w: float,
    seed: int,
) -> dict[str, Any]:
    """Whether `Searcher.search(user=...)` returns what `personalize` makes of the same
    query's candidates, for sampled (query, shopper) pairs; and one-query latencies.

    The candidates are retrieved for the single query: the int8 ONNX encoder quantizes
    activations per batch, so a query's vector (and its candidates) can differ slightly
    between a single-query call and a batch.
    """
    from shopkeeper.search import PersonalizationConfig, personalize

    rng = np.random.default_rng(seed)
    same, lat_user, lat_plain = 0, [], []
    cfg = PersonalizationConfig(weight=w, pool=POOL)
    for _ in range(n):
        q, s = int(rng.integers(len(queries))), int(rng.integers(len(shoppers)))
        user = shoppers[s]["user_id"]
        searcher.profile(user)  # the vector is read once per user; time the search itself
        t = time.perf_counter()
        hits = searcher.search([queries[q]], K, user=user, personalization=cfg)
        lat_user.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        searcher.search([queries[q]], K)
        lat_plain.append((time.perf_counter() - t) * 1000)
        one = searcher.candidates([queries[q]], POOL)
        rows = one.rows
        aff = np.where(rows >= 0, affinity[np.maximum(rows, 0), s], 0).astype(np.float32)
        want = [searcher.item_ids[r] for r in personalize(one, aff, w, K).ranked.rows[0] if r >= 0]
        same += [h["item_id"] for h in hits[0]] == want
    return {
        "pairs": n,
        "identical_top10": same,
        "weight": w,
        "p50_ms_personalized": round(float(np.percentile(lat_user, 50)), 1),
        "p50_ms_plain": round(float(np.percentile(lat_plain, 50)), 1),
    }


def batch_drift(searcher: Any, queries: list[str], n: int) -> dict[str, Any]:
    """How many of `n` queries get another unpersonalized top 10 alone than in a batch."""
    batched = searcher.candidates(queries[:n], K).rows
    alone = np.concatenate([searcher.candidates([q], K).rows for q in queries[:n]])
    return {"queries": n, "different_top10": int((batched != alone).any(axis=1).sum())}


def markdown(res: dict[str, Any]) -> str:
    """The results table and the set-up in a few lines."""
    sim, d = res["simulation"], res["data"]
    lines = [
        f"SIMULATED shoppers: {sim['shoppers']} ({sim['per_brand']} per brand, "
        f"{len(BRANDS)} brands; brand = the title's first word, Home Depot has no brand "
        f"column), each with {sim['history']} purchases of that brand and {sim['noise']} "
        f"random views; user vectors from `features build`. {d['test_queries']:,} judged test "
        f"queries x {sim['shoppers']} shoppers = {d['pairs']:,} pairs; {res['retriever']} "
        f"top {POOL} reordered by (1-w)·normalized query score + w·cosine(user, item).",
        "",
        "| w | brand share@10 | (not bought) | (brand in candidates) | nDCG@10 |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['weight']} | {r['brand_share@10']:.4f} | {r['brand_share@10_not_bought']:.4f}"
        f" | {r['brand_share@10_brand_in_pool']:.4f} | {r['nDCG@10']:.4f} |"
        for r in res["results"]
    ]
    a = res["searcher_agreement"]
    lines += [
        "",
        f"Pairs whose candidates hold the shopper's brand: "
        f"{res['results'][0]['pairs_brand_in_pool']:,} of {d['pairs']:,}. "
        f"`Searcher.search(user=...)` gave the same top 10 on {a['identical_top10']} of "
        f"{a['pairs']} sampled pairs (w = {a['weight']}); one-query p50 "
        f"{a['p50_ms_personalized']} ms personalized vs {a['p50_ms_plain']} ms plain.",
        "",
        f"Note: {res['batch_drift']['different_top10']} of {res['batch_drift']['queries']} "
        "queries get a different unpersonalized top 10 searched alone than in a batch (the "
        "int8 ONNX query encoder quantizes activations per batch).",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 also when the data is absent (it says so)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    ap.add_argument("--base-workspace", type=Path, default=None, help="the search benchmark's")
    ap.add_argument("--per-brand", type=int, default=3, help="simulated shoppers per brand")
    ap.add_argument("--history", type=int, default=8, help="purchases per shopper")
    ap.add_argument("--noise", type=int, default=4, help="random views per shopper")
    ap.add_argument("--weights", default="0,0.1,0.2,0.3,0.5,0.7", help="comma-separated w")
    ap.add_argument("--agreement-pairs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if not (args.data / SOURCE).is_file():
        print(f"skipped: {args.data / SOURCE} is not present", file=sys.stderr)
        return 0
    from shopkeeper.features import FeaturesConfig, build_features
    from shopkeeper.logging import set_progress_backend
    from shopkeeper.search import Qrels, Searcher, load_user_profiles
    from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest

    set_progress_backend("none")
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    base = Workspace.at(args.base_workspace or args.out / "search-home-depot-ws")
    res: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "simulated": True,
        "prepare": _search_bench().prepare(base, args.data),
    }
    ws = Workspace.at(args.out / "search-personalization-ws")
    copy_workspace(base.home, ws.home)
    with Warehouse(ws, read_only=True) as wh:
        v = wh.version("items").version
        table = wh.con.sql(f"SELECT item_id, title FROM items_v{v} ORDER BY item_id").fetchall()
    item_ids, titles = [r[0] for r in table], [r[1] for r in table]
    brand = item_brands(titles)
    shoppers = simulate(brand, item_ids, args.per_brand, args.history, args.noise, args.seed)
    events = ws.home / "simulated-events.csv"
    n_events = write_events(events, shoppers, item_ids, args.seed)
    t0 = time.perf_counter()
    ingest(ws, IngestRequest(events, "generic", "events"))
    feats = build_features(ws, FeaturesConfig())
    res["simulation"] = {
        "shoppers": len(shoppers),
        "per_brand": args.per_brand,
        "history": args.history,
        "noise": args.noise,
        "events": n_events,
        "brands": {b: int((brand == i).sum()) for i, b in enumerate(BRANDS)},
        "users_built": feats.get("users"),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    searcher = Searcher.open(ws)
    test, cfg = test_queries(ws)
    # The searcher's catalogue order is the items' sorted ids, like `item_ids` here.
    assert searcher.item_ids == item_ids
    t0 = time.perf_counter()
    pool = searcher.candidates(test.queries, POOL)
    retrieval_s = time.perf_counter() - t0
    vectors = searcher.item_vectors
    assert vectors is not None
    profiles = load_user_profiles(ws, [s["user_id"] for s in shoppers], vectors.model_id)
    assert all(p.applied for p in profiles), [p.reason for p in profiles if not p.applied]
    affinity = vectors.affinity(np.stack([p.vector for p in profiles]))  # type: ignore[misc]
    qrels = Qrels(test, searcher.item_ids, cfg.min_grade, cfg.relevant_grade)
    weights = [float(w) for w in args.weights.split(",")]
    t0 = time.perf_counter()
    res["results"] = measure(pool, affinity, shoppers, brand, qrels, weights)
    res["personalize_seconds"] = round(time.perf_counter() - t0, 1)
    plain = qrels.full_metrics(pool.rows[:, :K], K, K)[f"nDCG@{K}"]
    res["unpersonalized_nDCG@10"] = round(float(np.nanmean(plain)), 4)
    res["retriever"] = searcher.name
    res["retrieval_seconds"] = round(retrieval_s, 1)
    res["data"] = {
        "items": len(item_ids),
        "test_queries": len(test.queries),
        "pairs": len(test.queries) * len(shoppers),
    }
    res["searcher_agreement"] = agreement(
        searcher, test.queries, affinity, shoppers, args.agreement_pairs, 0.3, args.seed
    )
    res["batch_drift"] = batch_drift(searcher, test.queries, 100)
    res["total_seconds"] = round(time.perf_counter() - started, 1)
    out_json = args.out / "search-personalization-results.json"
    out_json.write_text(json.dumps(res, indent=1), encoding="utf-8")
    md = markdown(res)
    (args.out / "search-personalization-results.md").write_text(md, encoding="utf-8")
    print(md)
    print(f"total {res['total_seconds']} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
