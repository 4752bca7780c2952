"""`shopkeeper features build` and `shopkeeper similar ITEM_ID --k K`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import click
from rich.table import Table

from shopkeeper.cli._app import State, cli, console, emit_json, json_option
from shopkeeper.config import load_yaml_config
from shopkeeper.features import FeaturesConfig, build_features, load_item_index
from shopkeeper.features._encoder import Backend, Precision
from shopkeeper.warehouse import Warehouse


@cli.group("features")
def features() -> None:
    """Language-model features: item embeddings and the ANN index."""


def features_config(config_path: Path | None, **encoder: Any) -> FeaturesConfig:
    """The config file (or defaults) with command-line encoder overrides (None: not given)."""
    cfg = load_yaml_config(config_path, FeaturesConfig) if config_path else FeaturesConfig()
    overrides = {k: v for k, v in encoder.items() if v is not None}
    if overrides:
        merged = type(cfg.encoder).model_validate({**cfg.encoder.model_dump(), **overrides})
        cfg = cfg.model_copy(update={"encoder": merged})
    return cfg


def render_build(out: dict[str, Any]) -> None:
    """Print a features build summary."""
    c = console()
    idx = out["index"]
    c.print(
        f"{out['asset']} v{out['version']} ({out['status']}): {out['items']:,} items, "
        f"{out['encoded']:,} texts encoded, {out['reused']:,} reused, "
        f"model {out['model_id']}, {out['seconds']:.1f} s\n"
        f"{idx['asset']} v{idx['version']} ({idx['status']}): {idx['type']}, "
        f"{idx['items']:,} items",
        highlight=False,
    )
    dup = out.get("duplicates")
    if dup:
        c.print(
            f"{dup['asset']} v{dup['version']} ({dup['status']}): {dup['pairs']:,} candidate "
            "pairs of near-duplicate items (see `shopkeeper quality item_duplicates`)",
            highlight=False,
        )
    for key in ("item_features", "users", "training"):
        part = out.get(key)
        if part:
            extra = {k: v for k, v in part.items() if k not in ("asset", "version", "status")}
            shown = ", ".join(f"{k} {v}" for k, v in extra.items() if not isinstance(v, dict))
            c.print(
                f"{part['asset']} v{part['version']} ({part['status']})"
                + (f": {shown}" if shown else ""),
                highlight=False,
            )


@features.command("build")
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="YAML file: text template, encoder and index settings.",
)
@click.option(
    "--model",
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    default=None,
    help="A sentence-transformers model folder (default: packaged all-MiniLM-L6-v2).",
)
@click.option(
    "--backend",
    type=click.Choice(get_args(Backend)),
    default=None,
    help="Run the encoder with torch or ONNX Runtime (default onnx).",
)
@click.option(
    "--precision",
    type=click.Choice(get_args(Precision)),
    default=None,
    help="fp32 or int8 dynamic quantization (default int8; int8-attention: torch only).",
)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Texts per batch.")
@json_option
@click.pass_obj
def build_cmd(
    state: State,
    config_path: Path | None,
    model: Path | None,
    backend: str | None,
    precision: str | None,
    batch_size: int | None,
) -> None:
    """Embed item texts (only new or changed ones) and index them for `similar`."""
    cfg = features_config(
        config_path,
        model_path=model,
        backend=backend,
        precision=precision,
        batch_size=batch_size,
    )
    out = build_features(state.workspace, cfg)
    if state.json:
        emit_json(out)
    else:
        render_build(out)


def similar_items(state: State, item_id: str, k: int) -> list[dict[str, Any]]:
    """The `k` items most similar to `item_id` in the latest index, best first."""
    return load_item_index(state.workspace).similar(item_id, k)


def item_titles(wh: Warehouse, item_ids: list[str]) -> dict[str, str]:
    """Titles of some items from the latest items version, on an open warehouse."""
    rows = wh.con.execute(
        "SELECT item_id, title FROM items WHERE list_contains(?, item_id)", [item_ids]
    ).fetchall()
    return dict(rows)


def titles(state: State, item_ids: list[str]) -> dict[str, str]:
    """Titles of some items from the latest items version."""
    with Warehouse(state.workspace, read_only=True) as wh:
        return item_titles(wh, item_ids)


@cli.command("similar")
@click.argument("item_id")
@click.option("--k", type=click.IntRange(min=1), default=10, show_default=True)
@json_option
@click.pass_obj
def similar_cmd(state: State, item_id: str, k: int) -> None:
    """Items most similar to ITEM_ID by text embedding: [{"item_id", "score"}, …]."""
    hits = similar_items(state, item_id, k)
    if state.json:
        emit_json(hits)
        return
    names = titles(state, [item_id, *(h["item_id"] for h in hits)])
    t = Table(title=f"Items similar to {item_id}: {names.get(item_id, '?')}")
    for col in ("rank", "item_id", "score", "title"):
        t.add_column(col, justify="right" if col in ("rank", "score") else "left")
    for i, h in enumerate(hits, 1):
        t.add_row(str(i), h["item_id"], f"{h['score']:.3f}", names.get(h["item_id"], ""))
    console().print(t)
