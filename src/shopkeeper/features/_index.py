"""The ANN index over item embeddings: FAISS, exact when small, HNSW when large.

An index version is immutable: `index.faiss` (an artifact file) plus `ids.parquet`
(row position -> item_id, the version's SQL view), recorded in the catalog with the
embeddings version it was built from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, PositiveInt

from shopkeeper.errors import NotFoundError
from shopkeeper.features._embeddings import EMBEDDINGS_ASSET
from shopkeeper.features._encoder import require_ml
from shopkeeper.ingest import quote_ident
from shopkeeper.logging import Stopwatch, get_logger
from shopkeeper.warehouse import DerivedVersion, Warehouse, commit_derived

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)

INDEX_ASSET = "item_index"
IndexType = Literal["flat", "hnsw"]


class IndexConfig(BaseModel):
    """How the ANN index is chosen and tuned."""

    model_config = ConfigDict(extra="forbid")

    exact_max_items: PositiveInt = 50_000
    """Up to this many items the index is exact (inner product on normalized vectors)."""
    hnsw_m: PositiveInt = 32
    """HNSW links per node."""
    ef_construction: PositiveInt = 200
    """HNSW candidate list size while building."""
    ef_search: PositiveInt = 256
    """HNSW candidate list size while searching: recall@10 >= 0.95 even on 20,000 random
    384-d vectors, where 128 fell short (benchmarks/embed.py)."""


def choose_index_type(n_items: int, cfg: IndexConfig) -> IndexType:
    """Exact below the size threshold, HNSW above.

    >>> choose_index_type(1_000, IndexConfig()), choose_index_type(10**6, IndexConfig())
    ('flat', 'hnsw')
    """
    return "flat" if n_items <= cfg.exact_max_items else "hnsw"


def build_ann(vectors: npt.NDArray[np.float32], cfg: IndexConfig) -> tuple[Any, IndexType]:
    """A FAISS index over L2-normalized `vectors` (cosine = inner product)."""
    faiss = require_ml("faiss")
    n, d = vectors.shape
    kind = choose_index_type(n, cfg)
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    else:
        index = faiss.IndexHNSWFlat(d, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.ef_construction
        index.hnsw.efSearch = cfg.ef_search
    if n:
        index.add(vectors)
    return index, kind


@dataclass
class AnnIndex:
    """A loaded index and the item id of each row."""

    index: Any
    item_ids: list[str]
    kind: IndexType
    version: int = 0

    def __post_init__(self) -> None:
        self._pos = {item: i for i, item in enumerate(self.item_ids)}

    def search(
        self, queries: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Scores and row positions of the `k` nearest rows of each query (-1: none)."""
        scores, rows = self.index.search(queries, k)
        return scores, rows

    def vector(self, item_id: str) -> npt.NDArray[np.float32]:
        """The stored vector of one item.

        Raises:
            NotFoundError: the item is not in the index.
        """
        if item_id not in self._pos:
            raise NotFoundError(f"item {item_id!r} is not in the index (v{self.version})")
        vec: npt.NDArray[np.float32] = self.index.reconstruct(self._pos[item_id])
        return vec.reshape(1, -1)

    def similar(self, item_id: str, k: int) -> list[dict[str, Any]]:
        """The `k` items nearest to `item_id`, best first, the item itself left out."""
        scores, rows = self.search(self.vector(item_id), k + 1)
        out = []
        for s, r in zip(scores[0], rows[0], strict=True):
            if r < 0 or self.item_ids[r] == item_id:
                continue
            out.append({"item_id": self.item_ids[r], "score": round(float(s), 6)})
        return out[:k]


def read_embeddings(wh: Warehouse, version: int) -> tuple[list[str], npt.NDArray[np.float32]]:
    """Item ids and the (n, d) float32 matrix of one embeddings version."""
    np_ = require_ml("numpy")
    table = wh.con.sql(
        f"SELECT item_id, embedding FROM {quote_ident(f'{EMBEDDINGS_ASSET}_v{version}')} "
        "ORDER BY item_id"
    ).to_arrow_table()
    emb = table.column("embedding").combine_chunks()
    n = len(table)
    flat = emb.flatten().to_numpy(zero_copy_only=False).astype(np_.float32, copy=False)
    vectors = np_.ascontiguousarray(flat.reshape(n, -1) if n else flat.reshape(0, 0))
    return table.column("item_id").to_pylist(), vectors


