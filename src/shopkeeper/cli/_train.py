"""`shopkeeper train rec`: fit the serving recommender on every interaction, store it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from shopkeeper.cli._app import (
    State,
    cli,
    console,
    emit_json,
    json_option,
    time_budget_option,
)
from shopkeeper.config import load_yaml_config

DEFAULT_MODEL = "sasrec"
"""Shown in help; the library's `DEFAULT_REC_MODEL` decides (read lazily: no SciPy at start)."""


@cli.group("train")
def train() -> None:
    """Train models on the workspace's data; each one is stored as a versioned asset."""


def model_name(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """Check `--model` against the scorer registry (imported only when a name is given)."""
    if value is None:
        return None
    from shopkeeper.rec import SCORERS

    if value not in SCORERS:
        raise click.BadParameter(f"{value!r} is not one of {', '.join(sorted(SCORERS))}")
    return value


def model_config(name: str, config_path: Path | None) -> dict[str, Any] | None:
    """The model's config from a YAML file, validated against its config class (None: none)."""
    if config_path is None:
        return None
    from shopkeeper.rec import get_scorer_class

    cfg = load_yaml_config(config_path, get_scorer_class(name).config_cls)
    return cfg.model_dump(mode="json")


def render_training(out: dict[str, Any]) -> None:
    """Print a training summary."""
    c = console()
    budget = out["time_budget_s"]
    c.print(
        f"{out['asset']} v{out['version']}: {out['model']} fitted in {out['fit_seconds']:.1f} s"
        + (f" (budget {budget / 60:g} min)" if budget is not None else "")
        + f" on events v{out['events_version']} ({', '.join(out['event_types'])}): "
        f"{out['users']:,} users, {out['items']:,} items, {out['interactions']:,} interactions",
        highlight=False,
    )
    if out["embeddings_version"] is not None:
        built = " (built for this model)" if out["built_features"] else ""
        c.print(f"item embeddings v{out['embeddings_version']}{built}", highlight=False)
    from shopkeeper.rec import create_scorer

    defaults = create_scorer(out["model"]).dump_config()
    changed = [f"{k}={v}" for k, v in out["config"].items() if defaults.get(k) != v]
    c.print(f"config: {', '.join(changed) or 'the defaults'}", highlight=False)
    facts = [f"{k}={v}" for k, v in out["info"].items() if not isinstance(v, list | dict)]
    if facts:  # lists (e.g. per-epoch history) are in --json
        c.print(f"info: {', '.join(facts)}", highlight=False)
    c.print(f"Try: shopkeeper recommend USER_ID --k 10 (model v{out['version']})", highlight=False)


@train.command("rec")
@click.option(
    "--model",
    default=None,
    callback=model_name,
    help=f"A registered recommender: popularity, itemknn, ease, als, content, {DEFAULT_MODEL}, "
    f"random (default {DEFAULT_MODEL}).",
)
@time_budget_option("Stop training after this many minutes with the best checkpoint so far.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    metavar="YAML",
    default=None,
    help="YAML file with the model's config (its hyperparameters).",
)
@click.option("--event-type", "event_types", multiple=True, help="Interaction type (repeatable).")
@json_option
@click.pass_obj
def rec_cmd(
    state: State,
    model: str | None,
    minutes: float | None,
    config_path: Path | None,
    event_types: tuple[str, ...],
) -> None:
    """Fit a recommender on all interactions of the latest events; store it as `rec_model`."""
    from shopkeeper.rec._train import DEFAULT_REC_MODEL, train_rec

    name = model or DEFAULT_REC_MODEL
    config = model_config(name, config_path)
    budget = f", budget {minutes:g} min" if minutes is not None else ""
    click.echo(f"training {name} on the latest events{budget} …", err=True)
    out = train_rec(
        state.workspace,
        name,
        config=config,
        time_budget_s=minutes * 60 if minutes is not None else None,
        event_types=list(event_types) or None,
    )
    if state.json:
        emit_json(out)
    else:
        render_training(out)
