"""Bi-encoder benchmark: dense and hybrid retrieval before and after contrastive fine-tuning.

On the Home Depot workspace of `benchmarks/search.py` (built here when missing: ingest,
`features build`, the BM25 index), `train search --model bi-encoder` fine-tunes
all-MiniLM-L6-v2 on the train queries within `--minutes`, encodes the catalogue with it
(ONNX int8), and `evaluate_search` compares BM25, dense and hybrid with the pre-trained
encoder against dense-tuned and hybrid-tuned on the same held-out test queries (seed 0
split, full-catalogue and rerank nDCG@10, Recall@100, MRR@10). Single-query latency
(p50/p99 of top-10 calls) is measured for hybrid and hybrid-tuned.

With `--ranker-minutes M`, `train search` then fine-tunes the cross-encoder (the first 2
of MiniLM's 6 layers, as in `benchmarks/search.py`) over hybrid-tuned within M minutes,
and the same test queries measure it (int8 as served, and fp32), with the RMSE of its
predicted grade and its single-query latency. `--reuse` keeps a fine-tuned encoder the
workspace already holds instead of training a new one.

With `--ltr`, `train search --model ltr` fits LambdaMART trees (LightGBM) over pair
features of the best first stage's top 50 (hybrid-tuned here), and the same test
queries measure them, with their single-query latency.

Results go to `<out>/search-tuned-results.json` and `.md`. Without `../shared/data` it
says so and exits 0.

    python benchmarks/search_tuned.py --out benchmarks/out --minutes 8
    python benchmarks/search_tuned.py --out benchmarks/out --reuse --ranker-minutes 10
    python benchmarks/search_tuned.py --out benchmarks/out --reuse --keep-ranker --ltr
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search import DATA, REPO, SOURCE, judged_test_queries, prepare

MODELS = ["bm25", "dense", "hybrid", "dense-tuned", "hybrid-tuned"]


def latency(ws: Any, model: str, queries: list[str]) -> dict[str, float]:
    """p50/p99 milliseconds of single-query top-10 searches (after one warm-up call)."""
    from shopkeeper.search import Searcher

    searcher = Searcher.open(ws, model)  # type: ignore[arg-type]
    searcher.search(queries[:1], k=10)
    ms = []
    for q in queries:
        t = time.perf_counter()
        searcher.search([q], k=10)
        ms.append((time.perf_counter() - t) * 1000)
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
    }


def markdown(res: dict[str, Any]) -> str:
    """The result tables."""
    t = res["training"]
    lines = [
        f"# Bi-encoder fine-tuning on Home Depot ({res['started']})",
        "",
        f"Training{' (reused)' if res.get('reused') else ''}: {t['steps']} of "
        f"{t['steps_planned']} steps ({t['stopped']}); validation-pool nDCG@10 "
        f"{t['validation_ndcg_base']:.4f} -> {t['validation_ndcg']:.4f}; catalogue encoded in "
        f"{t['encode_seconds']:.0f} s.",
        "",
    ]
    r = res.get("ranker")
    if r:
        lines += [
            f"Ranker over {r['base']}: {r['steps']} of {r['steps_planned']} steps in "
            f"{r.get('seconds', float('nan')):.0f} s ({r['stopped']}), best step "
            f"{r['best_step']}; validation "
            f"nDCG@10 {r['validation_ndcg_base']:.4f} (first stage) -> "
            f"{r['validation_ndcg']:.4f}, first-stage share {r['blend']}.",
            "",
        ]
    lt = res.get("ltr")
    if lt:
        lines += [
            f"LambdaMART over {lt['base']}: {lt['trees']} trees in {lt['seconds']:.0f} s from "
            f"{lt['train_pairs']:,} pairs of {lt['train_queries']:,} train queries; validation "
            f"nDCG@10 {lt['validation_ndcg_base']:.4f} (first stage) -> "
            f"{lt['validation_ndcg']:.4f}.",
            "",
        ]
    rmse = res["evaluation"].get("rmse", {})
    lines += [
        f"RMSE of the grade predicted as the train mean: {rmse.get('constant_train_mean')}.",
        "",
        "| model | full nDCG@10 | Recall@100 | MRR@10 | rerank nDCG@10 | RMSE | queries/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in res["evaluation"]["models"]:
        f, rr = m["full"], m["rerank"]
        lines.append(
            f"| {m['model']} | {f['nDCG@10']:.4f} | {f['Recall@100']:.4f} | {f['MRR@10']:.4f} "
            f"| {rr['nDCG@10']:.4f} | {m.get('rmse', '-')} | {m['queries_per_second']} |"
        )
    lines += ["", "| single query top 10 | p50 ms | p99 ms |", "|---|---|---|"]
    for name, lat in res["latency"].items():
        lines.append(f"| {name} | {lat['p50_ms']} | {lat['p99_ms']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 also when the data is absent (it says so)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    ap.add_argument(
        "--workspace", type=Path, default=None, help="default <out>/search-home-depot-ws"
    )
    ap.add_argument("--minutes", type=float, default=8.0, help="training time budget")
    ap.add_argument("--queries", type=int, default=1000, help="test queries evaluated")
    ap.add_argument("--latency-queries", type=int, default=200, help="single-query calls timed")
    ap.add_argument("--reuse", action="store_true", help="keep a stored fine-tuned encoder")
    ap.add_argument(
        "--ranker-minutes", type=float, default=0.0, help="train the cross-encoder too (0: no)"
    )
    ap.add_argument(
        "--keep-ranker", action="store_true", help="measure the stored ranker, train none"
    )
    ap.add_argument(
        "--ranker-config",
        type=Path,
        default=None,
        help="the ranker's YAML config (default: the full cross-encoder, first 2 layers)",
    )
    ap.add_argument("--ltr", action="store_true", help="train and measure the LambdaMART trees")
    args = ap.parse_args(argv)
    if not (args.data / SOURCE).is_file():
        print(f"skipped: {args.data / SOURCE} is not present", file=sys.stderr)
        return 0
    from shopkeeper.logging import set_progress_backend
    from shopkeeper.search import SearchEvalConfig, evaluate_search
    from shopkeeper.search._train_bi_encoder import train_bi_encoder
    from shopkeeper.warehouse import Workspace

    set_progress_backend("none")
    args.out.mkdir(parents=True, exist_ok=True)
    ws = Workspace.at(args.workspace or args.out / "search-home-depot-ws")
    res: dict[str, Any] = {"started": datetime.now(UTC).isoformat(timespec="seconds")}
    res["prepare"] = prepare(ws, args.data)
    from shopkeeper.search._tuned_dense import has_tuned_dense, tuned_params

    res["reused"] = args.reuse and has_tuned_dense(ws)
    if res["reused"]:
        res["training"] = {k: v for k, v in tuned_params(ws).items() if k != "history"}
    else:
        res["training"] = train_bi_encoder(ws, time_budget_s=args.minutes * 60)
    models = list(MODELS)
    if args.keep_ranker:
        from shopkeeper.search._ranker_asset import stored_params

        res["ranker"] = {k: v for k, v in stored_params(ws).items() if k != "history"}
        res["ranker"]["kept"] = True
        models += ["ranker", "ranker-fp32"]
    elif args.ranker_minutes > 0:
        from shopkeeper.config import load_yaml_config
        from shopkeeper.search._train_ranker import RankerConfig, train_ranker

        rcfg = (
            load_yaml_config(args.ranker_config, RankerConfig)
            if args.ranker_config
            else RankerConfig(architecture="full", layers=2)
        )
        ranker = train_ranker(ws, rcfg, time_budget_s=args.ranker_minutes * 60)
        res["ranker"] = {k: v for k, v in ranker.items() if k != "history"}
        models += ["ranker", "ranker-fp32"]
    if args.ltr:
        from shopkeeper.search._train_ltr import train_ltr

        res["ltr"] = train_ltr(ws)
        models.append("ltr")
    cfg = SearchEvalConfig(max_queries=args.queries)
    res["evaluation"] = evaluate_search(ws, models, cfg)  # type: ignore[arg-type]
    test = judged_test_queries(ws, res["evaluation"]).queries[: args.latency_queries]
    timed = ["hybrid", "hybrid-tuned"] + [m for m in ("ranker", "ltr") if m in res]
    res["latency"] = {m: latency(ws, m, test) for m in timed}
    (args.out / "search-tuned-results.json").write_text(json.dumps(res, indent=1, default=str))
    md = markdown(res)
    (args.out / "search-tuned-results.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
