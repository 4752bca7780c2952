"""Committing a trained search model (the ranker, the LambdaMART trees) as a new version.

Both record the same lineage: the queries and judgments they were trained on, the search
index, item embeddings or fine-tuned encoder their first stage drew candidates from, and
their own previous version; a small table (training history, feature importances) is the
version's data file and the model files are its artifacts.
"""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq

from shopkeeper.errors import NotFoundError
from shopkeeper.features import EMBEDDINGS_ASSET, INDEX_ASSET
from shopkeeper.search._assets import SEARCH_INDEX_ASSET
from shopkeeper.search._tuned_dense import TUNED_ASSET
from shopkeeper.warehouse import DerivedVersion, Warehouse, commit_derived, new_build_id

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    import pyarrow as pa

    from shopkeeper.search._data import Judged
    from shopkeeper.search._retrieve import Retriever
    from shopkeeper.warehouse import Workspace


def commit_trained(
    ws: Workspace,
    asset: str,
    params: dict[str, Any],
    table: pa.Table,
    data_name: str,
    docs: dict[str, str],
    write_artifacts: Callable[[Path], list[Path]],
    base: Retriever,
    judged: Judged,
) -> int:
    """Write `table` (as `data_name`, column docs in `docs`) and the artifacts
    `write_artifacts` puts in a fresh folder, commit them as a new version of `asset` with
    its lineage; the version's number."""
    build_id = new_build_id()
    tmp = ws.tmp_dir / build_id
    data_file = tmp / data_name
    parents = [
        ("queries", judged.queries_version, "trained_on"),
        ("judgments", judged.judgments_version, "trained_on"),
    ]
    index = getattr(getattr(base, "lexical", base), "index", None)
    if index is not None and index.version:
        parents.append((SEARCH_INDEX_ASSET, int(index.version), "candidates_from"))
    dense = getattr(base, "dense", None)
    with ws.write_lock():
        try:
            tmp.mkdir(parents=True, exist_ok=True)
            artifacts = write_artifacts(tmp)
            pq.write_table(table, data_file)
            with Warehouse(ws, read_only=True) as wh:
                if dense is not None and params.get("tuned_encoder"):
                    parents.append((TUNED_ASSET, int(params["tuned_encoder"]), "candidates_from"))
                elif dense is not None:
                    emb = wh.version(INDEX_ASSET, dense.ann.version).params["embeddings_version"]
                    parents.append((EMBEDDINGS_ASSET, int(emb), "candidates_from"))
                latest = wh.latest(asset)
            if latest is not None:
                parents.append((asset, latest.version, "previous"))
            dv = DerivedVersion(
                asset=asset,
                kind=asset,
                transform=f"search.train_{asset.removeprefix('search_')}",
                params=params,
                row_count=table.num_rows,
                schema=[
                    {
                        "name": f.name,
                        "type": str(f.type),
                        "nullable": True,
                        "pii": "none",
                        "doc": docs[f.name],
                    }
                    for f in table.schema
                ],
                files=[
                    ("data", data_file, table.num_rows),
                    *(("artifact", p, 1) for p in artifacts),
                ],
                parents=parents,
            )
            return commit_derived(ws, dv, build_id)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def has_trained(ws: Workspace, asset: str) -> bool:
    """Whether a model has been stored as `asset` here."""
    with Warehouse(ws, read_only=True) as wh:
        return wh.latest(asset) is not None


def trained_params(ws: Workspace, asset: str, version: int | None, none_yet: str) -> dict[str, Any]:
    """The params of a stored model version (None: the latest).

    Raises:
        NotFoundError: none has been stored (`none_yet` says how to make one), or no such
            version.
    """
    with Warehouse(ws, read_only=True) as wh:
        if version is None and wh.latest(asset) is None:
            raise NotFoundError(none_yet)
        return dict(wh.version(asset, version).params)
