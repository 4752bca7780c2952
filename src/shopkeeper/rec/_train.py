"""`train rec`: fit one recommender on every interaction and store it as a `rec_model` version.

No data is held out: the evaluation report measures a model type under a split, and this
trains the one that serves. The version holds the scorer's files (`scorer.json`,
`state.npz`, whatever else its `save` writes) and `items.parquet`, the catalog the
model ranks (its SQL view), with lineage to the events version and, when the model read
them, the item embeddings.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from shopkeeper.errors import ConfigError, NotFoundError, WarehouseError
from shopkeeper.features import (
    EMBEDDINGS_ASSET,
    ITEM_FEATURES_ASSET,
    build_features,
    read_item_attributes,
    read_item_texts,
)
from shopkeeper.logging import Stopwatch, get_logger
from shopkeeper.rec._data import Histories, read_interactions
from shopkeeper.rec._report import item_vectors_for
from shopkeeper.rec._scorer import RecScorer, TrainingData, create_scorer, get_scorer_class
from shopkeeper.warehouse import DerivedVersion, Warehouse, commit_derived, new_build_id

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

    from shopkeeper.features import FeaturesConfig, ItemEncoder
    from shopkeeper.rec._data import Interactions
    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)

REC_MODEL_ASSET = "rec_model"
DEFAULT_REC_MODEL = "sasrec"
"""What `train rec` fits when no model is named: the sequential transformer."""
ITEMS_FILE = "items.parquet"

_SCHEMA: list[dict[str, Any]] = [
    {"name": "item_id", "type": "string", "nullable": False, "doc": "Item id as stored."},
    {"name": "item_index", "type": "int64", "nullable": False, "doc": "Column in the scores."},
    {
        "name": "interactions",
        "type": "int64",
        "nullable": False,
        "doc": "Its training interactions.",
    },
]


@dataclass(frozen=True)
class RecModel:
    """A stored `rec_model` version, loaded."""

    scorer: RecScorer[Any]
    item_ids: list[str]
    """Item id of each score column (catalog order)."""
    version: int
    params: dict[str, Any]
    """What it was trained on: model, config, events version, event types, …"""

    @property
    def event_types(self) -> list[str]:
        """The event types its histories are made of."""
        return list(self.params["event_types"])


@dataclass(frozen=True)
class _Inputs:
    """What a `rec_model` fit reads from a workspace, and the version's params so far."""

    scorer: RecScorer[Any]
    inter: Interactions
    data: TrainingData
    params: dict[str, Any]
    """model, config, events, embeddings and item-features versions, budget, counts."""
    built_features: bool


def train_rec(
    ws: Workspace,
    model: str | None = None,
    *,
    config: dict[str, Any] | None = None,
    time_budget_s: float | None = None,
    event_types: Sequence[str] | None = None,
    features_config: FeaturesConfig | None = None,
    encoder: ItemEncoder | None = None,
    nproc: int = 1,
) -> dict[str, Any]:
    """Fit `model` on all interactions of the latest events; store it as a `rec_model` version.

    Args:
        ws: The workspace (must hold events).
        model: A scorer name (default `DEFAULT_REC_MODEL`).
        config: The scorer's config, JSON data.
        time_budget_s: Seconds the fit may take; a model trained in epochs stops there
            with its best checkpoint so far (baselines ignore it).
        event_types: Event types that count as interactions (default as `read_interactions`).
        features_config: Settings for building item embeddings when there are none yet.
        encoder: A loaded encoder for that build.
        nproc: Data-parallel processes on this machine (`torchrun`; models trained in
            epochs only): more than 1 trains the model one process would.

    Returns:
        A summary: asset, version, model, config, events/embeddings versions, users,
        items, interactions, fit seconds, the scorer's `info`.

    Raises:
        ConfigError: a bad config, time budget or process count.
        NotFoundError: no events (or no items to embed for a model that needs them).
    """
    name = model or DEFAULT_REC_MODEL
    if nproc < 1:
        raise ConfigError(f"the number of processes must be at least 1, not {nproc}")
    if nproc > 1 and not get_scorer_class(name).trains_on_shards:
        raise ConfigError(f"{name} does not train data-parallel; only sasrec does")
    inputs = gather_inputs(
        ws, name, config, time_budget_s, event_types, features_config, encoder, checkpoints=True
    )
    scorer, data = inputs.scorer, inputs.data
    _log.info(
        "training",
        model=name,
        users=inputs.inter.n_users,
        items=inputs.inter.n_items,
        budget_s=time_budget_s,
        nproc=nproc,
    )
    timer = Stopwatch()
    if nproc > 1:
        from shopkeeper.rec.ddp import fit_distributed

        scorer = fit_distributed(name, scorer.dump_config(), data, nproc)
    else:
        scorer.fit(data)
    fit_seconds = round(timer.seconds, 3)
    params = {**inputs.params, "fit_seconds": fit_seconds, "info": scorer.info}
    version = save_model(ws, scorer, items_table(inputs.inter), params)
    if data.checkpoint_dir is not None:
        shutil.rmtree(data.checkpoint_dir, ignore_errors=True)
    _log.info("saved model", asset=REC_MODEL_ASSET, version=version, fit=fit_seconds)
    return {
        "asset": REC_MODEL_ASSET,
        "version": version,
        **params,
        "built_features": inputs.built_features,
    }


