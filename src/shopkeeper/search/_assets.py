"""The lexical index as a versioned asset with lineage to the items version it indexes.

A `search_index` version holds `ids.parquet` (row -> item_id, its SQL view) and three
artifacts: the BM25 weight matrix (`weights.npz`), its vocabulary (`terms.parquet`) and
the spelling vocabulary with counts (`words.parquet`). It is committed like the features
assets: written under `tmp/`, renamed into a version folder, recorded in one transaction.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from shopkeeper.errors import NotFoundError
from shopkeeper.features._encoder import require_ml
from shopkeeper.ingest import quote_ident
from shopkeeper.logging import Stopwatch, get_logger
from shopkeeper.search._lexical import FIELDS, LexicalConfig, LexicalIndex
from shopkeeper.warehouse import (
    DerivedVersion,
    Warehouse,
    built_from,
    commit_derived,
    new_build_id,
)

if TYPE_CHECKING:
    from pathlib import Path

    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)

SEARCH_INDEX_ASSET = "search_index"


def read_items(wh: Warehouse, version: int) -> tuple[list[str], dict[str, list[str | None]]]:
    """Item ids (sorted) and the text of each indexed field of one items version."""
    view = quote_ident(f"items_v{version}")
    have = {r[0] for r in wh.con.execute(f"DESCRIBE {view}").fetchall()}
    cols = [c for c in FIELDS if c in have]
    table = wh.con.sql(
        f"SELECT item_id, {', '.join(quote_ident(c) for c in cols)} FROM {view} ORDER BY item_id"
    ).to_arrow_table()
    return table.column("item_id").to_pylist(), {c: table.column(c).to_pylist() for c in cols}


def build_search_index(ws: Workspace, cfg: LexicalConfig | None = None) -> dict[str, Any]:
    """Index the latest items version, unless the latest index already does with `cfg`.

    Returns:
        `{"asset", "version", "status" (written|unchanged), "items", "terms", "items_version"}`.

    Raises:
        NotFoundError: the workspace has no items asset.
    """
    cfg = cfg or LexicalConfig()
    params = cfg.model_dump(mode="json")
    fresh = _fresh(ws, params)  # no lock for the common case: nothing to build
    if fresh is not None:
        return fresh
    with ws.write_lock():
        fresh = _fresh(ws, params)
        if fresh is not None:
            return fresh
        with Warehouse(ws, read_only=True) as wh:
            items = wh.version("items")
            last = wh.latest(SEARCH_INDEX_ASSET)
            item_ids, fields = read_items(wh, items.version)
        timer = Stopwatch()
        index = LexicalIndex.build(item_ids, fields, cfg)
        build_id = new_build_id()
        try:
            version = _commit(ws, index, build_id, items.version, last.version if last else None)
        finally:
            shutil.rmtree(ws.tmp_dir / build_id, ignore_errors=True)
    _log.info("built search index", items=len(item_ids), terms=len(index.vocab), elapsed=timer)
    summary_params = {"items_version": items.version, "terms": len(index.vocab)}
    return _summary(version, "written", len(item_ids), summary_params)


def _fresh(ws: Workspace, params: dict[str, Any]) -> dict[str, Any] | None:
    """The latest index's summary if it indexes the latest items with `params`."""
    with Warehouse(ws, read_only=True) as wh:
        items = wh.latest("items")
        if items is None:
            raise NotFoundError("no items yet; ingest a catalogue first")
        last = wh.latest(SEARCH_INDEX_ASSET)
    if built_from(last, {"items_version": items.version, "config": params}):
        return _summary(last.version, "unchanged", last.row_count, last.params)
    return None


def _commit(
    ws: Workspace, index: LexicalIndex, build_id: str, items_version: int, previous: int | None
) -> int:
    sparse = require_ml("scipy.sparse")
    tmp = ws.tmp_dir / build_id
    tmp.mkdir(parents=True, exist_ok=True)
    ids_file, weights_file = tmp / "ids.parquet", tmp / "weights.npz"
    terms_file, words_file = tmp / "terms.parquet", tmp / "words.parquet"
    n = index.n_items
    pq.write_table(
        pa.table({"row": pa.array(range(n), pa.int64()), "item_id": index.item_ids}), ids_file
    )
    sparse.save_npz(weights_file, index.weights, compressed=False)
    pq.write_table(pa.table({"term": index.vocab}), terms_file)
    words = index.speller.vocab
    pq.write_table(
        pa.table({"word": list(words), "count": pa.array(list(words.values()), pa.int64())}),
        words_file,
    )
    parents = [("items", items_version, "indexed_from")]
    if previous is not None:
        parents.append((SEARCH_INDEX_ASSET, previous, "previous"))
    dv = DerivedVersion(
        asset=SEARCH_INDEX_ASSET,
        kind="search_index",
        transform="search.lexical_index",
        params={
            "config": index.cfg.model_dump(mode="json"),
            "items_version": items_version,
            "terms": len(index.vocab),
            "nonzeros": int(index.weights.nnz),
            "library": "bm25s",
        },
        row_count=n,
        schema=[
            {"name": "row", "type": "int64", "nullable": False, "doc": "Column in the index."},
            {"name": "item_id", "type": "string", "nullable": False, "doc": "Item id."},
        ],
        files=[
            ("data", ids_file, n),
            ("artifact", weights_file, int(index.weights.nnz)),
            ("artifact", terms_file, len(index.vocab)),
            ("artifact", words_file, len(words)),
        ],
        parents=parents,
    )
    return commit_derived(ws, dv, build_id)


def _summary(version: int, status: str, n: int, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "asset": SEARCH_INDEX_ASSET,
        "version": version,
        "status": status,
        "items": n,
        "terms": params.get("terms"),
        "items_version": params.get("items_version"),
    }


def load_search_index(ws: Workspace, version: int | None = None) -> LexicalIndex:
    """Load a lexical index version (the latest by default).

    Raises:
        NotFoundError: no search index has been built yet.
    """
    sparse = require_ml("scipy.sparse")
    with Warehouse(ws, read_only=True) as wh:
        if wh.latest(SEARCH_INDEX_ASSET) is None:
            raise NotFoundError("no search index yet; run `shopkeeper search` or build one")
        v = wh.version(SEARCH_INDEX_ASSET, version)
        (ids_file,) = wh.files(SEARCH_INDEX_ASSET, v.version, "data")
        artifacts: dict[str, Path] = {
            p.name: p for p in wh.files(SEARCH_INDEX_ASSET, v.version, "artifact")
        }
    ids = pq.read_table(ids_file).sort_by("row").column("item_id").to_pylist()
    weights = sparse.load_npz(artifacts["weights.npz"])
    terms = pq.read_table(artifacts["terms.parquet"]).column("term").to_pylist()
    words = pq.read_table(artifacts["words.parquet"])
    counts = words.column("count").to_numpy().astype(np.int64)
    cfg = LexicalConfig.model_validate(v.params["config"])
    index = LexicalIndex(ids, terms, weights, words.column("word").to_pylist(), counts, cfg)
    index.version = v.version
    return index
