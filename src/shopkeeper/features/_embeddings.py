"""Item embeddings as a versioned asset, rebuilt incrementally.

A vector is keyed by (model id, text hash): a rebuild encodes only texts whose hash no
earlier version under the same model id and text template holds, and copies the rest.
Each version is a full snapshot (item_id, text_hash, text, embedding) of the items
version it was built from, so any version can be read on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from shopkeeper.errors import NotFoundError
from shopkeeper.features._encoder import require_ml
from shopkeeper.features._text import ItemTextConfig, item_text_sql
from shopkeeper.ingest import quote_ident, sql_literal
from shopkeeper.logging import Stopwatch, get_logger
from shopkeeper.warehouse import AssetVersion, DerivedVersion, Warehouse, commit_derived

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from shopkeeper.features._encoder import ItemEncoder
    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)

EMBEDDINGS_ASSET = "item_embeddings"
_PARQUET = "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 16384)"


def _schema(dim: int) -> list[dict[str, Any]]:
    return [
        {"name": "item_id", "type": "string", "nullable": False, "doc": "Item id.", "pii": "none"},
        {
            "name": "text_hash",
            "type": "string",
            "nullable": False,
            "doc": "SHA-256 of the text; with the model id, the key of the vector.",
            "pii": "none",
        },
        {
            "name": "text",
            "type": "string",
            "nullable": False,
            "doc": "The item text the encoder read (template applied, truncated).",
            "pii": "none",
        },
        {
            "name": "embedding",
            "type": f"list<float>[{dim}]",
            "nullable": False,
            "doc": "L2-normalized text embedding.",
            "pii": "none",
        },
    ]


@dataclass(frozen=True)
class EmbeddingsResult:
    """What one embeddings build did."""

    version: int
    status: str
    items: int
    encoded: int
    reused: int
    model_id: str
    items_version: int

    def summary(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "asset": EMBEDDINGS_ASSET,
            "version": self.version,
            "status": self.status,
            "items": self.items,
            "encoded": self.encoded,
            "reused": self.reused,
            "model_id": self.model_id,
            "items_version": self.items_version,
        }


def _reusable(versions: list[AssetVersion], model_id: str, text: dict[str, Any]) -> int | None:
    """The newest embeddings version built with the same model id and text template."""
    for v in reversed(versions):
        if v.params.get("model_id") == model_id and v.params.get("text") == text:
            return v.version
    return None


def build_item_embeddings(
    ws: Workspace, text_cfg: ItemTextConfig, encoder: ItemEncoder, build_id: str
) -> EmbeddingsResult:
    """Embed the latest items version, encoding only texts not embedded before.

    Call with the workspace write lock held.

    Raises:
        NotFoundError: the workspace has no items asset yet.
    """
    np_ = require_ml("numpy")
    text_params = text_cfg.model_dump(mode="json")
    model_id = encoder.model_id
    tmp = ws.tmp_dir / build_id
    tmp.mkdir(parents=True, exist_ok=True)
    out = tmp / "embeddings.parquet"
    with Warehouse(ws, read_only=True) as wh:
        items = wh.latest("items")
        if items is None:
            raise NotFoundError("no items asset yet; ingest items before `features build`")
        try:
            versions = wh.versions(EMBEDDINGS_ASSET)
        except NotFoundError:
            versions = []
        reuse = _reusable(versions, model_id, text_params)
        last = versions[-1] if versions else None
        if (
            last is not None
            and last.version == reuse
            and last.params.get("items_version") == items.version
        ):
            return EmbeddingsResult(
                last.version,
                "unchanged",
                last.row_count,
                0,
                last.row_count,
                model_id,
                items.version,
            )
        con = wh.con
        con.execute(
            f"CREATE TEMP TABLE _texts AS SELECT item_id, text, sha256(text) AS text_hash "
            f"FROM (SELECT item_id, {item_text_sql(text_cfg)} AS text "
            f"FROM {quote_ident(f'items_v{items.version}')})"
        )
        prev = (
            f"(SELECT text_hash, any_value(embedding) AS embedding "
            f"FROM {quote_ident(f'{EMBEDDINGS_ASSET}_v{reuse}')} GROUP BY text_hash)"
            if reuse
            else "(SELECT NULL::VARCHAR AS text_hash, NULL::FLOAT[] AS embedding WHERE false)"
        )
        con.execute(f"CREATE TEMP TABLE _prev AS SELECT * FROM {prev}")
        missing = con.execute(
            "SELECT text_hash, any_value(text) FROM _texts "
            "ANTI JOIN _prev USING (text_hash) GROUP BY text_hash ORDER BY text_hash"
        ).fetchall()
        timer = Stopwatch()
        if missing:
            vectors = encoder.encode([t for _, t in missing])
            dim = int(vectors.shape[1])
        elif reuse:  # nothing new: do not even load the model
            dim = int(next(v for v in versions if v.version == reuse).params["dim"])
            vectors = np_.empty((0, dim), dtype=np_.float32)
        else:  # an empty catalog
            dim = encoder.dim
            vectors = np_.empty((0, dim), dtype=np_.float32)
        _log.info("encoded item texts", n=len(missing), model_id=model_id, elapsed=str(timer))
        new = _vectors_table([h for h, _ in missing], vectors)
        con.register("_new", new)
        con.execute(
            "COPY (SELECT t.item_id, t.text_hash, t.text, "
            "coalesce(n.embedding, p.embedding) AS embedding FROM _texts t "
            "LEFT JOIN _new n USING (text_hash) LEFT JOIN _prev p USING (text_hash) "
            f"ORDER BY t.item_id) TO {sql_literal(str(out))} {_PARQUET}"
        )
        counts = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE n.text_hash IS NULL) "
            "FROM _texts t LEFT JOIN _new n USING (text_hash)"
        ).fetchall()
        n_items, n_reused = int(counts[0][0]), int(counts[0][1])
        con.unregister("_new")
    parents = [("items", items.version, "encoded_from")]
    if last is not None:
        parents.append((EMBEDDINGS_ASSET, last.version, "previous"))
    sha, size = encoder.model_digest
    dv = DerivedVersion(
        asset=EMBEDDINGS_ASSET,
        kind="embeddings",
        transform="features.item_embeddings",
        params={
            "model_id": model_id,
            "encoder": encoder.dump_config(),
            "text": text_params,
            "items_version": items.version,
            "reused_from": reuse,
            "dim": dim,
        },
        row_count=n_items,
        schema=_schema(dim),
        files=[("data", out, n_items)],
        parents=parents,
        sources=[(str(encoder.model_dir), sha, size)],
        quality={"load": {"items": n_items, "encoded": len(missing), "reused": n_reused}},
    )
    version = commit_derived(ws, dv, build_id)
    return EmbeddingsResult(
        version, "written", n_items, len(missing), n_reused, model_id, items.version
    )


def vector_column(vectors: npt.NDArray[np.float32]) -> pa.Array:
    """An Arrow list<float> column from an (n, d) float32 array, without copying rows."""
    n, d = vectors.shape
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    offsets = pa.array(range(0, (n + 1) * d, d) if d else [0] * (n + 1), type=pa.int32())
    return pa.ListArray.from_arrays(offsets, flat)


def _vectors_table(hashes: list[str], vectors: npt.NDArray[np.float32]) -> pa.Table:
    """An Arrow table (text_hash, embedding FLOAT[]) from hashes and an (n, d) float32 array."""
    return pa.table(
        {"text_hash": pa.array(hashes, type=pa.string()), "embedding": vector_column(vectors)}
    )
