"""`shopkeeper train rec`: fit the serving recommender on every interaction, store it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from shopkeeper.cli._app import (
    F,
    State,
    cli,
    console,
    emit_json,
    json_option,
    time_budget_option,
)
from shopkeeper.config import load_yaml_config

if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_MODEL = "sasrec"
"""Shown in help; the library's `DEFAULT_REC_MODEL` decides (read lazily: no SciPy at start)."""


def config_option(help_text: str) -> Callable[[F], F]:
    """Add `--config YAML` (exposed as `config_path`, None when not given)."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path),
        metavar="YAML",
        default=None,
        help=help_text,
    )


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


def render_export(out: dict[str, Any]) -> None:
    """Print what an export wrote and the commands that train and import."""
    c = console()
    c.print(
        f"exported {out['model']} training data to {out['folder']}: {out['users']:,} users "
        f"in {out['row_groups']} row groups (at most {out['max_processes']} processes), "
        f"{out['items']:,} items, {out['interactions']:,} interactions "
        f"(events v{out['events_version']})",
        highlight=False,
    )
    c.print("Copy the folder to every machine (or share it), then on each one run:")
    c.print(f"  {out['commands']['train']}", highlight=False, soft_wrap=True)
    c.print("and, with the folder's model/ back here:", highlight=False)
    c.print(f"  {out['commands']['import']}", highlight=False, soft_wrap=True)


@train.command("rec")
@click.option(
    "--model",
    default=None,
    callback=model_name,
    help=f"A registered recommender: popularity, itemknn, ease, als, content, {DEFAULT_MODEL}, "
    f"random (default {DEFAULT_MODEL}).",
)
@time_budget_option("Stop training after this many minutes with the best checkpoint so far.")
@config_option("YAML file with the model's config (its hyperparameters).")
@click.option("--event-type", "event_types", multiple=True, help="Interaction type (repeatable).")
@click.option(
    "--nproc",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Data-parallel training processes on this machine (torchrun; sasrec only).",
)
@click.option(
    "--export-ddp",
    "export_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    metavar="DIR",
    help="Write the training data (sharded Parquet) to a new folder for a multi-machine "
    "torchrun fit instead of training here; prints the commands.",
)
@click.option(
    "--from-ddp",
    "import_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    metavar="DIR",
    help="Store the model a torchrun fit saved in an exported folder as rec_model.",
)
@json_option
@click.pass_obj
def rec_cmd(
    state: State,
    model: str | None,
    minutes: float | None,
    config_path: Path | None,
    event_types: tuple[str, ...],
    nproc: int,
    export_dir: Path | None,
    import_dir: Path | None,
) -> None:
    """Fit a recommender on all interactions of the latest events; store it as `rec_model`.

    On several machines: --export-ddp DIR writes the data, torchrun trains on each
    machine, --from-ddp DIR stores the model.
    """
    from shopkeeper.rec._train import DEFAULT_REC_MODEL, train_rec

    if import_dir is not None:
        given = [model, minutes, config_path, export_dir, event_types or None]
        if any(v is not None for v in given) or nproc != 1:
            raise click.UsageError("--from-ddp takes no other training option")
        _import(state, import_dir)
        return
    if export_dir is not None and nproc != 1:
        raise click.UsageError("--export-ddp and --nproc do not go together")
    name = model or DEFAULT_REC_MODEL
    config = model_config(name, config_path)
    budget_s = minutes * 60 if minutes is not None else None
    if export_dir is not None:
        from shopkeeper.rec._train_ddp import export_ddp

        click.echo(f"exporting {name} training data to {export_dir} …", err=True)
        exported = export_ddp(
            state.workspace,
            export_dir,
            name,
            config=config,
            time_budget_s=budget_s,
            event_types=list(event_types) or None,
        )
        if state.json:
            emit_json(exported)
        else:
            render_export(exported)
        return
    budget = f", budget {minutes:g} min" if minutes is not None else ""
    procs = f" with {nproc} processes" if nproc > 1 else ""
    click.echo(f"training {name} on the latest events{budget}{procs} …", err=True)
    out = train_rec(
        state.workspace,
        name,
        config=config,
        time_budget_s=budget_s,
        event_types=list(event_types) or None,
        nproc=nproc,
    )
    if state.json:
        emit_json(out)
    else:
        render_training(out)


def _import(state: State, folder: Path) -> None:
    """`--from-ddp`: store the folder's model, print as a training run."""
    from shopkeeper.rec._train_ddp import import_ddp

    click.echo(f"importing the model trained in {folder} …", err=True)
    out = import_ddp(state.workspace, folder)
    if state.json:
        emit_json(out)
        return
    render_training(out)
    ddp = out["ddp"]
    if ddp:
        n = ddp["world_size"]
        console().print(
            f"trained by {n} process{'es' if n != 1 else ''}"
            + (" on sharded data" if ddp.get("sharded") else "")
            + f", parameters sha256 {ddp['parameters_sha256'][:12]}",
            highlight=False,
        )


