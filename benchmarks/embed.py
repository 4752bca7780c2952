"""Encoder and ANN benchmark: speed and agreement of each encoder path, incremental rebuilds,
and the recall and speed of the FAISS index.

Everything is measured in one run on this machine, and every speed is also given as a
ratio to our fp32 encoder measured in the same run:

* encoders, on item texts built by our template from Online Retail (the bundled sample,
  both months) and Home Depot titles (`../shared/data`, skipped when absent), sampled to
  `--texts` per corpus with a fixed seed: plain sentence-transformers (one `encode` call),
  naive fixed-order batches (no length sorting), and our encoder with torch (fp32, int8
  on every Linear layer, int8 on attention only) and ONNX Runtime (fp32, int8). Median of
  `--repeat` interleaved runs after a warm-up; cosine agreement of each path with our
  torch fp32 vectors; load time (ONNX: export and quantization into an empty cache);
* incremental rebuild: `features build` on the Online Retail sample, then again after 1%
  of the item titles change, as new CLI processes and in one process (model loaded);
* ANN: exact (IndexFlatIP) against HNSW at the default settings on random unit vectors and
  on the real item embeddings: build time, queries/s and recall@10 against exact.

    python benchmarks/embed.py --texts 3000 --repeat 3 --out benchmarks/out
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from shopkeeper.features import (
    EncoderConfig,
    IndexConfig,
    ItemEncoder,
    ItemTextConfig,
    build_ann,
    build_features,
    item_text_sql,
    packaged_model_path,
)
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "src" / "shopkeeper" / "samples"
HOME_DEPOT = REPO.parent / "shared" / "data" / "home-depot-search-relevance"
OURS = (
    ("torch", "fp32"),
    ("torch", "int8"),
    ("torch", "int8-attention"),
    ("onnx", "fp32"),
    ("onnx", "int8"),
)
REFERENCE = "ours torch fp32"


def corpus_texts(ws: Workspace, sources: list[tuple[Path, str]]) -> list[str]:
    """Ingest `sources` into `ws` and return every distinct item text, sorted."""
    for path, adapter in sources:
        ingest(ws, IngestRequest(path, adapter))
    with Warehouse(ws, read_only=True) as wh:
        _, rows = wh.query(
            f"SELECT DISTINCT {item_text_sql(ItemTextConfig())} AS t FROM items ORDER BY t"
        )
    return [r[0] for r in rows]


def sample(texts: list[str], n: int, seed: int) -> list[str]:
    """At most `n` texts, a seeded random sample in random (catalog-like) order."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(texts))[:n]
    return [texts[i] for i in idx]


def timed(fn: Any) -> tuple[float, Any]:
    """Seconds taken by `fn()` and its result."""
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def encoder_paths(batch_size: int) -> tuple[dict[str, Any], dict[str, float]]:
    """name -> callable(texts) -> (n, d) vectors, each loaded; and each one's load seconds
    (for onnx: the one-time export and quantization into an empty cache)."""
    from sentence_transformers import SentenceTransformer

    load: dict[str, float] = {}
    t0 = time.perf_counter()
    plain = SentenceTransformer(str(packaged_model_path()), device="cpu", local_files_only=True)
    load["sentence-transformers"] = load["naive batches"] = time.perf_counter() - t0

    def st_plain(texts: list[str]) -> np.ndarray:
        return plain.encode(texts, batch_size=batch_size, normalize_embeddings=True)

    def st_naive(texts: list[str]) -> np.ndarray:
        parts = [
            plain.encode(
                texts[i : i + batch_size], batch_size=batch_size, normalize_embeddings=True
            )
            for i in range(0, len(texts), batch_size)
        ]
        return np.vstack(parts)

    paths: dict[str, Any] = {"sentence-transformers": st_plain, "naive batches": st_naive}
    for backend, precision in OURS:
        enc = ItemEncoder(
            EncoderConfig(backend=backend, precision=precision, batch_size=batch_size)
        )
        name = f"ours {backend} {precision}"
        load[name], _ = timed(enc.load)
        paths[name] = enc.encode
    return paths, load


def bench_encoders(
    corpora: dict[str, list[str]], repeat: int, batch_size: int
) -> list[dict[str, Any]]:
    """Median seconds, items/s, ratio to ours fp32 and cosine to ours fp32, per corpus."""
    paths, load = encoder_paths(batch_size)
    rows: list[dict[str, Any]] = []
    for corpus, texts in corpora.items():
        for fn in paths.values():
            fn(texts[:64])  # warm-up
        times: dict[str, list[float]] = {name: [] for name in paths}
        vectors: dict[str, np.ndarray] = {}
        for r in range(repeat):
            for name, fn in paths.items():
                t, v = timed(lambda fn=fn, texts=texts: fn(texts))
                times[name].append(t)
                vectors[name] = v
                print(f"  {corpus} run {r + 1}: {name} {t:.1f} s", flush=True)
        ref_t = statistics.median(times[REFERENCE])
        ref = vectors[REFERENCE]
        for name in paths:
            t = statistics.median(times[name])
            cos = (vectors[name] * ref).sum(axis=1)
            rows.append(
                {
                    "corpus": corpus,
                    "texts": len(texts),
                    "mean_chars": round(float(np.mean([len(x) for x in texts])), 1),
                    "path": name,
                    "load_s": round(load[name], 2),
                    "seconds": round(t, 2),
                    "items_per_s": round(len(texts) / t, 1),
                    "speedup_vs_fp32": round(ref_t / t, 2),
                    "cosine_mean": round(float(cos.mean()), 4),
                    "cosine_min": round(float(cos.min()), 4),
                    "samples_s": [round(x, 2) for x in times[name]],
                }
            )
    return rows


