"""Page data of the models page: evaluations, training curves, compression, the live one.

The compression trade-offs are the measured figures of the newest `rec_report` with a
`compression` section (`evaluate rec --model sasrec`): each compressed copy of the fitted
SASRec with its accuracy and scoring latency beside the full model's.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import duckdb

from shopkeeper.ingest import quote_ident
from shopkeeper.serve.ui._svg import bar_chart, line_chart, scatter_chart
from shopkeeper.warehouse import Warehouse

if TYPE_CHECKING:
    from shopkeeper.warehouse import AssetVersion, Workspace

REC_MODEL = "rec_model"
REC_REPORT = "rec_report"
HEADLINE = "NDCG@10"
"""The metric the charts compare."""
COMPRESSION_COMMAND = "shopkeeper evaluate rec --model sasrec --compress int8,prune50"
"""What produces the compression section (shown when no report has one)."""


def _curves(info: dict[str, Any]) -> list[Any]:
    """One chart per numeric field of the stored per-epoch history (none stored: empty)."""
    history = info.get("history")
    if not isinstance(history, list):
        return []
    series: dict[str, list[tuple[float, float]]] = {}
    for h in history:
        if not isinstance(h, dict) or not isinstance(h.get("epoch"), int | float):
            continue
        for key, val in h.items():
            if key not in ("epoch", "seconds") and isinstance(val, int | float):
                series.setdefault(key, []).append((float(h["epoch"]), float(val)))
    return [line_chart({k: pts}, title=k, x_label="epoch") for k, pts in series.items()]


def _model_row(v: AssetVersion, live: int) -> dict[str, Any]:
    p = v.params
    cfg = p.get("config") or {}
    info = p.get("info") or {}
    return {
        "version": v.version,
        "model": p.get("model"),
        "live": v.version == live,
        "created_at": v.created_at.isoformat(timespec="seconds"),
        "config": json.dumps(cfg, sort_keys=True),
        "users": p.get("users"),
        "items": p.get("items"),
        "interactions": p.get("interactions"),
        "events_version": p.get("events_version"),
        "embeddings_version": p.get("embeddings_version"),
        "fit_seconds": p.get("fit_seconds"),
        "parameters": info.get("parameters"),
        "epochs": info.get("epochs"),
        "best_epoch": info.get("best_epoch"),
        "stopped": info.get("stopped"),
        "curves": _curves(info),
    }


def _evaluation(wh: Warehouse, v: AssetVersion) -> dict[str, Any]:
    """One report version as tables per segment (models x metrics) and a headline chart."""
    view = quote_ident(f"{v.asset}_v{v.version}")
    try:
        rows = wh.con.execute(
            f"SELECT model, segment, metric, value, users FROM {view} ORDER BY ALL"
        ).fetchall()
    except duckdb.Error:
        rows = []
    compression = v.params.get("compression") or {}
    variants = {f"{compression.get('model')}:{n}" for n in compression.get("variants", [])}
    segments: dict[str, dict[str, Any]] = {}
    for model, seg, metric, value, users in rows:
        if model in variants:
            continue  # compressed copies: in the trade-off table, not among the baselines
        s = segments.setdefault(seg, {"metrics": [], "models": {}, "users": users})
        if metric not in s["metrics"]:
            s["metrics"].append(metric)
        s["models"].setdefault(model, {})[metric] = value
    for s in segments.values():
        for metric in s["metrics"]:
            vals = [m.get(metric) for m in s["models"].values() if m.get(metric) is not None]
            s.setdefault("best", {})[metric] = max(vals) if vals else None
    overall = segments.get("all", {"models": {}})["models"]
    bars = [(m, float(vals[HEADLINE])) for m, vals in overall.items() if HEADLINE in vals]
    timings = _timings(wh, v)
    return {
        "version": v.version,
        "created_at": v.created_at.isoformat(timespec="seconds"),
        "protocol": v.params.get("protocol") or {},
        "segments": segments,
        "chart": bar_chart(sorted(bars, key=lambda b: -b[1]), title=f"{HEADLINE}, all users")
        if bars
        else None,
        "timings": timings,
    }


def _report_json(wh: Warehouse, v: AssetVersion) -> dict[str, Any]:
    """The stored `report.json` of a report version (empty when there is none)."""
    for path in wh.files(v.asset, v.version, "artifact"):
        if path.name == "report.json" and path.is_file():
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return data
    return {}


def _timings(wh: Warehouse, v: AssetVersion) -> list[dict[str, Any]]:
    """Fit and evaluation seconds per model, from the stored `report.json`."""
    return [
        {
            "model": m.get("model"),
            "fit_seconds": m.get("fit_seconds"),
            "eval_seconds": m.get("eval_seconds"),
            "skipped": m.get("skipped"),
        }
        for m in _report_json(wh, v).get("models", [])
    ]


def _compression(wh: Warehouse, reports: list[AssetVersion]) -> dict[str, Any] | None:
    """The trade-off table and chart of the newest report with a compression section."""
    v = next((r for r in reversed(reports) if r.params.get("compression")), None)
    report = _report_json(wh, v) if v is not None else {}
    sec = report.get("compression")
    if v is None or not sec:
        return None
    k0 = report["protocol"]["ks"][0]
    hit = f"{'HR' if report['protocol']['split'] == 'leave_one_out' else 'Recall'}@{k0}"
    ndcg = f"NDCG@{k0}"
    rows = [_variant_row(x, ndcg, hit) for x in sec["variants"]]
    points = [(r["variant"], r["ms_per_user"], r["ndcg"]) for r in rows if r["ms_per_user"]]
    lat = sec["latency"]
    return {
        "version": v.version,
        "created_at": v.created_at.isoformat(timespec="seconds"),
        "model": sec["model"],
        "users": report["data"]["evaluated_users"],
        "ndcg_name": ndcg,
        "hit_name": hit,
        "latency": lat,
        "rows": rows,
        "chart": scatter_chart(
            points,
            title=f"{ndcg} against scoring latency",
            x_label=f"ms per user ({lat['batch_users']} a call)",
            y_label=ndcg,
        )
        if points
        else None,
    }


def _variant_row(x: dict[str, Any], ndcg: str, hit: str) -> dict[str, Any]:
    m, change, w = x["metrics"]["all"], x["change"], x["weights"]
    ms, ms_change = x.get("latency_ms") or {}, x.get("latency_change") or {}
    steps = [f"{x['prune']:.0%} pruned"] if x.get("prune") else []
    steps += [f"{x['quantize']} dynamic"] if x.get("quantize") not in (None, "none") else []
    return {
        "variant": x["variant"],
        "steps": ", ".join(steps),
        "users": m.get("users"),
        "ndcg": m.get(ndcg),
        "ndcg_change": change.get(ndcg),
        "hit": m.get(hit),
        "hit_change": change.get(hit),
        "ms_per_user": ms.get("per_user"),
        "ms_batch": ms.get("batch"),
        "ms_single": ms.get("single_user"),
        "latency_change": ms_change.get("per_user"),
        "parameters": w.get("parameters"),
        "linear_weights": w.get("linear_weights"),
        "nonzero_linear_weights": w.get("nonzero_linear_weights"),
        "size_mb": w["size_bytes"] / 1e6 if w.get("size_bytes") else None,
    }


def models_overview(ws: Workspace, live_version: int) -> dict[str, Any]:
    """Every trained model version and the latest evaluation reports."""
    with Warehouse(ws, read_only=True) as wh:
        models = wh.latest(REC_MODEL) and wh.versions(REC_MODEL)
        reports = wh.latest(REC_REPORT) and wh.versions(REC_REPORT)
        evaluations = [_evaluation(wh, v) for v in reversed(reports or [])][:3]
        compression = _compression(wh, reports or [])
    rows = [_model_row(v, live_version) for v in reversed(models or [])]
    return {
        "live_version": live_version,
        "models": rows,
        "evaluations": evaluations,
        "curves": [r for r in rows if r["curves"]],
        "compression": compression,
        "compression_command": COMPRESSION_COMMAND,
    }