def gather_inputs(
    ws: Workspace,
    name: str,
    config: dict[str, Any] | None,
    time_budget_s: float | None,
    event_types: Sequence[str] | None,
    features_config: FeaturesConfig | None,
    encoder: ItemEncoder | None,
    *,
    checkpoints: bool,
) -> _Inputs:
    """The scorer, the interactions and the training data of a `rec_model` fit.

    Item embeddings are built first when the model reads them and there are none.
    With `checkpoints`, the data names the workspace's checkpoint folder of the model.
    """
    if time_budget_s is not None and not time_budget_s > 0:
        raise ConfigError(f"the time budget must be positive, not {time_budget_s}")
    scorer = _create(name, config)
    with Warehouse(ws, read_only=True) as wh:
        inter = read_interactions(wh, event_types)
        texts = read_item_texts(wh, inter.item_ids) if scorer.wants_item_texts else None
        attrs = read_item_attributes(wh, inter.item_ids) if scorer.uses_item_attributes else None
    built = False
    vectors, emb_version = None, None
    if scorer.needs_item_vectors or scorer.uses_item_vectors:
        vectors, emb_version, built = _vectors(ws, scorer, inter, features_config, encoder)
    histories = Histories.from_pairs(
        inter.users, inter.items, inter.n_users, inter.n_items, inter.ts
    )
    # One folder per model, kept when a fit dies: the next run resumes from it when its
    # fingerprint (config and data) matches, and starts afresh otherwise.
    folder = ws.home / "checkpoints" / REC_MODEL_ASSET / name if checkpoints else None
    data = TrainingData(
        histories,
        vectors,
        time_budget_s=time_budget_s,
        checkpoint_dir=folder,
        item_texts=texts,
        item_attributes=None if attrs is None else attrs[0],
    )
    params = {
        "model": name,
        "config": scorer.dump_config(),
        "events_version": inter.events_version,
        "event_types": list(inter.event_types),
        "embeddings_version": emb_version,
        "item_features_version": None if attrs is None else attrs[1],
        "time_budget_s": time_budget_s,
        "users": inter.n_users,
        "items": inter.n_items,
        "interactions": len(inter),
    }
    return _Inputs(scorer, inter, data, params, built)


def _create(name: str, config: dict[str, Any] | None) -> RecScorer[Any]:
    """A scorer by name; an invalid config is a ConfigError naming the model."""
    try:
        return create_scorer(name, config)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"invalid {name} config: {problems}") from exc


