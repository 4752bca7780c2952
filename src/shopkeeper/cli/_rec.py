"""`shopkeeper evaluate rec` (baselines under one full-ranking protocol, stored as a report)
and `shopkeeper recommend` (top items per user from the trained `rec_model`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich import box
from rich.table import Table

from shopkeeper.cli._app import (
    State,
    cli,
    console,
    emit_json,
    json_option,
    time_budget_option,
)
from shopkeeper.config import load_yaml_config

DEFAULT_COMPRESSIONS = ("int8", "prune50")
"""SASRec's compressed copies `evaluate rec` (and the demo) measure unless told otherwise:
int8 dynamic quantization, and magnitude pruning of half the linear weights."""

MODEL_CHOICES = ("popularity", "itemknn", "ease", "als", "content", "sasrec", "random", "all")
"""`all` is every baseline (popularity, itemknn, ease, als, content) plus random; `sasrec`
(the main model, trained to convergence: minutes on a CPU) runs only when named."""


@cli.group("evaluate")
def evaluate() -> None:
    """Measure models under a stated protocol; every report is a versioned asset."""


def _models(chosen: tuple[str, ...]) -> tuple[list[str], bool]:
    """Scorer names to run, and whether missing inputs only skip a model (with `all`)."""
    from shopkeeper.rec import BASELINES

    chosen = chosen or ("all",)
    names: list[str] = []
    for m in chosen:
        for n in ("random", *BASELINES) if m == "all" else (m,):
            if n not in names:
                names.append(n)
    return names, "all" in chosen


def eval_config(config_path: Path | None, **overrides: Any) -> Any:
    """The protocol from a YAML file (or defaults) with command-line overrides (None: unset)."""
    from shopkeeper.rec import EvalConfig

    cfg = load_yaml_config(config_path, EvalConfig) if config_path else EvalConfig()
    given = {k: v for k, v in overrides.items() if v not in (None, ())}
    return EvalConfig.model_validate({**cfg.model_dump(), **given})


def render_report(report: dict[str, Any]) -> None:
    """Print a report as Rich tables, one per segment."""
    from shopkeeper.rec._protocol import SEGMENTS
    from shopkeeper.rec._report import table_columns

    c = console()
    d, p = report["data"], report["protocol"]
    c.print(
        f"events v{d['events_version']} ({', '.join(d['event_types'])}): {d['users']:,} users, "
        f"{d['items']:,} items, {d['interactions']:,} interactions; {p['split']} split, "
        f"{d['evaluated_users']:,} users ranked over the full catalog",
        highlight=False,
    )
    cols = table_columns(report)
    k0 = p["ks"][0]
    for seg in SEGMENTS:
        shown = cols[:3]
        if seg == "all":  # what fits 80 columns; --json has every figure
            shown = [c for c in cols if not c.startswith("MRR")]
            shown += [f"coverage@{k0}", f"novelty@{k0}"]
        users = next((r["metrics"][seg]["users"] for r in report["models"] if "metrics" in r), 0)
        t = Table(
            title=f"{seg.replace('_', ' ')} ({users:,} users)",
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
            pad_edge=False,
        )
        short = (c.replace("coverage", "cov").replace("novelty", "nov") for c in shown)
        for col in ("model", *short):
            t.add_column(col, justify="left" if col == "model" else "right")
        if seg == "all":
            t.add_column("fit s", justify="right")
        for r in report["models"]:
            if "metrics" not in r:
                t.add_row(r["model"], "skipped")
                continue
            m = r["metrics"][seg]
            fit = [f"{r['fit_seconds']:.2f}"] if seg == "all" else []
            vals = (f"{m[col]:.2f}" if col.startswith("nov") else f"{m[col]:.4f}" for col in shown)
            t.add_row(r["model"], *vals, *fit)
        c.print(t)
    for r in report["models"]:
        if "skipped" in r:
            c.print(f"{r['model']} skipped: {r['skipped']}", highlight=False)
    if report.get("compression"):
        c.print(_compression_table(report))
    if "version" in report:
        c.print(f"saved as {report['asset']} v{report['version']}", highlight=False)


def _compression_table(report: dict[str, Any]) -> Table:
    """The compression section: accuracy, latency and weights of each variant."""
    from shopkeeper.rec._report import signed_percent, table_columns

    sec, k0 = report["compression"], report["protocol"]["ks"][0]
    ndcg, hit = f"NDCG@{k0}", f"{table_columns(report)[0].split('@')[0]}@{k0}"
    lat = sec["latency"]
    t = Table(
        title=f"{sec['model']} compressed (latency: median of {lat['repeats']}, "
        f"{lat['batch_users']} users a call)",
        box=box.SIMPLE_HEAD,
        padding=(0, 1),
        pad_edge=False,
    )
    for col in ("variant", ndcg, "Δ", hit, "Δ", "ms/user", "Δ", "nonzero w"):
        t.add_column(col, justify="left" if col == "variant" else "right")
    for v in sec["variants"]:
        m, ch, ms = v["metrics"]["all"], v["change"], v["latency_ms"] or {}
        w = v["weights"]
        t.add_row(
            v["variant"],
            f"{m[ndcg]:.4f}",
            signed_percent(ch.get(ndcg)),
            f"{m[hit]:.4f}",
            signed_percent(ch.get(hit)),
            f"{ms['per_user']:.3f}" if ms else "–",
            signed_percent((v["latency_change"] or {}).get("per_user")),
            f"{w['nonzero_linear_weights'] / max(w['linear_weights'], 1):.0%}",
        )
    return t


@evaluate.command("rec")
@click.option(
    "--model",
    "models",
    type=click.Choice(MODEL_CHOICES),
    multiple=True,
    help="A model to evaluate (repeatable; default all).",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="YAML file with the protocol (EvalConfig fields).",
)
@click.option(
    "--split",
    type=click.Choice(["leave_one_out", "temporal"]),
    default=None,
    help="Chronological leave-one-out (default) or a global temporal cut-off.",
)
@click.option("--event-type", "event_types", multiple=True, help="Interaction type (repeatable).")
@click.option("--k-core", type=click.IntRange(min=0), default=None, help="Iterative k-core.")
@click.option("--k", "ks", type=click.IntRange(min=1), multiple=True, help="Cut-off (repeatable).")
@click.option(
    "--test-fraction",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    help="Temporal split: share of interactions after the cut-off (default 0.2).",
)
@click.option("--max-users", type=click.IntRange(min=1), default=None, help="Sample test users.")
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=None,
    help="Seed of same-time tie-breaks, user sampling and random scores (default 0).",
)
@time_budget_option(
    "Each trained model (sasrec) stops after this many minutes with its best checkpoint."
)
@click.option(
    "--compress",
    default=",".join(DEFAULT_COMPRESSIONS),
    show_default=True,
    callback=lambda _ctx, _param, value: _compressions(value),
    help="With sasrec: compressed copies of the fitted model measured beside it, "
    "comma-separated (int8, pruneNN, e.g. prune50+int8; noprior: SASRec without its "
    "co-occurrence prior; `none` for none).",
)
@click.option("--no-save", is_flag=True, help="Do not store the report as an asset.")
@json_option
@click.pass_obj
def rec_cmd(
    state: State,
    models: tuple[str, ...],
    config_path: Path | None,
    split: str | None,
    event_types: tuple[str, ...],
    k_core: int | None,
    ks: tuple[int, ...],
    test_fraction: float | None,
    max_users: int | None,
    seed: int | None,
    minutes: float | None,
    compress: list[str],
    no_save: bool,
) -> None:
    """Fit and evaluate recommenders with full ranking; store the report as `rec_report`."""
    from shopkeeper.rec import run_evaluation

    names, skip = _models(models)
    cfg = eval_config(
        config_path,
        split=split,
        event_types=list(event_types) or None,
        k_core=k_core,
        ks=list(ks) or None,
        test_fraction=test_fraction,
        max_users=max_users,
        seed=seed,
    )
    report = run_evaluation(
        state.workspace,
        names,
        cfg,
        skip_unavailable=skip,
        save=not no_save,
        time_budget_s=minutes * 60 if minutes is not None else None,
        compress=compress,
    )
    if state.json:
        emit_json(report)
    else:
        render_report(report)


def _compressions(value: str) -> list[str]:
    """`--compress` as variant names; a name the library does not know is a usage error."""
    from shopkeeper.errors import ConfigError
    from shopkeeper.rec import parse_compressions

    try:
        return parse_compressions(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--compress") from exc


def render_recommendations(state: State, recs: dict[str, list[dict[str, Any]]]) -> None:
    """Print one Rich table per user: rank, item id, title, score."""
    from shopkeeper.cli._features import titles

    names = titles(state, sorted({e["item_id"] for entries in recs.values() for e in entries}))
    c = console()
    for user_id, entries in recs.items():
        cold = bool(entries) and "fallback" in entries[0]
        note = f" (no history: {entries[0]['fallback']})" if cold else ""
        t = Table(title=f"Recommended for {user_id}{note}", box=box.SIMPLE_HEAD)
        for col in ("rank", "item_id", "title", "score"):
            t.add_column(col, justify="right" if col in ("rank", "score") else "left")
        for i, e in enumerate(entries, 1):
            t.add_row(str(i), e["item_id"], names.get(e["item_id"], ""), f"{e['score']:.4g}")
        c.print(t)


@cli.command("recommend")
@click.argument("user_id", required=False)
@click.option(
    "--users",
    "users_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="A file of user ids, one a line: prints {user_id: [...]}.",
)
@click.option(
    "--k", type=click.IntRange(min=1), default=10, show_default=True, help="Items per user."
)
@click.option("--include-seen", is_flag=True, help="Keep items the user already bought.")
@click.option(
    "--model-version",
    type=click.IntRange(min=1),
    default=None,
    help="A `rec_model` version (default the latest).",
)
@json_option
@click.pass_obj
def recommend_cmd(
    state: State,
    user_id: str | None,
    users_file: Path | None,
    k: int,
    include_seen: bool,
    model_version: int | None,
) -> None:
    """Top items for USER_ID (as the source gave it) or every id in --users FILE.

    One user prints [{"item_id", "score"}, …]; --users prints {user_id: [...]}. A user
    without history gets the popularity ranking, marked "fallback": "popularity".
    """
    from shopkeeper.rec._recommend import read_user_ids, recommend
    from shopkeeper.rec._train import load_rec_model

    if (user_id is None) == (users_file is None):
        raise click.UsageError("give one USER_ID or --users FILE")
    ids = read_user_ids(users_file) if users_file is not None else [user_id or ""]
    if not ids[0].strip():
        raise click.UsageError("USER_ID is empty")
    model = load_rec_model(state.workspace, model_version)
    recs = recommend(state.workspace, ids, k, include_seen=include_seen, model=model)
    if state.json:
        emit_json(recs if users_file is not None else recs[ids[0]])
    else:
        render_recommendations(state, recs)
