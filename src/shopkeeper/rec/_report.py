"""`evaluate rec`: read, split, fit and evaluate each model, and store the report as an asset.

The report asset `rec_report` holds `metrics.parquet` (one row per model, segment and
metric; the asset's SQL view), `report.json` and `report.md`, with lineage to the
events version it was computed on and the embeddings version the content model read.
With `compress`, SASRec's compressed copies are measured too (see `_compression`): a
`compression` section in the JSON and markdown, and rows `sasrec:<variant>` in the table.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shopkeeper.errors import NotFoundError
from shopkeeper.features import (
    EMBEDDINGS_ASSET,
    ITEM_FEATURES_ASSET,
    read_embeddings,
    read_item_attributes,
    read_item_texts,
)
from shopkeeper.logging import Stopwatch, get_logger
from shopkeeper.rec._assets import commit_report_version
from shopkeeper.rec._compression import (
    FULL,
    CompressibleScorer,
    evaluate_compression,
    parse_compression,
)
from shopkeeper.rec._data import read_interactions
from shopkeeper.rec._protocol import (
    SEGMENTS,
    EvalConfig,
    eval_users,
    evaluate_scorer,
    fingerprint,
    make_split,
    targets_of,
)
from shopkeeper.rec._scorer import RecScorer, TrainingData, create_scorer
from shopkeeper.warehouse import Warehouse, new_build_id

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

    from shopkeeper.rec._data import Histories, Interactions
    from shopkeeper.rec._splits import Split
    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)

REPORT_ASSET = "rec_report"
BASELINES = ("popularity", "itemknn", "ease", "als", "content")
"""What `--model all` evaluates (plus `random`, the floor)."""


def run_evaluation(
    ws: Workspace,
    models: Sequence[str],
    cfg: EvalConfig | None = None,
    *,
    model_configs: dict[str, dict[str, Any]] | None = None,
    skip_unavailable: bool = False,
    save: bool = True,
    time_budget_s: float | None = None,
    fitted: dict[str, RecScorer[Any]] | None = None,
    compress: Sequence[str] = (),
) -> dict[str, Any]:
    """Evaluate `models` under one protocol and (by default) store the report as an asset.

    Args:
        ws: The workspace (must hold events).
        models: Scorer names (`popularity`, `itemknn`, `ease`, `als`, `content`, `random`).
        cfg: The protocol.
        model_configs: Per-model config overrides, JSON data.
        skip_unavailable: Report a model whose inputs are missing (no embeddings for
            `content`) as skipped instead of failing.
        save: Store the report as a new `rec_report` version.
        time_budget_s: Seconds each trained model (SASRec) may spend fitting; it stops
            with its best checkpoint at the budget.
        fitted: When given, receives each fitted scorer by name (e.g. to compress one).
        compress: Compressed variants of the fitted SASRec to measure beside it (e.g.
            `int8`, `prune50`; see `parse_compression`); nothing when SASRec is not run.

    Returns:
        The report: protocol, data, per-model metrics, `compression` when variants were
        measured; `asset`/`version` when saved.

    Raises:
        NotFoundError: no events, or no embeddings for `content` without `skip_unavailable`.
        ConfigError: an unknown compression variant.
    """
    cfg = cfg or EvalConfig()
    for name in compress:
        parse_compression(name)  # fail before any fitting
    configs = {"random": {"seed": cfg.seed}, **(model_configs or {})}
    scorers = [create_scorer(name, configs.get(name)) for name in models]
    with Warehouse(ws, read_only=True) as wh:
        inter = read_interactions(
            wh,
            cfg.event_types,
            version=cfg.events_version,
            min_value=cfg.min_value,
            dedupe=cfg.dedupe,
            k_core=cfg.k_core,
            seed=cfg.seed,
        )
        vectors, emb_version = None, None
        if any(s.needs_item_vectors or s.uses_item_vectors for s in scorers):
            optional = skip_unavailable or not any(s.needs_item_vectors for s in scorers)
            vectors, emb_version = item_vectors_for(wh, inter.item_ids, optional)
        texts = None
        if any(s.wants_item_texts for s in scorers):
            texts = read_item_texts(wh, inter.item_ids)
        attrs = None
        if any(s.uses_item_attributes for s in scorers):
            attrs = read_item_attributes(wh, inter.item_ids)
    split = make_split(inter, cfg)
    targets = targets_of(split, cfg)
    users = eval_users(targets, cfg)
    data = TrainingData(
        split.train,
        vectors,
        time_budget_s=time_budget_s,
        item_texts=texts,
        item_attributes=None if attrs is None else attrs[0],
    )
    results = [_run_one(s, data, split, cfg, users, targets) for s in scorers]
    if fitted is not None:
        fitted.update({s.name: s for s in scorers if s.fitted})
    report: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(),
        "protocol": _protocol(cfg),
        "data": _data_summary(inter, split, users, cfg),
        "embeddings_version": emb_version,
        "item_features_version": None if attrs is None else attrs[1],
        "models": results,
    }
    report["best"] = _best(results, cfg)
    base = next((s for s in scorers if s.fitted and isinstance(s, CompressibleScorer)), None)
    if compress and base is not None:
        base_metrics = next(r["metrics"] for r in results if r["model"] == base.name)
        report["compression"] = evaluate_compression(
            base, base_metrics, compress, split, cfg, users, targets
        )
    if save:
        report["asset"] = REPORT_ASSET
        report["version"] = save_report(ws, report)
    return report


def _run_one(
    scorer: RecScorer[Any],
    data: TrainingData,
    split: Split,
    cfg: EvalConfig,
    users: npt.NDArray[np.int64],
    targets: Histories,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"model": scorer.name, "config": scorer.dump_config()}
    if scorer.needs_item_vectors and data.item_vectors is None:
        return {**entry, "skipped": "no item embeddings; run `shopkeeper features build`"}
    timer = Stopwatch()
    scorer.fit(data)
    fit_seconds = timer.seconds
    timer = Stopwatch()
    metrics = evaluate_scorer(scorer, split, cfg, users, targets)
    eval_seconds = timer.seconds
    _log.info(
        "evaluated", model=scorer.name, fit=round(fit_seconds, 2), eval=round(eval_seconds, 2)
    )
    return {
        **entry,
        "fingerprint": fingerprint(scorer),
        "source": "fitted in this run",
        "info": scorer.info,
        "fit_seconds": round(fit_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        "metrics": metrics,
    }


def item_vectors_for(
    wh: Warehouse, item_ids: list[str], skip_unavailable: bool
) -> tuple[npt.NDArray[np.float32] | None, int | None]:
    """The latest embeddings aligned to `item_ids` (zero rows where missing)."""
    emb = wh.latest(EMBEDDINGS_ASSET)
    if emb is None:
        if skip_unavailable:
            return None, None
        raise NotFoundError("no item embeddings yet; run `shopkeeper features build` first")
    ids, vectors = read_embeddings(wh, emb.version)
    pos = pc.index_in(pa.array(item_ids, pa.string()), value_set=pa.array(ids, pa.string()))
    found = pos.is_valid().to_numpy(zero_copy_only=False)
    out = np.zeros((len(item_ids), vectors.shape[1] if len(ids) else 0), dtype=np.float32)
    out[found] = vectors[pos.drop_null().to_numpy()]
    return out, emb.version


def _protocol(cfg: EvalConfig) -> dict[str, Any]:
    return {
        **cfg.model_dump(mode="json"),
        "ranking": "full: every catalog item, no sampled negatives",
        "catalog": "items with at least one kept interaction",
        "empty_history": "scored by training popularity (random: random)",
    }


def _data_summary(
    inter: Interactions,
    split: Split,
    users: npt.NDArray[np.int64],
    cfg: EvalConfig,
) -> dict[str, Any]:
    cold_users = split.train.lengths[users] < cfg.cold_user_threshold
    cutoff = (
        datetime.fromtimestamp(split.cutoff_us / 1e6, UTC).isoformat()
        if split.cutoff_us is not None
        else None
    )
    return {
        "events_version": inter.events_version,
        "event_types": list(inter.event_types),
        "users": inter.n_users,
        "items": inter.n_items,
        "interactions": len(inter),
        "train_interactions": len(split.train.items),
        "test_interactions": len(split.test.items),
        "evaluated_users": len(users),
        "cold_users": int(cold_users.sum()),
        "cold_items": int((split.item_train_counts() < cfg.cold_item_threshold).sum()),
        "cutoff": cutoff,
    }


def _best(results: list[dict[str, Any]], cfg: EvalConfig) -> dict[str, str]:
    ran = [r for r in results if "metrics" in r and r["model"] != "random"]
    out = {}
    for k in cfg.ks:
        key = f"NDCG@{k}"
        if ran:
            out[key] = max(ran, key=lambda r: r["metrics"]["all"][key])["model"]
    return out


def table_columns(report: dict[str, Any]) -> list[str]:
    """Metric names shown in tables: HR (or Recall when targets are sets), NDCG, MRR per k."""
    first = "HR" if report["protocol"]["split"] == "leave_one_out" else "Recall"
    ks = report["protocol"]["ks"]
    return [f"{m}@{k}" for k in ks for m in (first, "NDCG", "MRR")]


def render_markdown(report: dict[str, Any]) -> str:
    """The report as a markdown document."""
    p, d = report["protocol"], report["data"]
    cols = table_columns(report)
    k0 = p["ks"][0]
    lines = [
        f"# Recommendation evaluation ({p['split']})",
        "",
        f"events v{d['events_version']} ({', '.join(d['event_types'])}), "
        f"{d['users']:,} users, {d['items']:,} items, {d['interactions']:,} interactions "
        f"(dedupe {p['dedupe']}, {p['k_core']}-core); {d['evaluated_users']:,} users "
        f"evaluated, full ranking, seen items {'excluded' if p['exclude_seen'] else 'kept'}, "
        f"seed {p['seed']}.",
    ]
    for seg in SEGMENTS:
        lines += ["", f"## {seg.replace('_', ' ')}", ""]
        extra = [f"coverage@{k0}"] if seg == "all" else []
        header = ["model", "users", *cols, *extra, f"novelty@{k0}", "fit s"]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for r in report["models"]:
            if "metrics" not in r:
                lines.append(f"| {r['model']} | skipped: {r['skipped']} |")
                continue
            m = r["metrics"][seg]
            vals = [f"{m.get(c, 0.0):.4f}" for c in [*cols, *extra]]
            nov_key = f"novelty@{k0}"
            nov = f"{m[nov_key]:.2f}" if nov_key in m else "–"
            lines.append(
                f"| {r['model']} | {m['users']:,} | {' | '.join(vals)} | {nov} | "
                f"{r['fit_seconds']:.2f} |"
            )
    lines += compression_markdown(report)
    return "\n".join(lines) + "\n"


def compression_markdown(report: dict[str, Any]) -> list[str]:
    """The compression section as markdown lines (none without one)."""
    sec = report.get("compression")
    if not sec:
        return []
    first = table_columns(report)[0].split("@")[0]
    k0 = report["protocol"]["ks"][0]
    ndcg, hit = f"NDCG@{k0}", f"{first}@{k0}"
    lat = sec["latency"]
    lines = [
        "",
        f"## compression ({sec['model']})",
        "",
        f"The fitted {sec['model']} compressed without retraining, on the same "
        f"{report['data']['evaluated_users']:,} users. Latency: median of {lat['repeats']} "
        f"rounds, {lat['batch_users']} users a call and one user a call, "
        f"torch threads: {lat['threads']}; Δ is relative to {FULL}.",
        "",
        f"| variant | {ndcg} | Δ | {hit} | Δ | ms/user ({lat['batch_users']} a call) | Δ "
        "| ms (1 user) | nonzero linear weights | size MB |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for v in sec["variants"]:
        m, ch, w = v["metrics"]["all"], v["change"], v["weights"]
        ms, msc = v["latency_ms"] or {}, v["latency_change"] or {}
        cells = [
            v["variant"],
            f"{m[ndcg]:.4f}",
            signed_percent(ch.get(ndcg)),
            f"{m[hit]:.4f}",
            signed_percent(ch.get(hit)),
            f"{ms['per_user']:.3f}" if ms else "–",
            signed_percent(msc.get("per_user")),
            f"{ms['single_user']:.2f}" if ms else "–",
            f"{w['nonzero_linear_weights']:,} / {w['linear_weights']:,}",
            f"{w['size_bytes'] / 1e6:.2f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def signed_percent(x: float | None) -> str:
    """A relative change as a signed percentage ('–' when there is none).

    >>> signed_percent(-0.0123), signed_percent(0.0), signed_percent(None)
    ('-1.2%', '+0.0%', '–')
    """
    return "–" if x is None else f"{x:+.1%}"


_SCHEMA: list[dict[str, Any]] = [
    {
        "name": "model",
        "type": "string",
        "nullable": False,
        "doc": "Scorer name; `sasrec:int8` and the like: a compressed variant.",
    },
    {"name": "segment", "type": "string", "nullable": False, "doc": "all, cold_users, cold_items."},
    {"name": "metric", "type": "string", "nullable": False, "doc": "e.g. NDCG@10, coverage@10."},
    {"name": "value", "type": "double", "nullable": False, "doc": "Mean over the users."},
    {"name": "users", "type": "int64", "nullable": False, "doc": "Users in the segment."},
]


_ARROW_SCHEMA = pa.schema(
    [
        ("model", pa.string()),
        ("segment", pa.string()),
        ("metric", pa.string()),
        ("value", pa.float64()),
        ("users", pa.int64()),
    ]
)


def metrics_table(report: dict[str, Any]) -> pa.Table:
    """One row per (model, segment, metric)."""
    rows = [
        {
            "model": r["model"],
            "segment": seg,
            "metric": name,
            "value": float(value),
            "users": int(metrics["users"]),
        }
        for r in [*report["models"], *_variant_entries(report)]
        for seg, metrics in r.get("metrics", {}).items()
        for name, value in metrics.items()
        if name != "users"
    ]
    return pa.Table.from_pylist(rows, schema=_ARROW_SCHEMA)


def _variant_entries(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The compressed variants as model entries (`sasrec:int8`); the full one is a model."""
    sec = report.get("compression") or {}
    return [v for v in sec.get("variants", []) if v["variant"] != FULL]


