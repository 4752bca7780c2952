"""`shopkeeper demo`: the end-to-end job on the bundled Online Retail sample: ingest, embed,
search, evaluate and train a recommender, recommend."""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.panel import Panel
from rich.table import Table

from shopkeeper.cli._app import State, cli, console, emit_json, json_option
from shopkeeper.cli._demo_serve import render_serve_tour, serve_tour
from shopkeeper.cli._features import item_titles, render_build, titles
from shopkeeper.cli._ingest import render_results
from shopkeeper.features import (
    DUPLICATES_ASSET,
    FeaturesConfig,
    ItemEncoder,
    build_features,
    load_item_index,
)
from shopkeeper.search import Searcher
from shopkeeper.warehouse import IngestRequest, Warehouse, ingest, lineage_graph

if TYPE_CHECKING:
    from rich.console import Console

SAMPLES = ("online-retail-2010-12.csv.gz", "online-retail-2011-01.csv.gz")


def sample_path(name: str) -> Path:
    """Path of a bundled sample file."""
    with as_file(files("shopkeeper.samples") / name) as p:
        return Path(p)


def _features(
    state: State, c: Console, encoder: ItemEncoder
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Build the sample's item embeddings and index; None (and why) without the ml extra."""
    if not state.json:
        c.rule("features build")
    try:
        out = build_features(state.workspace, FeaturesConfig(), encoder)
    except ImportError as exc:
        return None, {"skipped": str(exc)}
    if not state.json:
        render_build(out)
    return out, {}


def _similar(state: State, wh: Warehouse, item_ids: list[str]) -> dict[str, Any]:
    """The 3 nearest items of each of `item_ids`, with titles."""
    index = load_item_index(state.workspace)
    hits = {i: index.similar(i, 3) for i in item_ids}
    wanted = sorted({*item_ids, *(h["item_id"] for hs in hits.values() for h in hs)})
    names = item_titles(wh, wanted)
    return {
        i: {"title": names.get(i), "similar": [{**h, "title": names.get(h["item_id"])} for h in hs]}
        for i, hs in hits.items()
    }


def _render_similar(similar: dict[str, Any], features: dict[str, Any] | None) -> None:
    if features is None:
        console().print(f"Skipped item embeddings: {similar.get('skipped')}", highlight=False)
        return
    model = features["model_id"].split("@")[0]
    t = Table(title=f"Similar items by text embedding ({model}, FAISS)")
    for col in ("item", "3 most similar (cosine)"):
        t.add_column(col)
    for item_id, entry in similar.items():
        t.add_row(
            f"{item_id} {entry['title']}",
            "\n".join(f"{h['score']:.2f} {h['item_id']} {h['title']}" for h in entry["similar"]),
        )
    console().print(t)


DEMO_QUERIES = ("lunch bag", "luch bagg", "hanging heart holder", "haning hart holdr")
"""Searches the demo runs: two queries, each also with the typos shoppers make."""


def _duplicates(wh: Warehouse) -> list[dict[str, Any]]:
    """The best near-duplicate item pairs that `features build` reported."""
    v = wh.latest(DUPLICATES_ASSET)
    if v is None:
        return []
    pairs: list[dict[str, Any]] = v.quality.get("semantic_duplicates", {}).get("pairs", [])
    return pairs[:5]


def _searches(state: State, encoder: ItemEncoder) -> dict[str, Any]:
    """Top 3 items of each demo query (hybrid BM25 + vectors, with spelling correction)."""
    searcher = Searcher.open(state.workspace, encoder=encoder)
    hits = searcher.search(list(DEMO_QUERIES), 3)
    ids = sorted({h["item_id"] for hs in hits for h in hs})
    names = titles(state, ids)
    return {
        "model": searcher.name,
        "results": {
            q: [{**h, "title": names.get(h["item_id"])} for h in hs]
            for q, hs in zip(DEMO_QUERIES, hits, strict=True)
        },
    }


def _render_extras(duplicates: list[dict[str, Any]], searches: dict[str, Any]) -> None:
    c = console()
    if duplicates:
        t = Table(title="Near-duplicate items (embeddings + title similarity; never merged)")
        for col in ("score", "item", "item"):
            t.add_column(col)
        for p in duplicates:
            t.add_row(
                f"{p['score']:.2f}",
                f"{p['item_a']} {p['title_a']}",
                f"{p['item_b']} {p['title_b']}",
            )
        c.print(t)
    if searches.get("results"):
        t = Table(title=f"Search ({searches['model']}), with and without typos")
        for col in ("query", "top 3"):
            t.add_column(col)
        for q, hs in searches["results"].items():
            t.add_row(q, "\n".join(f"{h['item_id']} {h['title']}" for h in hs))
        c.print(t)


DEMO_CUSTOMERS = ("12347", "12583", "NEW-CUSTOMER")
"""Recommendations shown: two customers of the sample (their ids as the file gives them)
and one the shop has never seen, who gets the popularity ranking."""
REC_MODELS = ("popularity", "itemknn", "ease", "als", "content")
SASREC_CONFIG = {"max_epochs": 30}
TRAIN_BUDGET_S = 45.0
"""Seconds SASRec may train, once for the evaluation and once for serving (a CPU gets
through about 10-15 epochs of the sample in that time; `train rec` without a budget
trains to convergence)."""


def _rec_models() -> tuple[list[str], str, str | None]:
    """The models to evaluate, the one to train, and why SASRec is not evaluated (if not).

    The trained model is SASRec when it is installed, else EASE.
    """
    from shopkeeper.errors import PluginNotFoundError
    from shopkeeper.rec import get_scorer_class
    from shopkeeper.rec._train import DEFAULT_REC_MODEL

    try:
        get_scorer_class("sasrec")
    except (ImportError, PluginNotFoundError) as exc:  # not there, or no torch extra
        return list(REC_MODELS), "ease", f"sasrec is not installed: {exc}"
    return [*REC_MODELS, "sasrec"], DEFAULT_REC_MODEL, None


def _recommendations(state: State, encoder: ItemEncoder) -> dict[str, Any]:
    """Evaluate the recommenders, train the serving one and recommend for the demo users.

    A rerun on the same data reuses the stored report and model instead of fitting again.
    """
    from shopkeeper.cli._rec import DEFAULT_COMPRESSIONS
    from shopkeeper.rec import run_evaluation
    from shopkeeper.rec._recommend import recommend
    from shopkeeper.rec._train import train_rec

    ws = state.workspace
    models, main, note = _rec_models()
    configs = {"sasrec": SASREC_CONFIG}
    compress = list(DEFAULT_COMPRESSIONS) if "sasrec" in models else []
    report, trained = _stored_rec(state, models, main, configs, compress)
    if report is None or trained is None:
        click.echo(
            f"evaluating {', '.join(models)}; training {main} (budget {TRAIN_BUDGET_S:.0f} s) …",
            err=True,
        )
    if report is None:
        report = run_evaluation(
            ws,
            models,
            model_configs=configs,
            skip_unavailable=True,
            time_budget_s=TRAIN_BUDGET_S,
            compress=compress,
        )
    if trained is None:
        trained = train_rec(
            ws, main, config=configs.get(main), time_budget_s=TRAIN_BUDGET_S, encoder=encoder
        )
    recs = recommend(ws, list(DEMO_CUSTOMERS), 5)
    with Warehouse(ws, read_only=True) as wh:
        bought = _bought(state, wh, list(DEMO_CUSTOMERS))
        ids = sorted({e["item_id"] for es in recs.values() for e in es} | set(bought.values()))
        names = item_titles(wh, ids)
    return {
        "evaluation": report,
        "not_evaluated": note,
        "trained": trained,
        "recommendations": {
            u: {
                "last_bought": names.get(bought[u]) if u in bought else None,
                "items": [{**e, "title": names.get(e["item_id"])} for e in es],
            }
            for u, es in recs.items()
        },
    }


def _stored_rec(
    state: State,
    models: list[str],
    main: str,
    configs: dict[str, dict[str, Any]],
    compress: list[str],
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The latest report and model when built from today's events, embeddings and configs.

    The report also has to hold the `compress` variants (a report of an older demo
    without them is measured again).
    """
    from shopkeeper.features import EMBEDDINGS_ASSET
    from shopkeeper.rec import REPORT_ASSET, create_scorer, read_report
    from shopkeeper.rec._train import REC_MODEL_ASSET

    wanted = {m: create_scorer(m, configs.get(m)).dump_config() for m in models}
    main_config = create_scorer(main, configs.get(main)).dump_config()
    with Warehouse(state.workspace, read_only=True) as wh:
        events = wh.version("events").version
        emb = wh.latest(EMBEDDINGS_ASSET)
        inputs = {"events_version": events, "embeddings_version": emb and emb.version}
        rep, mod = wh.latest(REPORT_ASSET), wh.latest(REC_MODEL_ASSET)
    report = None
    variants = (rep.params.get("compression") or {}).get("variants", []) if rep else []
    if rep is not None and rep.params.get("events_version") == events and variants == compress:
        stored = read_report(state.workspace, rep.version)
        ran = {r["model"]: r.get("config") for r in stored["models"] if "skipped" not in r}
        if ran == wanted and stored.get("embeddings_version") == inputs["embeddings_version"]:
            report = {**stored, "reused": True}
    trained = None
    if (
        mod is not None
        and (mod.params["model"], mod.params["config"]) == (main, main_config)
        and mod.params["events_version"] == events
        and mod.params.get("embeddings_version") in (None, inputs["embeddings_version"])
    ):
        trained = {"asset": REC_MODEL_ASSET, "version": mod.version, **mod.params, "reused": True}
    return report, trained


def _bought(state: State, wh: Warehouse, raw_ids: list[str]) -> dict[str, str]:
    """The item each customer bought last (customers with purchases only)."""
    pseudo = state.workspace.keys.load(create=False)
    by_pseudonym = {pseudo.pseudonymize(u): u for u in raw_ids}
    rows = wh.con.execute(
        "SELECT user_id, arg_max(item_id, ts) FROM events "
        "WHERE event_type = 'purchase' AND list_contains(?, user_id) GROUP BY user_id",
        [list(by_pseudonym)],
    ).fetchall()
    return {by_pseudonym[p]: item for p, item in rows}


def _render_recommendations(recs: dict[str, Any]) -> None:
    if "skipped" in recs:
        console().print(f"Skipped recommendations: {recs['skipped']}", highlight=False)
        return
    from shopkeeper.cli._rec import render_report

    c = console()
    c.rule("evaluate rec")
    render_report(recs["evaluation"])
    if recs["not_evaluated"]:
        c.print(recs["not_evaluated"], highlight=False)
    tr = recs["trained"]
    c.rule(f"train rec --model {tr['model']}")
    c.print(
        f"{tr['asset']} v{tr['version']}: {tr['model']} fitted in {tr['fit_seconds']:.1f} s "
        f"on {tr['users']:,} customers and {tr['items']:,} items"
        + (" (reused: same events, embeddings and config)" if tr.get("reused") else ""),
        highlight=False,
    )
    t = Table(title=f"Recommended ({tr['model']}; already bought items excluded)")
    for col in ("customer", "last bought", "top 5"):
        t.add_column(col)
    for user, entry in recs["recommendations"].items():
        items = entry["items"]
        cold = bool(items) and "fallback" in items[0]
        t.add_row(
            user,
            entry["last_bought"] or ("never seen: popularity" if cold else "-"),
            "\n".join(f"{e['item_id']} {e['title']}" for e in items),
        )
    c.print(t)


def _highlights(wh: Warehouse) -> dict[str, Any]:
    _, top = wh.query(
        "SELECT i.item_id, i.title, count(*) AS purchases, round(sum(e.value), 2) AS revenue_gbp "
        "FROM events e JOIN items i USING (item_id) WHERE e.event_type = 'purchase' "
        "GROUP BY 1, 2 ORDER BY purchases DESC, i.title LIMIT 5"
    )
    _, returns = wh.query(
        "SELECT count(*) FILTER (WHERE event_type = 'return') AS returns, "
        "count(DISTINCT user_id) AS customers, min(ts) AS first, max(ts) AS last FROM events"
    )
    return {
        "top_items": [
            {"item_id": i, "title": t, "purchases": n, "revenue_gbp": r} for i, t, n, r in top
        ],
        "events": dict(zip(("returns", "customers", "first", "last"), returns[0], strict=True)),
    }


def _service(state: State, recs: dict[str, Any]) -> dict[str, Any]:
    """Start the service and talk to it (needs the serve extra and a trained model)."""
    try:
        import fastapi  # noqa: F401
    except ImportError:
        return {"skipped": 'the serve extra is not installed: pip install "shopkeeper[serve]"'}
    if "skipped" in recs:
        return {"skipped": "no recommender was trained"}
    return serve_tour(state)


@cli.command("demo")
@json_option
@click.pass_obj
def demo_cmd(state: State) -> None:
    """Ingest the bundled Online Retail sample (two months), embed its items, summarize."""
    c = console()
    results: list[dict[str, Any]] = []
    for name in SAMPLES:
        if not state.json:
            c.rule(f"ingest {name} --adapter online-retail")
        out = ingest(
            state.workspace, IngestRequest(sample_path(name), "online-retail"), state.settings
        )
        results.extend(out)
        if not state.json:
            render_results(out)
    encoder = ItemEncoder(FeaturesConfig().encoder)  # loaded once, for features and search
    features, similar = _features(state, c, encoder)
    with Warehouse(state.workspace, read_only=True) as wh:
        latest = wh.latest_versions()
        highlights = _highlights(wh)
        duplicates: list[dict[str, Any]] = []
        if features is not None:
            similar = _similar(state, wh, [r["item_id"] for r in highlights["top_items"][:3]])
            duplicates = _duplicates(wh)
        lineage = lineage_graph(wh, "events")
        quality = {
            v.asset: {
                "status": v.quality["status"],
                "rows": v.row_count,
                "source_nulls": v.quality.get("source_nulls", {}),
            }
            for v in latest
        }
    searches = _searches(state, encoder) if features is not None else {}
    try:
        recs = _recommendations(state, encoder)
    except ImportError as exc:  # no ml extra: no SciPy for the recommenders
        recs = {"skipped": str(exc)}
    tour = _service(state, recs)
    summary = {
        "workspace": str(state.workspace.home),
        "ingests": results,
        "assets": [v.summary() for v in latest],
        "quality": quality,
        "highlights": highlights,
        "lineage_of_events": sorted(lineage["nodes"]),
        "features": features,
        "similar": similar,
        "duplicates": duplicates,
        "searches": searches,
        "recommendations": recs,
        "service": tour,
    }
    if state.json:
        emit_json(summary)
        return
    t = Table(title="Warehouse after the demo: quality highlights of the last load")
    for col in ("asset", "version", "rows", "quality", "quarantined", "top quarantine reason"):
        t.add_column(col)
    for v in latest:
        load = v.quality.get("load", {})
        share = load.get("quarantined_rows", 0) / max(load.get("input_rows", 1), 1)
        bad = [
            (k, n)
            for k, n in v.reasons.items()
            if k not in ("superseded", "exact_duplicate", "near_duplicate")
        ]
        top_reason = f"{bad[0][0]} ({bad[0][1]:,})" if bad else "-"
        t.add_row(
            v.asset,
            f"v{v.version}",
            f"{v.row_count:,}",
            v.quality["status"],
            f"{share:.1%}",
            top_reason,
        )
    c.print(t)
    nulls = next(iter(quality.values()))["source_nulls"]
    c.print(
        "Source columns with missing values in the last file: "
        + ", ".join(f"{k} {n:,}" for k, n in nulls.items() if n),
        highlight=False,
    )
    top = Table(title="Top items by purchases (SQL over the clean assets)")
    for col in ("title", "purchases", "revenue GBP"):
        top.add_column(col)
    for r in highlights["top_items"]:
        top.add_row(r["title"], str(r["purchases"]), f"{r['revenue_gbp']:,.2f}")
    c.print(top)
    _render_similar(similar, features)
    _render_extras(duplicates, searches)
    _render_recommendations(recs)
    render_serve_tour(c, tour, str(state.workspace.home))
    ev = highlights["events"]
    c.print(
        Panel.fit(
            f"{ev['customers']:,} pseudonymized customers, {ev['returns']:,} returns, "
            f"events from {str(ev['first'])[:16]} to {str(ev['last'])[:16]} UTC.\n"
            f"Lineage of {lineage['root']}: "
            f"{sum(1 for n in lineage['nodes'] if n.startswith('asset:'))} asset versions and "
            f"{sum(1 for n in lineage['nodes'] if n.startswith('file:'))} source files upstream.\n"
            f"Try: shopkeeper --home {state.workspace.home} catalog | quality events | "
            'lineage events | quarantine events | sql "SELECT count(*) FROM events" | '
            'similar ITEM_ID --k 5 | search "luch bagg" | recommend 12347 --k 5',
            title="Highlights",
        )
    )
