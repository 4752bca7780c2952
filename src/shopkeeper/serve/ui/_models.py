"""Page data of the models page: evaluations, training curves, compression, the live one."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import duckdb

from shopkeeper.ingest import quote_ident
from shopkeeper.serve.ui._svg import bar_chart, line_chart
from shopkeeper.warehouse import Warehouse

if TYPE_CHECKING:
    from shopkeeper.warehouse import AssetVersion, Workspace

REC_MODEL = "rec_model"
REC_REPORT = "rec_report"
HEADLINE = "NDCG@10"
"""The metric the charts compare."""


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
        "prune": cfg.get("prune"),
        "quantize": cfg.get("quantize"),
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
    segments: dict[str, dict[str, Any]] = {}
    for model, seg, metric, value, users in rows:
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


def _timings(wh: Warehouse, v: AssetVersion) -> list[dict[str, Any]]:
    """Fit and evaluation seconds per model, from the stored `report.json`."""
    for path in wh.files(v.asset, v.version, "artifact"):
        if path.name == "report.json" and path.is_file():
            report = json.loads(path.read_text(encoding="utf-8"))
            return [
                {
                    "model": m.get("model"),
                    "fit_seconds": m.get("fit_seconds"),
                    "eval_seconds": m.get("eval_seconds"),
                    "skipped": m.get("skipped"),
                }
                for m in report.get("models", [])
            ]
    return []


def models_overview(ws: Workspace, live_version: int) -> dict[str, Any]:
    """Every trained model version and the latest evaluation reports."""
    with Warehouse(ws, read_only=True) as wh:
        models = wh.latest(REC_MODEL) and wh.versions(REC_MODEL)
        reports = wh.latest(REC_REPORT) and wh.versions(REC_REPORT)
        evaluations = [_evaluation(wh, v) for v in reversed(reports or [])][:3]
    rows = [_model_row(v, live_version) for v in reversed(models or [])]
    return {
        "live_version": live_version,
        "models": rows,
        "evaluations": evaluations,
        "curves": [r for r in rows if r["curves"]],
        "compression": [r for r in rows if r["parameters"] or r["prune"] or r["quantize"]],
    }