def save_report(ws: Workspace, report: dict[str, Any]) -> int:
    """Store `report` as a new `rec_report` version; return the version."""
    build_id = new_build_id()
    tmp = ws.tmp_dir / build_id
    table = metrics_table(report)
    parents = [("events", report["data"]["events_version"], "evaluated_on")]
    if report.get("embeddings_version") is not None:
        parents.append((EMBEDDINGS_ASSET, report["embeddings_version"], "item_text_from"))
    if report.get("item_features_version") is not None:
        parents.append(
            (ITEM_FEATURES_ASSET, report["item_features_version"], "item_attributes_from")
        )
    params = {
        "protocol": report["protocol"],
        "events_version": report["data"]["events_version"],
        "models": [
            {k: r.get(k) for k in ("model", "config", "fingerprint", "source", "skipped")}
            for r in report["models"]
        ],
    }
    if report.get("compression"):
        sec = report["compression"]
        params["compression"] = {
            "model": sec["model"],
            "variants": [v["variant"] for v in sec["variants"] if v["variant"] != FULL],
        }
    with ws.write_lock():
        tmp.mkdir(parents=True, exist_ok=True)
        try:
            pq.write_table(table, tmp / "metrics.parquet")
            (tmp / "report.json").write_text(json.dumps(report, indent=2, default=str))
            (tmp / "report.md").write_text(render_markdown(report))
            version = commit_report_version(
                ws,
                REPORT_ASSET,
                build_id,
                params=params,
                rows=len(table),
                schema=_SCHEMA,
                files=[
                    ("data", tmp / "metrics.parquet", len(table)),
                    ("artifact", tmp / "report.json", 1),
                    ("artifact", tmp / "report.md", 1),
                ],
                parents=parents,
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _log.info("saved evaluation report", asset=REPORT_ASSET, version=version)
    return version


def read_report(ws: Workspace, version: int | None = None) -> dict[str, Any]:
    """A stored report (the latest by default), as JSON data."""
    with Warehouse(ws, read_only=True) as wh:
        v = wh.version(REPORT_ASSET, version).version
        paths = [p for p in wh.files(REPORT_ASSET, v, "artifact") if p.name == "report.json"]
    data: dict[str, Any] = json.loads(paths[0].read_text())
    return {**data, "version": v}
