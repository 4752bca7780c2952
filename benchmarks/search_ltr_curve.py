"""Learning curve of the LambdaMART trees: test nDCG@10 against the number of train queries.

Would more judged queries close the gap to the search target? The trees are trained on
seeded samples of 25 %, 50 %, 75 % and all of the train queries of the Home Depot
workspace that ``search_tuned.py`` builds (its bi-encoder and item vectors are reused),
each size with two seeds, and every version is measured on the same held-out test
queries. Each fit stores a new ``search_ltr`` version in that workspace.

    .venv/bin/python benchmarks/search_tuned.py --out benchmarks/out --minutes 8 --ltr
    .venv/bin/python benchmarks/search_ltr_curve.py --out benchmarks/out   # 2.5 min measured
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    ap.add_argument("--workspace", type=Path, default=None)
    ap.add_argument("--shares", default="0.25,0.5,0.75,1.0", help="shares of the train queries")
    ap.add_argument("--seeds", type=int, default=2, help="samples (and LightGBM seeds) a share")
    ap.add_argument("--queries", type=int, default=None, help="test queries (default: all)")
    args = ap.parse_args(argv)
    from shopkeeper.logging import set_progress_backend
    from shopkeeper.search import SearchEvalConfig, evaluate_search
    from shopkeeper.search._data import load_judged, split_queries
    from shopkeeper.search._train_ltr import LtrConfig, train_ltr
    from shopkeeper.warehouse import Workspace

    set_progress_backend("none")
    ws = Workspace.at(args.workspace or args.out / "search-home-depot-ws")
    ev = SearchEvalConfig(max_queries=args.queries)
    ids = load_judged(ws).query_ids
    split = split_queries(ids, ev.seed, ev.validation_fraction, ev.test_fraction)
    full = int((split == "train").sum())
    rows: list[dict[str, Any]] = []
    for share in (float(s) for s in args.shares.split(",")):
        for seed in range(args.seeds):
            n = None if share >= 1.0 else max(1, round(share * full))
            fit = train_ltr(ws, LtrConfig(train_queries=n, seed=seed), eval_cfg=ev)
            report = evaluate_search(ws, ["ltr"], ev)
            m = report["models"][0]
            row = {
                "share": share,
                "seed": seed,
                "train_queries": fit["train_queries"],
                "trees": fit["trees"],
                "validation_ndcg": fit["validation_ndcg"],
                "test_ndcg": round(m["full"]["nDCG@10"], 4),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    (args.out / "search-ltr-curve.json").write_text(json.dumps(rows, indent=1))
    print("\n| train queries | validation nDCG@10 | test nDCG@10 (mean of seeds) |\n|---|---|---|")
    for share in sorted({r["share"] for r in rows}):
        at = [r for r in rows if r["share"] == share]
        print(
            f"| {at[0]['train_queries']:,} ({share:.0%}) "
            f"| {statistics.mean(r['validation_ndcg'] for r in at):.4f} "
            f"| {statistics.mean(r['test_ndcg'] for r in at):.4f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