def _vectors(
    ws: Workspace,
    scorer: RecScorer[Any],
    inter: Interactions,
    cfg: FeaturesConfig | None,
    encoder: ItemEncoder | None,
) -> tuple[npt.NDArray[np.float32] | None, int | None, bool]:
    """Item embeddings aligned to the catalog, their version, and whether built just now.

    With none in the workspace they are built first; a model that can do without them
    (one that only uses them when present) goes on without when that is impossible.
    """
    with Warehouse(ws, read_only=True) as wh:
        present = wh.latest(EMBEDDINGS_ASSET) is not None
    built = False
    if not present:
        _log.info("no item embeddings yet; building them first", model=scorer.name)
        try:
            build_features(ws, cfg, encoder)
        except (ImportError, NotFoundError) as exc:
            if scorer.needs_item_vectors:
                raise
            _log.warning("training without item embeddings", reason=str(exc))
            return None, None, False
        built = True
    with Warehouse(ws, read_only=True) as wh:
        vectors, version = item_vectors_for(wh, inter.item_ids, skip_unavailable=False)
    return vectors, version, built


def items_table(inter: Interactions) -> pa.Table:
    """The catalog a model ranks: item id, score column and training interactions."""
    counts = np.bincount(inter.items, minlength=inter.n_items)
    return pa.table(
        {
            "item_id": pa.array(inter.item_ids, pa.string()),
            "item_index": pa.array(np.arange(inter.n_items, dtype=np.int64)),
            "interactions": pa.array(counts.astype(np.int64)),
        }
    )


def save_model(
    ws: Workspace, scorer: RecScorer[Any], items: pa.Table, params: dict[str, Any]
) -> int:
    """Write the scorer and its item list to tmp and commit them as a new version."""
    build_id = new_build_id()
    tmp = ws.tmp_dir / build_id
    n_items = items.num_rows
    parents = [("events", params["events_version"], "trained_on")]
    if params["embeddings_version"] is not None:
        parents.append((EMBEDDINGS_ASSET, params["embeddings_version"], "item_text_from"))
    if params.get("item_features_version") is not None:
        parents.append(
            (ITEM_FEATURES_ASSET, params["item_features_version"], "item_attributes_from")
        )
    with ws.write_lock():
        try:
            tmp.mkdir(parents=True, exist_ok=True)
            scorer.save(tmp)
            nested = [p.name for p in tmp.iterdir() if not p.is_file()]
            if nested:
                raise ConfigError(f"{scorer.name}.save wrote folders ({nested}); files only")
            artifacts = sorted(tmp.iterdir())
            pq.write_table(items, tmp / ITEMS_FILE)
            with Warehouse(ws, read_only=True) as wh:
                latest = wh.latest(REC_MODEL_ASSET)
            if latest is not None:
                parents.append((REC_MODEL_ASSET, latest.version, "previous"))
            dv = DerivedVersion(
                asset=REC_MODEL_ASSET,
                kind="rec_model",
                transform="rec.train",
                params=params,
                row_count=n_items,
                schema=[{**c, "pii": "none"} for c in _SCHEMA],
                files=[
                    ("data", tmp / ITEMS_FILE, n_items),
                    *(("artifact", p, 1) for p in artifacts),
                ],
                parents=parents,
            )
            return commit_derived(ws, dv, build_id)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def load_rec_model(ws: Workspace, version: int | None = None) -> RecModel:
    """A stored `rec_model` version (the latest by default), ready to score.

    Raises:
        NotFoundError: no model has been trained (or no such version).
    """
    with Warehouse(ws, read_only=True) as wh:
        if version is None and wh.latest(REC_MODEL_ASSET) is None:
            raise NotFoundError("no trained recommender yet; run `shopkeeper train rec` first")
        v = wh.version(REC_MODEL_ASSET, version)
        (items_path,) = wh.files(REC_MODEL_ASSET, v.version, "data")
        artifacts = wh.files(REC_MODEL_ASSET, v.version, "artifact")
    folder = artifacts[0].parent
    scorer = get_scorer_class(v.params["model"]).load(folder)
    table = pq.read_table(items_path, columns=["item_id", "item_index"]).sort_by("item_index")
    item_ids: list[str] = table.column("item_id").to_pylist()
    if scorer.n_items != len(item_ids):
        raise WarehouseError(
            f"{REC_MODEL_ASSET} v{v.version}: the scorer knows {scorer.n_items} items, "
            f"its item list has {len(item_ids)}"
        )
    return RecModel(scorer, item_ids, v.version, dict(v.params))