def cli_build(home: Path) -> tuple[float, dict[str, Any]]:
    """Wall seconds and JSON summary of `shopkeeper --home HOME features build --json`."""
    cmd = [sys.executable, "-c", "from shopkeeper.cli import main; main()"]
    t, out = timed(
        lambda: subprocess.run(
            [*cmd, "--home", str(home), "features", "build", "--json"],
            capture_output=True,
            text=True,
            check=True,
        )
    )
    return t, json.loads(out.stdout)


def bench_incremental(tmp: Path) -> dict[str, Any]:
    """Full build, then a rebuild after 1% of the titles change: as a user runs it (a new
    CLI process each time, model load included) and in one process with the model loaded,
    on the Online Retail sample; in one process on the Home Depot catalogue (if present)."""
    out: dict[str, Any] = {}
    ItemEncoder().load()  # the default ONNX export is cached before anything is timed
    runs: list[tuple[str, str, list[tuple[Path, str]]]] = [
        (mode, mode, [(SAMPLES / n, "online-retail") for n in
                      ("online-retail-2010-12.csv.gz", "online-retail-2011-01.csv.gz")])
        for mode in ("cli", "in-process")
    ]  # fmt: skip
    if HOME_DEPOT.is_dir():
        runs.append(("home-depot in-process", "in-process", [(HOME_DEPOT, "home-depot")]))
    for label, mode, sources in runs:
        ws = Workspace.at(tmp / f"incr-{label.replace(' ', '-')}")
        for path, adapter in sources:
            ingest(ws, IngestRequest(path, adapter))
        encoder = ItemEncoder()
        if mode == "cli":
            t_full, full = cli_build(ws.home)
        else:
            encoder.load()  # loaded once, before both builds
            t_full, full = timed(lambda ws=ws, e=encoder: build_features(ws, encoder=e))
        with Warehouse(ws, read_only=True) as wh:
            _, rows = wh.query("SELECT item_id, title FROM items ORDER BY item_id")
        changed = rows[::100]  # 1% of the items, spread over the catalog
        path = tmp / f"changed-{label.replace(' ', '-')}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["item_id", "title"])
            w.writerows((i, f"{t} (new edition)") for i, t in changed)
        ingest(ws, IngestRequest(path, "generic", "items"))
        if mode == "cli":
            t_incr, incr = cli_build(ws.home)
        else:
            t_incr, incr = timed(lambda ws=ws, e=encoder: build_features(ws, encoder=e))
        out[label] = {
            "items": full["items"],
            "model_id": full["model_id"],
            "full_s": round(t_full, 2),
            "full_encoded": full["encoded"],
            "changed_items": len(changed),
            "rebuild_s": round(t_incr, 2),
            "rebuild_encoded": incr["encoded"],
            "rebuild_reused": incr["reused"],
            "speedup": round(t_full / t_incr, 1),
            "full_steps_s": full.get("step_seconds"),
            "rebuild_steps_s": incr.get("step_seconds"),
        }
        steps_full, steps_incr = full.get("step_seconds") or {}, incr.get("step_seconds") or {}
        if steps_full.get("embeddings") and steps_incr.get("embeddings"):
            out[label]["embeddings_speedup"] = round(
                steps_full["embeddings"] / steps_incr["embeddings"], 1
            )
        print(f"  incremental ({label}): {out[label]}", flush=True)
    return out


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean share of each query's exact top-k that the index returned."""
    return float(
        np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(found, truth, strict=True)])
    )


def bench_ann(datasets: dict[str, np.ndarray], n_queries: int, seed: int) -> list[dict[str, Any]]:
    """Exact vs HNSW (default settings, forced): build s, queries/s, recall@10."""
    rng = np.random.default_rng(seed)
    rows = []
    for name, data in datasets.items():
        queries = data[rng.permutation(len(data))[:n_queries]]  # `similar` asks for items
        t_exact, (exact, _) = timed(lambda d=data: build_ann(d, IndexConfig()))
        forced = IndexConfig(exact_max_items=1)
        t_hnsw, (hnsw, kind) = timed(lambda d=data, c=forced: build_ann(d, c))
        assert kind == "hnsw"
        tq_exact, (_, truth) = timed(lambda q=queries, e=exact: e.search(q, 10))
        tq_hnsw, (_, found) = timed(lambda q=queries, h=hnsw: h.search(q, 10))
        cfg = IndexConfig()
        rows.append(
            {
                "data": name,
                "n": len(data),
                "dim": data.shape[1],
                "hnsw": f"M={cfg.hnsw_m}, efConstruction={cfg.ef_construction}, "
                f"efSearch={cfg.ef_search}",
                "exact_build_s": round(t_exact, 3),
                "hnsw_build_s": round(t_hnsw, 2),
                "exact_qps": round(len(queries) / tq_exact),
                "hnsw_qps": round(len(queries) / tq_hnsw),
                "recall_at_10": round(recall_at_k(found, truth, 10), 4),
            }
        )
        print(f"  ann: {rows[-1]}", flush=True)
    return rows