@train.command("search")
@click.option(
    "--model",
    type=click.Choice(["cross-encoder", "bi-encoder", "ltr"]),
    default="cross-encoder",
    show_default=True,
    help="cross-encoder: a ranker (query, item text) -> relevance that reranks the first "
    "stage's top candidates; bi-encoder: the query/item encoder of dense retrieval, "
    "fine-tuned contrastively, with the catalogue encoded by it (both start from the "
    "pre-trained transformer); ltr: LambdaMART trees over features of each (query, item) "
    "pair (BM25, dense cosine, term and character overlap) that reorder the first stage's "
    "top candidates.",
)
@time_budget_option("Stop training after this many minutes with the best weights so far.")
@config_option("YAML file with the model's config (depth, negatives, epochs, learning rate, …).")
@json_option
@click.pass_obj
def search_cmd(state: State, model: str, minutes: float | None, config_path: Path | None) -> None:
    """Fine-tune a search model on the judged train queries and store it as an asset.

    The split is `evaluate search`'s (seed 0), so its test queries are never trained on.
    The cross-encoder becomes `search_ranker` and the trees `search_ltr` (`search`
    reorders with the better of them on validation, of those that beat their first stage
    there); the bi-encoder becomes `search_encoder` (`search --model dense-tuned |
    hybrid-tuned`, and the default when it beat the pre-trained encoder on the validation
    queries).
    """
    budget_s = minutes * 60 if minutes is not None else None
    budget = f", budget {minutes:g} min" if minutes is not None else ""
    click.echo(f"training the {model} search model{budget} …", err=True)
    if model == "bi-encoder":
        _train_bi_encoder(state, budget_s, config_path)
        return
    if model == "ltr":
        _train_ltr(state, budget_s, config_path)
        return
    from shopkeeper.search._train_ranker import RankerConfig, train_ranker

    cfg = load_yaml_config(config_path, RankerConfig) if config_path else RankerConfig()
    out = train_ranker(state.workspace, cfg, budget_s)
    if state.json:
        emit_json(out)
        return
    c = console()
    c.print(
        f"{out['asset']} v{out['version']}: {out['model']} over {out['base']} (top "
        f"{cfg.depth}), {out['steps']:,} of {out['steps_planned']:,} steps in "
        f"{out['seconds']:.0f} s ({out['stopped']}); {out['judged_pairs']:,} judged and "
        f"{out['negative_pairs']:,} negative pairs from {out['train_queries']:,} train queries",
        highlight=False,
    )
    c.print(
        f"validation nDCG@10 ({out['validation_queries']:,} queries): first stage "
        f"{out['validation_ndcg_base']:.4f}, reranked {out['validation_ndcg']:.4f} "
        f"(best at step {out['best_step']:,})",
        highlight=False,
    )
    c.print("Try: shopkeeper evaluate search --model hybrid --model ranker", highlight=False)


def _train_ltr(state: State, budget_s: float | None, config_path: Path | None) -> None:
    from shopkeeper.search._train_ltr import LtrConfig, train_ltr

    cfg = load_yaml_config(config_path, LtrConfig) if config_path else LtrConfig()
    out = train_ltr(state.workspace, cfg, budget_s)
    if state.json:
        emit_json(out)
        return
    c = console()
    c.print(
        f"{out['asset']} v{out['version']}: {out['model']} over {out['base']} (top "
        f"{cfg.depth}), {out['trees']:,} trees in {out['seconds']:.0f} s; "
        f"{out['train_pairs']:,} pairs ({out['judged_in_pools']:,} judged) from "
        f"{out['train_queries']:,} train queries",
        highlight=False,
    )
    c.print(
        f"validation nDCG@10 ({out['validation_queries']:,} queries): first stage "
        f"{out['validation_ndcg_base']:.4f}, reordered {out['validation_ndcg']:.4f}",
        highlight=False,
    )
    c.print("Try: shopkeeper evaluate search --model hybrid --model ltr", highlight=False)


def _train_bi_encoder(state: State, budget_s: float | None, config_path: Path | None) -> None:
    from shopkeeper.search._train_bi_encoder import BiEncoderConfig, train_bi_encoder

    cfg = load_yaml_config(config_path, BiEncoderConfig) if config_path else BiEncoderConfig()
    out = train_bi_encoder(state.workspace, cfg, budget_s)
    if state.json:
        emit_json(out)
        return
    c = console()
    c.print(
        f"{out['asset']} v{out['version']}: {out['model']}, {out['steps']:,} of "
        f"{out['steps_planned']:,} steps in {out['seconds']:.0f} s ({out['stopped']}); "
        f"{out['example_queries']:,} train queries with {out['relevant_pairs']:,} relevant "
        f"items, hard negatives from {out['base']}; catalogue encoded in "
        f"{out['encode_seconds']:.0f} s",
        highlight=False,
    )
    c.print(
        f"validation nDCG@10 over first-stage pools ({out['validation_queries']:,} queries): "
        f"pre-trained {out['validation_ndcg_base']:.4f}, fine-tuned "
        f"{out['validation_ndcg']:.4f} (best at step {out['best_step']:,})",
        highlight=False,
    )
    c.print(
        "Try: shopkeeper evaluate search --model dense --model dense-tuned --model hybrid-tuned",
        highlight=False,
    )