def build_item_index(ws: Workspace, cfg: IndexConfig, build_id: str) -> dict[str, Any]:
    """Index the latest embeddings version, unless the latest index already does.

    Call with the workspace write lock held.
    """
    faiss = require_ml("faiss")
    with Warehouse(ws, read_only=True) as wh:
        emb = wh.latest(EMBEDDINGS_ASSET)
        if emb is None:
            raise NotFoundError("no item embeddings yet; run `shopkeeper features build`")
        last = wh.latest(INDEX_ASSET)
        params = cfg.model_dump(mode="json")
        if (
            last is not None
            and last.params.get("embeddings_version") == emb.version
            and last.params.get("config") == params
        ):
            return _summary(last.version, "unchanged", last.params["type"], last.row_count)
        item_ids, vectors = read_embeddings(wh, emb.version)
    timer = Stopwatch()
    index, kind = build_ann(vectors, cfg)
    tmp = ws.tmp_dir / build_id
    tmp.mkdir(parents=True, exist_ok=True)
    index_file, ids_file = tmp / "index.faiss", tmp / "ids.parquet"
    faiss.write_index(index, str(index_file))
    pq.write_table(
        pa.table({"row": pa.array(range(len(item_ids)), pa.int64()), "item_id": item_ids}),
        ids_file,
    )
    _log.info("built ANN index", type=kind, n=len(item_ids), elapsed=str(timer))
    parents = [(EMBEDDINGS_ASSET, emb.version, "indexed_from")]
    if last is not None:
        parents.append((INDEX_ASSET, last.version, "previous"))
    dv = DerivedVersion(
        asset=INDEX_ASSET,
        kind="ann_index",
        transform="features.item_index",
        params={
            "type": kind,
            "metric": "inner_product",
            "dim": int(vectors.shape[1]) if len(item_ids) else 0,
            "config": params,
            "embeddings_version": emb.version,
            "model_id": emb.params.get("model_id"),
        },
        row_count=len(item_ids),
        schema=[
            {"name": "row", "type": "int64", "nullable": False, "doc": "Row in the index."},
            {"name": "item_id", "type": "string", "nullable": False, "doc": "Item id."},
        ],
        files=[("data", ids_file, len(item_ids)), ("artifact", index_file, len(item_ids))],
        parents=parents,
    )
    version = commit_derived(ws, dv, build_id)
    return _summary(version, "written", kind, len(item_ids))


def _summary(version: int, status: str, kind: str, n: int) -> dict[str, Any]:
    return {"asset": INDEX_ASSET, "version": version, "status": status, "type": kind, "items": n}


def load_item_index(ws: Workspace, version: int | None = None, mmap: bool = False) -> AnnIndex:
    """Load an index version (the latest by default).

    With `mmap` a flat index's vectors stay in the file, memory-mapped and shared by every
    process that maps it (the serving workers), instead of one private copy each.

    Raises:
        NotFoundError: no index has been built yet.
    """
    faiss = require_ml("faiss")
    with Warehouse(ws, read_only=True) as wh:
        if wh.latest(INDEX_ASSET) is None:
            raise NotFoundError("no item index yet; run `shopkeeper features build` first")
        v = wh.version(INDEX_ASSET, version)
        (ids_file,) = wh.files(INDEX_ASSET, v.version, "data")
        (index_file,) = wh.files(INDEX_ASSET, v.version, "artifact")
    try:
        flags = faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY if mmap else 0
        index = faiss.read_index(str(index_file), flags)
    except RuntimeError:  # an index type FAISS cannot map: read it into memory
        index = faiss.read_index(str(index_file))
    if v.params["type"] == "hnsw":
        index.hnsw.efSearch = v.params["config"]["ef_search"]
    ids = pq.read_table(ids_file).sort_by("row").column("item_id").to_pylist()
    return AnnIndex(index, ids, v.params["type"], v.version)
