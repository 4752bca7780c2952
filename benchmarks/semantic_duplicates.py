"""Near-duplicate items on the real Online Retail catalogue.

Items are the stock codes of `../shared/data/online-retail-uci` (priced lines only),
each with its most frequent description, encoded with the packaged all-MiniLM-L6-v2.
The script reports the candidate pairs `find_duplicate_items` finds across codes,
and how many of the descriptions that a single stock code carried over time (a
natural, if noisy, set of same-product pairs: some are renamed products) the rule
would pair. Skips with a message when the data set is absent.

    python benchmarks/semantic_duplicates.py --out benchmarks/out
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import duckdb
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "online-retail-uci" / "online_retail.parquet"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    ap.add_argument("--data", type=Path, default=DATA)
    args = ap.parse_args(argv)
    if not args.data.exists():
        print(f"skipped: {args.data} not found (the real data sets live in ../shared/data)")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from shopkeeper.features import ItemEncoder
    from shopkeeper.features._duplicates import (
        DuplicatesConfig,
        close_pairs,
        find_duplicate_items,
        is_variant,
        title_similarity,
        tokens,
    )

    con = duckdb.connect()
    lines = con.execute(
        "SELECT StockCode AS code, trim(Description) AS d, count(*) AS n "
        f"FROM read_parquet('{args.data}') WHERE Description IS NOT NULL AND UnitPrice > 0 "
        "GROUP BY ALL ORDER BY code, n DESC, d"
    ).fetchall()
    by_code: dict[str, list[str]] = {}
    for code, d, _ in lines:
        by_code.setdefault(str(code), []).append(str(d))
    codes = sorted(by_code)
    titles = [by_code[c][0] for c in codes]
    texts = sorted({d for ds in by_code.values() for d in ds})
    encoder = ItemEncoder()
    t0 = time.perf_counter()
    vectors = encoder.encode(texts)
    encode_s = time.perf_counter() - t0
    row = {t: i for i, t in enumerate(texts)}
    cfg = DuplicatesConfig()
    t0 = time.perf_counter()
    pairs = find_duplicate_items(codes, titles, vectors[[row[t] for t in titles]], cfg)
    detect_s = time.perf_counter() - t0

    # Descriptions one code carried over time, each against the code's main description.
    history = [(ds[0], d) for ds in by_code.values() for d in ds[1:]]
    a = np.array([row[x] for x, _ in history])
    b = np.array([row[y] for _, y in history])
    cos = (vectors[a] * vectors[b]).sum(axis=1)
    text = title_similarity(
        [" ".join(tokens(x)) for x, _ in history], [" ".join(tokens(y)) for _, y in history]
    )
    close = close_pairs(cos, text, cfg)
    verdicts = [
        (bool(c), bool(c) and is_variant(x, y, cfg))
        for c, (x, y) in zip(close, history, strict=True)
    ]
    paired = [c and not v for c, v in verdicts]
    variants = sum(1 for c, v in verdicts if c and v)
    result = {
        "items": len(codes),
        "distinct_descriptions": len(texts),
        "encode_s": round(encode_s, 1),
        "detect_s": round(detect_s, 2),
        "candidate_pairs": len(pairs),
        "codes_with_several_descriptions": sum(1 for ds in by_code.values() if len(ds) > 1),
        "history_pairs": len(history),
        "history_pairs_flagged": int(sum(paired)),
        "history_pairs_close_but_variant": variants,
        "top_pairs": [p.as_dict() for p in pairs[:15]],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "semantic-duplicates.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "top_pairs"}, indent=2))
    for p in pairs[:15]:
        print(f"  {p.score:.3f}  {p.item_a:>8} {p.title_a!r:45} {p.item_b:>8} {p.title_b!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
