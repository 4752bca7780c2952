"""The fine-tuned ranker as a versioned asset, `search_ranker`.

A version holds the fp32 cross-encoder (Hugging Face files, as artifacts) and its
training history (`history.parquet`, the data file: one row per validation). Its params
record the training config, the first stage it reranks, the data versions it was trained
on (parents: queries, judgments, search index, item embeddings when hybrid) and the grade
scale that maps `sigmoid(logit)` back to a relevance grade.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from shopkeeper.errors import NotFoundError
from shopkeeper.features._text import read_item_texts
from shopkeeper.search._fusion import FusionConfig, HybridRetriever
from shopkeeper.search._late_ranker import load_any
from shopkeeper.search._open import has_dense, open_dense
from shopkeeper.search._rerank import RerankedRetriever
from shopkeeper.search._trained_asset import commit_trained, has_trained, trained_params
from shopkeeper.search._tuned_dense import tuned_hybrid
from shopkeeper.warehouse import Warehouse

if TYPE_CHECKING:
    from shopkeeper.features import ItemEncoder
    from shopkeeper.search._cross_encoder import RankerPrecision
    from shopkeeper.search._data import Judged
    from shopkeeper.search._late_ranker import Ranker
    from shopkeeper.search._retrieve import DenseRetriever, LexicalRetriever, Retriever
    from shopkeeper.warehouse import Workspace

RANKER_ASSET = "search_ranker"
HISTORY_FILE = "history.parquet"
_HISTORY_SCHEMA = pa.schema(
    [
        ("step", pa.int64()),
        ("epoch", pa.int64()),
        ("loss", pa.float64()),
        ("val_ndcg", pa.float64()),
        ("blend", pa.float64()),
        ("seconds", pa.float64()),
    ]
)
_SCHEMA_DOCS = {
    "step": "Optimizer steps done at this validation.",
    "epoch": "Epoch of the step (0: before training).",
    "loss": "Mean training loss over the steps since the last validation.",
    "val_ndcg": "Validation full-catalogue nDCG@10 with the first stage's pool reranked.",
    "blend": "The first stage's share of the final score that gave val_ndcg.",
    "seconds": "Seconds since training started.",
}


@dataclass
class StoredRanker:
    """A loaded `search_ranker` version."""

    ranker: Ranker
    version: int
    params: dict[str, Any]

    @property
    def depth(self) -> int:
        """Candidates per query it reranks."""
        return int(self.params["config"]["depth"])


def has_ranker(ws: Workspace) -> bool:
    """Whether `train search` has stored a ranker here."""
    return has_trained(ws, RANKER_ASSET)


def save_ranker(
    ws: Workspace,
    ce: Ranker,
    params: dict[str, Any],
    history: list[dict[str, Any]],
    base: Retriever,
    judged: Judged,
) -> int:
    """Commit the trained ranker as a new `search_ranker` version; its number."""
    table = pa.Table.from_pylist(history, schema=_HISTORY_SCHEMA)
    return commit_trained(
        ws, RANKER_ASSET, params, table, HISTORY_FILE, _SCHEMA_DOCS, ce.save, base, judged
    )


def stored_params(ws: Workspace, version: int | None = None) -> dict[str, Any]:
    """The params of a stored ranker version (the latest by default).

    Raises:
        NotFoundError: no ranker has been trained (or no such version).
    """
    return trained_params(ws, RANKER_ASSET, version, _NONE_YET)


def load_ranker(
    ws: Workspace, version: int | None = None, precision: RankerPrecision | None = None
) -> StoredRanker:
    """A stored ranker (the latest by default), served at its trained `precision` unless
    another is asked for.

    Raises:
        NotFoundError: no ranker has been trained (or no such version).
    """
    with Warehouse(ws, read_only=True) as wh:
        if version is None and wh.latest(RANKER_ASSET) is None:
            raise NotFoundError(_NONE_YET)
        v = wh.version(RANKER_ASSET, version)
        artifacts = wh.files(RANKER_ASSET, v.version, "artifact")
    cfg = v.params["config"]
    ranker = load_any(artifacts[0].parent, precision or cfg["precision"], int(cfg["max_length"]))
    return StoredRanker(ranker, v.version, dict(v.params))


def open_reranked(
    ws: Workspace,
    lexical: LexicalRetriever,
    dense: DenseRetriever | None = None,
    precision: RankerPrecision | None = None,
    version: int | None = None,
    encoder: ItemEncoder | None = None,
) -> RerankedRetriever:
    """The stored ranker over the first stage it was trained with (hybrid-tuned with the
    encoder version it recorded, hybrid with its stored fusion, or BM25), at its serving
    precision unless another is asked for. A hybrid ranker uses `dense` when given, else
    opens the item index's retriever with `encoder` (None: the index's own encoder).

    Raises:
        NotFoundError: no ranker, or a hybrid-trained ranker without item vectors.
    """
    stored = load_ranker(ws, version, precision)
    base: Retriever = lexical
    tuned = stored.params.get("tuned_encoder")
    if tuned:
        fusion = FusionConfig.model_validate(stored.params["fusion"])
        base = tuned_hybrid(ws, lexical, fusion, version=int(tuned))
    elif stored.params.get("fusion") is not None:
        if dense is None:
            if not has_dense(ws):
                raise NotFoundError(
                    f"{RANKER_ASSET} v{stored.version} reranks hybrid results, but there are "
                    "no item vectors: run `shopkeeper features build`"
                )
            dense = open_dense(ws, lexical.item_ids, encoder)
        fusion = FusionConfig.model_validate(stored.params["fusion"])
        base = HybridRetriever(lexical, dense, fusion)
    with Warehouse(ws, read_only=True) as wh:
        texts = read_item_texts(wh, lexical.item_ids)
    grades = stored.params["grades"]
    return RerankedRetriever(
        base,
        stored.ranker,
        texts,
        stored.depth,
        (float(grades["min_grade"]), float(grades["max_grade"])),
        float(stored.params.get("blend", 0.0)),
        _calibration(stored.params.get("calibration")),
    )


def _calibration(line: dict[str, Any] | None) -> tuple[float, float] | None:
    """The stored grade line (None for rankers stored before it was fitted)."""
    return None if line is None else (float(line["a"]), float(line["b"]))


_NONE_YET = "no search ranker yet; run `shopkeeper train search` first"