def markdown(res: dict[str, Any]) -> str:
    """The results as Markdown tables."""
    lines = [
        f"Encoder benchmark on {res['machine']}, batch size {res['batch_size']}, median of "
        f"{res['repeat']}; encoders measured {res.get('encoders_started')}, incremental "
        f"{res.get('incremental_started')}, ANN {res.get('ann_started')}.",
        "",
        "| corpus | texts | mean chars | path | load s | median s | items/s | vs torch fp32 | "
        "best s | items/s | vs torch fp32 | cosine mean | cosine min |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    best_ref = {r["corpus"]: min(r["samples_s"]) for r in res["encoders"] if r["path"] == REFERENCE}
    for r in res["encoders"]:
        best = min(r["samples_s"])
        lines.append(
            f"| {r['corpus']} | {r['texts']} | {r['mean_chars']} | {r['path']} | {r['load_s']} | "
            f"{r['seconds']} | {r['items_per_s']} | {r['speedup_vs_fp32']}× | {best} | "
            f"{r['texts'] / best:.1f} | {best_ref[r['corpus']] / best:.2f}× | "
            f"{r['cosine_mean']} | {r['cosine_min']} |"
        )
    lines += [
        "",
        "| run | items | full build s | changed | rebuild s | encoded | reused | speed-up |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {mode} | {r['items']} | {r['full_s']} | {r['changed_items']} | {r['rebuild_s']} | "
        f"{r['rebuild_encoded']} | {r['rebuild_reused']} | {r['speedup']}× |"
        for mode, r in res["incremental"].items()
    ]
    lines += [
        "",
        "| data | n | dim | exact build s | exact q/s | HNSW build s | HNSW q/s | recall@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['data']} | {r['n']} | {r['dim']} | {r['exact_build_s']} | {r['exact_qps']} | "
        f"{r['hnsw_build_s']} | {r['hnsw_qps']} | {r['recall_at_10']} |"
        for r in res["ann"]
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write `embed-results.json` and `.md` under `--out`."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--texts", type=int, default=3000, help="texts per corpus")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--random-sizes", default="3000,20000", help="random vectors for ANN")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    ap.add_argument(
        "--parts",
        default="encoders,incremental,ann",
        help="what to run; parts left out keep their figures from an earlier results file",
    )
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))
    results = args.out / "embed-results.json"
    res: dict[str, Any] = json.loads(results.read_text()) if results.is_file() else {}
    res |= {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"torch threads, torch {torch.__version__}",
        "torch_threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "repeat": args.repeat,
    }
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ["SHOPKEEPER_CACHE_DIR"] = str(tmp / "cache")  # ONNX exports start empty
        corpora = {
            "online-retail": sample(
                corpus_texts(
                    Workspace.at(tmp / "or"),
                    [
                        (SAMPLES / n, "online-retail")
                        for n in sorted(p.name for p in SAMPLES.glob("online-retail-*.csv.gz"))
                    ],
                ),
                args.texts,
                args.seed,
            )
        }
        if HOME_DEPOT.is_dir():
            corpora["home-depot"] = sample(
                corpus_texts(Workspace.at(tmp / "hd"), [(HOME_DEPOT, "home-depot")]),
                args.texts,
                args.seed,
            )
        print(f"corpora: { {k: len(v) for k, v in corpora.items()} }", flush=True)
        if "encoders" in parts:
            res["encoders"] = bench_encoders(corpora, args.repeat, args.batch_size)
            res["encoders_started"] = res["started"]
        if "incremental" in parts:
            res["incremental"] = bench_incremental(tmp)
            res["incremental_started"] = res["started"]
        if "ann" in parts:
            rng = np.random.default_rng(args.seed)
            datasets: dict[str, np.ndarray] = {}
            for n in (int(x) for x in args.random_sizes.split(",") if x):
                x = rng.standard_normal((n, 384)).astype(np.float32)
                datasets[f"random unit {n}"] = x / np.linalg.norm(x, axis=1, keepdims=True)
            encoder = ItemEncoder()  # the default path: the vectors `similar` searches
            for name, texts in corpora.items():
                datasets[f"{name} embeddings"] = encoder.encode(texts)
            res["ann"] = bench_ann(datasets, 500, args.seed)
            res["ann_started"] = res["started"]
    args.out.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(res, indent=2))
    md = markdown(res)
    (args.out / "embed-results.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
