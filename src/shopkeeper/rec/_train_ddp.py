"""Training `rec_model` on several machines: export the data, run `torchrun`, import the model.

`export_ddp` writes what `train rec` would fit on to a folder that every machine gets a
copy of (or reads from shared storage): the users' histories as sharded Parquet and
the item arrays (see `_shards`), the model's config, the catalog list and the
workspace facts the model version records. Each machine then runs
`torchrun ... -m shopkeeper.rec.ddp FOLDER --sharded` (see `ddp`), which saves the
model to `FOLDER/model`; `import_ddp` stores that as the workspace's next `rec_model`
version, with the same lineage a local fit gets.
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from shopkeeper.errors import ConfigError, NotFoundError
from shopkeeper.logging import get_logger
from shopkeeper.rec._scorer import RecScorer, get_scorer_class
from shopkeeper.rec._shards import HISTORIES_FILE, ITEM_ARRAYS_FILE, write_sharded_data
from shopkeeper.rec._train import (
    DEFAULT_REC_MODEL,
    ITEMS_FILE,
    REC_MODEL_ASSET,
    gather_inputs,
    items_table,
    save_model,
)
from shopkeeper.rec.ddp import CONFIG_FILE, MODEL_DIR, RANKS_DIR, write_config
from shopkeeper.warehouse import Warehouse

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from shopkeeper.features import FeaturesConfig, ItemEncoder
    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)

EXPORT_FILE = "export.json"
EXPORT_FORMAT = 1


def train_commands(folder: Path) -> dict[str, str]:
    """The commands of the recipe for an exported folder (NNODES, HOST:PORT to fill in)."""
    f = shlex.quote(str(folder))
    return {
        "train": "torchrun --nnodes NNODES --nproc-per-node 1 --rdzv-backend c10d "
        f"--rdzv-endpoint HOST:PORT --rdzv-id shopkeeper -m shopkeeper.rec.ddp {f} --sharded",
        "import": f"shopkeeper train rec --from-ddp {f}",
    }


def export_ddp(
    ws: Workspace,
    folder: Path,
    model: str | None = None,
    *,
    config: dict[str, Any] | None = None,
    time_budget_s: float | None = None,
    event_types: Sequence[str] | None = None,
    users_per_group: int | None = None,
    features_config: FeaturesConfig | None = None,
    encoder: ItemEncoder | None = None,
) -> dict[str, Any]:
    """Write the training data of `model` to `folder` for a sharded multi-machine fit.

    Args:
        ws: The workspace (must hold events).
        folder: A new or empty folder.
        model: A scorer that trains on shards (default `DEFAULT_REC_MODEL`).
        config: Its config, JSON data.
        time_budget_s: Seconds each process may train (written to the folder's config).
        event_types: Event types that count as interactions.
        users_per_group: Users per Parquet row group (default: at least 64 groups);
            a job can have at most as many processes as there are groups.
        features_config: Settings for building item embeddings when there are none yet.
        encoder: A loaded encoder for that build.

    Returns:
        A summary: folder, files, model, config, versions, counts, row groups and the
        commands that train and import.

    Raises:
        ConfigError: the folder is not empty, the model does not train on shards, or a
            bad config or budget.
        NotFoundError: no events.
    """
    name = model or DEFAULT_REC_MODEL
    if not get_scorer_class(name).trains_on_shards:
        raise ConfigError(f"{name} does not train on sharded data; only sasrec does")
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise ConfigError(f"{folder} is not an empty folder; export to a new one")
    inputs = gather_inputs(
        ws, name, config, time_budget_s, event_types, features_config, encoder, checkpoints=False
    )
    with Warehouse(ws, read_only=True) as wh:
        load_id = wh.version("events", inputs.inter.events_version).load_id
    groups = write_sharded_data(inputs.data, folder, users_per_group=users_per_group)
    write_config(folder, name, inputs.params["config"], time_budget_s)
    pq.write_table(items_table(inputs.inter), folder / ITEMS_FILE)
    export = {
        "format": EXPORT_FORMAT,
        "events_load_id": load_id,
        "row_groups": groups,
        "params": inputs.params,
        "built_features": inputs.built_features,
    }
    (folder / EXPORT_FILE).write_text(json.dumps(export, indent=2))
    files = [CONFIG_FILE, EXPORT_FILE, HISTORIES_FILE, ITEM_ARRAYS_FILE, ITEMS_FILE]
    _log.info("exported training data", folder=str(folder), model=name, row_groups=groups)
    return {
        "folder": str(folder),
        "files": files,
        **inputs.params,
        "row_groups": groups,
        "max_processes": groups,
        "built_features": inputs.built_features,
        "commands": train_commands(folder),
    }


def import_ddp(ws: Workspace, folder: Path) -> dict[str, Any]:
    """Store the model a sharded `torchrun` fit saved in `folder` as a `rec_model` version.

    Returns:
        The summary `train_rec` returns, plus `ddp` (world size, checksum) and `folder`.

    Raises:
        NotFoundError: `folder` holds no export, or no trained model yet.
        ConfigError: the model does not match the export, or the export came from
            another workspace (its events version is not this workspace's).
    """
    if not (folder / EXPORT_FILE).is_file():
        raise NotFoundError(
            f"no {EXPORT_FILE} in {folder}; write one with `shopkeeper train rec --export-ddp`"
        )
    export = json.loads((folder / EXPORT_FILE).read_text())
    if export.get("format") != EXPORT_FORMAT:
        raise ConfigError(f"{folder / EXPORT_FILE} is not export format {EXPORT_FORMAT}")
    params: dict[str, Any] = dict(export["params"])
    if not (folder / MODEL_DIR / "scorer.json").is_file():
        raise NotFoundError(
            f"no trained model in {folder / MODEL_DIR}; run the torchrun command first "
            f"({train_commands(folder)['train']})"
        )
    scorer = RecScorer.load(folder / MODEL_DIR)
    if scorer.name != params["model"] or scorer.n_items != params["items"]:
        raise ConfigError(
            f"{folder / MODEL_DIR} is a {scorer.name} model of {scorer.n_items} items; "
            f"the export is {params['model']} on {params['items']} items"
        )
    with Warehouse(ws, read_only=True) as wh:
        try:
            events = wh.version("events", params["events_version"])
        except NotFoundError as exc:
            raise ConfigError(f"{folder} was exported from another workspace: {exc}") from exc
    if events.load_id != export["events_load_id"]:
        raise ConfigError(
            f"{folder} was exported from another workspace (its events "
            f"v{params['events_version']} is another load)"
        )
    ddp = dict(scorer.info.get("ddp", {}))
    params.update(
        config=scorer.dump_config(),
        fit_seconds=float(ddp.get("fit_seconds", scorer.info.get("train_seconds", 0.0))),
        info=scorer.info,
    )
    version = save_model(ws, scorer, pq.read_table(folder / ITEMS_FILE), params)
    ranks = sorted((folder / RANKS_DIR).glob("rank-*.json"))
    _log.info("imported model", asset=REC_MODEL_ASSET, version=version, folder=str(folder))
    return {
        "asset": REC_MODEL_ASSET,
        "version": version,
        **params,
        "built_features": False,
        "folder": str(folder),
        "ddp": ddp,
        "rank_reports": [json.loads(p.read_text()) for p in ranks],
    }
