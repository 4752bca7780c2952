"""The fine-tuned bi-encoder as a versioned asset, `search_encoder`, and its retriever.

A version holds the fp32 sentence-transformers folder (`model/`, kept as a tree), the
catalogue encoded with it (`index.faiss`, FAISS like `item_index`) and `ids.parquet`
(index row -> item id, the version's SQL view). Its params record the training config,
the query encoder settings the vectors were made with (queries must be encoded the same
way), the validation history and the data versions it was trained on.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from shopkeeper.errors import NotFoundError
from shopkeeper.features import AnnIndex, EncoderConfig, IndexConfig, ItemEncoder
from shopkeeper.features._encoder import require_ml
from shopkeeper.search._assets import SEARCH_INDEX_ASSET
from shopkeeper.search._fusion import FusionConfig, HybridRetriever
from shopkeeper.search._retrieve import DenseRetriever
from shopkeeper.warehouse import DerivedVersion, Warehouse, commit_derived, new_build_id

if TYPE_CHECKING:
    from pathlib import Path

    from shopkeeper.search._data import Judged
    from shopkeeper.search._retrieve import LexicalRetriever
    from shopkeeper.warehouse import Workspace

TUNED_ASSET = "search_encoder"
TUNED_NAME = "dense-tuned"
MODEL_FOLDER = "model"
_NONE_YET = "no fine-tuned search encoder yet; run `shopkeeper train search --model bi-encoder`"


def has_tuned_dense(ws: Workspace) -> bool:
    """Whether `train search --model bi-encoder` has stored an encoder here."""
    with Warehouse(ws, read_only=True) as wh:
        return wh.latest(TUNED_ASSET) is not None


def tuned_params(ws: Workspace, version: int | None = None) -> dict[str, Any]:
    """The params of a stored bi-encoder version (the latest by default).

    Raises:
        NotFoundError: none has been trained (or no such version).
    """
    with Warehouse(ws, read_only=True) as wh:
        if version is None and wh.latest(TUNED_ASSET) is None:
            raise NotFoundError(_NONE_YET)
        return dict(wh.version(TUNED_ASSET, version).params)


def save_tuned(
    ws: Workspace,
    model_dir: Path,
    encoder_cfg: EncoderConfig,
    ann: AnnIndex,
    dim: int,
    params: dict[str, Any],
    judged: Judged,
    index_version: int | None,
) -> int:
    """Commit the model folder and the index of the catalogue's vectors (built with the
    default `IndexConfig`) as a new `search_encoder` version."""
    faiss = require_ml("faiss")
    build_id = new_build_id()
    tmp = ws.tmp_dir / build_id
    parents = [
        ("queries", judged.queries_version, "trained_on"),
        ("judgments", judged.judgments_version, "trained_on"),
    ]
    if index_version:
        parents.append((SEARCH_INDEX_ASSET, index_version, "candidates_from"))
    index_cfg = IndexConfig()
    with ws.write_lock():
        try:
            tree = tmp / "tree"
            shutil.copytree(model_dir, tree / MODEL_FOLDER)
            item_ids = ann.item_ids
            index_file, ids_file = tmp / "index.faiss", tmp / "ids.parquet"
            faiss.write_index(ann.index, str(index_file))
            rows = pa.array(range(len(item_ids)), pa.int64())
            pq.write_table(pa.table({"row": rows, "item_id": item_ids}), ids_file)
            with Warehouse(ws, read_only=True) as wh:
                latest = wh.latest(TUNED_ASSET)
            if latest is not None:
                parents.append((TUNED_ASSET, latest.version, "previous"))
            model_files = sorted(p for p in (tree / MODEL_FOLDER).rglob("*") if p.is_file())
            dv = DerivedVersion(
                asset=TUNED_ASSET,
                kind="search_encoder",
                transform="search.train_bi_encoder",
                params={
                    **params,
                    "encoder": encoder_cfg.model_dump(mode="json", exclude={"model_path"}),
                    "index": {"type": ann.kind, "config": index_cfg.model_dump(mode="json")},
                    "dim": dim,
                },
                row_count=len(item_ids),
                schema=[
                    {"name": "row", "type": "int64", "nullable": False, "doc": "Index row."},
                    {"name": "item_id", "type": "string", "nullable": False, "doc": "Item id."},
                ],
                files=[
                    ("data", ids_file, len(item_ids)),
                    ("artifact", index_file, len(item_ids)),
                    *(("artifact", p, 1) for p in model_files),
                ],
                parents=parents,
                tree=tree,
            )
            return commit_derived(ws, dv, build_id)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def tuned_helps(ws: Workspace) -> bool:
    """A fine-tuned bi-encoder is stored and beat the pre-trained one on validation."""
    with Warehouse(ws, read_only=True) as wh:
        latest = wh.latest(TUNED_ASSET)
    return latest is not None and beats_base(latest.params)


def beats_base(params: dict[str, Any]) -> bool:
    """Whether a trained search model's params (bi-encoder or ranker) say it beat what it
    started from on its validation queries."""
    return float(params["validation_ndcg"]) > float(params["validation_ndcg_base"])


def open_tuned_dense(
    ws: Workspace, item_ids: list[str], version: int | None = None, threads: int | None = None
) -> DenseRetriever:
    """Dense retrieval with the fine-tuned encoder over the vectors it made of the catalogue
    (`threads` caps the query encoder's; None: its stored setting).

    Raises:
        NotFoundError: no fine-tuned encoder has been stored (or no such version).
    """
    return _open(ws, item_ids, version, threads)[0]


def tuned_hybrid(
    ws: Workspace,
    lexical: LexicalRetriever,
    fusion: FusionConfig | None = None,
    threads: int | None = None,
    version: int | None = None,
) -> HybridRetriever:
    """BM25 fused with the fine-tuned encoder (`version`, default the latest), by the
    fusion tuned for it on validation unless `fusion` is given (`threads` caps the query
    encoder's).

    Raises:
        NotFoundError: no fine-tuned encoder has been stored (or no such version).
    """
    tuned, params = _open(ws, lexical.item_ids, version, threads)
    stored = params.get("fusion")
    if fusion is None and stored is not None:
        fusion = FusionConfig.model_validate(stored)
    return HybridRetriever(lexical, tuned, fusion)


def _open(
    ws: Workspace, item_ids: list[str], version: int | None, threads: int | None
) -> tuple[DenseRetriever, dict[str, Any]]:
    """The tuned dense retriever of a version and that version's params (one catalog read)."""
    faiss = require_ml("faiss")
    with Warehouse(ws, read_only=True) as wh:
        if version is None and wh.latest(TUNED_ASSET) is None:
            raise NotFoundError(_NONE_YET)
        v = wh.version(TUNED_ASSET, version)
        (ids_file,) = wh.files(TUNED_ASSET, v.version, "data")
        artifacts = wh.files(TUNED_ASSET, v.version, "artifact")
    params = dict(v.params)
    index_file = next(p for p in artifacts if p.name == "index.faiss")
    index = faiss.read_index(str(index_file))
    if params["index"]["type"] == "hnsw":
        index.hnsw.efSearch = params["index"]["config"]["ef_search"]
    ids = pq.read_table(ids_file).sort_by("row").column("item_id").to_pylist()
    ann = AnnIndex(index, ids, params["index"]["type"], v.version)
    encoder = {**params["encoder"], "model_path": index_file.parent / MODEL_FOLDER}
    if threads:
        encoder["threads"] = threads
    cfg = EncoderConfig.model_validate(encoder)
    return DenseRetriever(ann, ItemEncoder(cfg), item_ids, name=TUNED_NAME), params
