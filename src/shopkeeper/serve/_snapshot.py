"""The serving snapshot: an immutable view of one set of asset versions, shared by workers.

What a worker answers from: the recommender (`rec_model`), every user's history under
it, the popularity ranking, the item index (`similar`) and the searcher. The histories
are written once per snapshot key as `.npy` files under `serving/<key>/` and opened
memory-mapped, so N workers share one copy in the page cache; the FAISS index is read
memory-mapped too. A new key (a new model, events, index or search version, or a user
erased) means a new snapshot; the old one keeps serving the requests that hold it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from shopkeeper.errors import NotFoundError
from shopkeeper.features import INDEX_ASSET
from shopkeeper.ingest import quote_ident
from shopkeeper.logging import Stopwatch, get_logger
from shopkeeper.rec._data import Histories, tie_keys
from shopkeeper.search import SEARCH_INDEX_ASSET
from shopkeeper.search._ltr import LTR_ASSET
from shopkeeper.search._tuned_dense import TUNED_ASSET, beats_base
from shopkeeper.warehouse import Warehouse

if TYPE_CHECKING:
    import numpy.typing as npt

    from shopkeeper.features import AnnIndex
    from shopkeeper.rec._train import RecModel
    from shopkeeper.search import Searcher
    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)

SNAPSHOT_DIR = "serving"
_WATCHED = (
    "rec_model",
    "events",
    "items",
    INDEX_ASSET,
    SEARCH_INDEX_ASSET,
    TUNED_ASSET,
    LTR_ASSET,
)


def snapshot_key(ws: Workspace, erased: int) -> dict[str, int]:
    """The versions a snapshot is made of (0: absent), plus the erasure count.

    A fine-tuned search encoder counts only when it beat the pre-trained one, and the
    learning-to-rank trees only when they beat their first stage (else they are not
    served).
    """
    with Warehouse(ws, read_only=True) as wh:
        latest = {v.asset: v.version for v in wh.latest_versions()}
        for asset in (TUNED_ASSET, LTR_ASSET):
            if latest.get(asset) and not beats_base(wh.version(asset).params):
                del latest[asset]
    key = {a: latest.get(a, 0) for a in _WATCHED}
    key["erased"] = erased
    return key


def _key_id(key: dict[str, int]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class UserHistories:
    """Each known user's model item indices, oldest first, found by pseudonym.

    `users` is sorted (fixed-width bytes) for a binary search; all arrays may be
    memory-mapped.
    """

    users: npt.NDArray[np.bytes_]
    indptr: npt.NDArray[np.int64]
    items: npt.NDArray[np.int64]

    def row(self, pseudonym: str) -> npt.NDArray[np.int64]:
        """The items of one user (empty when unknown)."""
        needle = np.bytes_(pseudonym.encode())
        i = int(np.searchsorted(self.users, needle))
        if i >= len(self.users) or self.users[i] != needle:
            return np.zeros(0, dtype=np.int64)
        return np.asarray(self.items[self.indptr[i] : self.indptr[i + 1]])

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class Snapshot:
    """Everything one worker serves from, for one snapshot key."""

    key: dict[str, int]
    model: RecModel | None
    histories: UserHistories | None
    popular: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    """Model item indices by cold score, best first (the fallback ranking)."""
    popular_scores: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros(0, np.float32))
    ann: AnnIndex | None = None
    searcher: Searcher | None = None
    lexical: Searcher | None = None
    """BM25 alone: the cheaper search a late request falls back to."""
    item_row: dict[str, int] = field(default_factory=dict)
    catalog: npt.NDArray[np.bytes_] = field(default_factory=lambda: np.zeros(0, "S1"))
    """Every item id of the latest items version, sorted (events must name one)."""
    data_latest_us: int | None = None
    """The newest event time in the snapshot (freshness)."""
    built_s: float = 0.0

    @property
    def id(self) -> str:
        """A short id of the key."""
        return _key_id(self.key)

    @property
    def model_version(self) -> int:
        """The rec_model version served (0: none)."""
        return self.key.get("rec_model", 0)

    def knows_item(self, item_id: str) -> bool:
        """Whether the latest items version holds `item_id`."""
        needle = np.bytes_(item_id.encode())
        i = int(np.searchsorted(self.catalog, needle))
        return i < len(self.catalog) and bool(self.catalog[i] == needle)


def open_snapshot(ws: Workspace, key: dict[str, int], threads: int | None = None) -> Snapshot:
    """Load (building its files first if no worker has yet) the snapshot of `key`.

    `threads` caps the query encoder's threads (one worker of several should not use
    every core).
    """
    timer = Stopwatch()
    model = _load_model(ws) if key["rec_model"] else None
    folder = _ensure_files(ws, key, model)
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    histories = None
    if meta["histories"]:
        histories = UserHistories(
            users=np.load(folder / "users.npy", mmap_mode="r"),
            indptr=np.load(folder / "indptr.npy", mmap_mode="r"),
            items=np.load(folder / "items.npy", mmap_mode="r"),
        )
    snap = Snapshot(key=key, model=model, histories=histories, data_latest_us=meta.get("latest_us"))
    if meta["catalog"]:
        snap.catalog = np.load(folder / "catalog.npy", mmap_mode="r")
    if model is not None:
        snap.item_row = {item: i for i, item in enumerate(model.item_ids)}
        cold = model.scorer.score(Histories.from_lists([[]], len(model.item_ids)))[0]
        order = np.argsort(-cold, kind="stable")
        snap.popular, snap.popular_scores = order.astype(np.int64), cold[order]
    if key[INDEX_ASSET]:
        snap.ann = _load_ann(ws)
    if key[SEARCH_INDEX_ASSET]:
        snap.searcher, snap.lexical = _load_searcher(
            ws, bool(key[INDEX_ASSET]), key.get(TUNED_ASSET, 0), threads, key.get(LTR_ASSET, 0)
        )
    snap.built_s = timer.seconds
    _log.info("snapshot open", snapshot=snap.id, seconds=round(snap.built_s, 3), **key)
    return snap


def prepare_snapshot(ws: Workspace, key: dict[str, int]) -> None:
    """Write the files of `key`'s snapshot, which workers then map (loads the model only)."""
    _ensure_files(ws, key, _load_model(ws) if key["rec_model"] else None)


def _load_model(ws: Workspace) -> RecModel:
    from shopkeeper.rec import load_rec_model

    return load_rec_model(ws)


def _load_ann(ws: Workspace) -> AnnIndex:
    from shopkeeper.features import load_item_index

    return load_item_index(ws, mmap=True)


def _load_searcher(
    ws: Workspace, dense: bool, tuned: int, threads: int | None, ltr: int = 0
) -> tuple[Searcher, Searcher]:
    """The searcher and BM25 alone; never rebuilding.

    The searcher is the learning-to-rank trees' version `ltr` over their first stage when
    the key holds one (only trees that beat their first stage on validation count); else
    the best first stage `search` would pick without a trained reorderer (the snapshot key
    holds no transformer ranker, so no worker loads one): hybrid with the fine-tuned
    bi-encoder version `tuned` when the key holds one (only one that beat the pre-trained
    encoder on validation counts), else hybrid when there are item vectors, else BM25.
    """
    from shopkeeper.search import HybridRetriever, Searcher, load_search_index, open_dense
    from shopkeeper.search._ltr import open_ltr
    from shopkeeper.search._retrieve import LexicalRetriever
    from shopkeeper.search._tuned_dense import tuned_hybrid

    lexical = LexicalRetriever(load_search_index(ws))
    bm25 = Searcher(lexical, workspace=ws)
    if ltr:
        try:
            encoder = _query_encoder(ws, threads) if dense else None
            trees = open_ltr(ws, lexical, version=ltr, encoder=encoder, threads=threads)
            return Searcher(trees, workspace=ws), bm25
        except (NotFoundError, ValueError, OSError) as exc:
            _log.warning("learning-to-rank search unavailable", error=str(exc))
    if tuned:
        try:
            hybrid = tuned_hybrid(ws, lexical, threads=threads, version=tuned)
            return Searcher(hybrid, workspace=ws), bm25
        except (NotFoundError, ValueError, OSError) as exc:
            _log.warning("fine-tuned search encoder unavailable", error=str(exc))
    if not dense:
        return bm25, bm25
    try:
        encoder = _query_encoder(ws, threads)
        retriever: Any = HybridRetriever(lexical, open_dense(ws, lexical.item_ids, encoder))
    except (NotFoundError, ValueError) as exc:
        _log.warning("dense search unavailable; serving BM25", error=str(exc))
        return bm25, bm25
    return Searcher(retriever, workspace=ws), bm25


def _query_encoder(ws: Workspace, threads: int | None) -> Any:
    """The encoder the item vectors came from, with `threads` (None: its own setting)."""
    from shopkeeper.features import EMBEDDINGS_ASSET, EncoderConfig, ItemEncoder

    with Warehouse(ws, read_only=True) as wh:
        index = wh.version(INDEX_ASSET)
        emb = wh.version(EMBEDDINGS_ASSET, index.params["embeddings_version"])
    if "encoder" not in emb.params:
        raise NotFoundError("the item embeddings do not record their encoder")
    cfg = dict(emb.params["encoder"])
    if threads:
        cfg["threads"] = threads
    return ItemEncoder(EncoderConfig.model_validate(cfg))


def _ensure_files(ws: Workspace, key: dict[str, int], model: RecModel | None) -> Any:
    """The snapshot folder of `key`, written atomically by whichever worker comes first."""
    root = ws.home / SNAPSHOT_DIR
    folder = root / _key_id(key)
    if (folder / "meta.json").exists():
        return folder
    tmp = root / f".tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True, exist_ok=True)
    root.chmod(0o700)
    try:
        meta: dict[str, Any] = {"key": key, "histories": False, "catalog": False}
        if model is not None and key["events"]:
            users, indptr, items, latest_us = read_all_histories(ws, model)
            np.save(tmp / "users.npy", users)
            np.save(tmp / "indptr.npy", indptr)
            np.save(tmp / "items.npy", items)
            meta.update(histories=True, users=len(users), latest_us=latest_us)
        if key["items"]:
            np.save(tmp / "catalog.npy", read_catalog(ws))
            meta["catalog"] = True
        (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        try:
            tmp.rename(folder)
        except OSError:  # another worker won the race: use its folder
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _sweep_old(root, keep=folder.name)
    return folder


def _sweep_old(root: Any, keep: str, spare: int = 2) -> None:
    """Remove all but the newest few snapshot folders (old workers may still map them)."""
    olds = sorted(
        (d for d in root.iterdir() if d.is_dir() and d.name != keep and d.name[0] != "."),
        key=lambda d: d.stat().st_mtime,
    )
    for d in olds[:-spare] if spare else olds:
        shutil.rmtree(d, ignore_errors=True)


def read_catalog(ws: Workspace) -> npt.NDArray[np.bytes_]:
    """The item ids of the latest items version, sorted, as fixed-width bytes."""
    with Warehouse(ws, read_only=True) as wh:
        col = wh.con.sql("SELECT item_id FROM items ORDER BY item_id").to_arrow_table()
    ids = col.column("item_id").to_numpy(zero_copy_only=False)
    return np.sort(np.char.encode(np.asarray(ids, dtype=str), "utf-8"))


def read_all_histories(
    ws: Workspace, model: RecModel
) -> tuple[npt.NDArray[np.bytes_], npt.NDArray[np.int64], npt.NDArray[np.int64], int | None]:
    """Every user's items under `model`, as `recommend` reads them, in one SQL pass.

    Returns sorted pseudonyms, the CSR pointer, item indices and the newest event time.
    """
    catalog = pa.table(
        {
            "item_id": pa.array(model.item_ids, pa.string()),
            "idx": pa.array(np.arange(len(model.item_ids), dtype=np.int64)),
        }
    )
    with Warehouse(ws, read_only=True) as wh:
        events = quote_ident(f"events_v{wh.version('events').version}")
        con = wh.con
        con.register("_serve_items", catalog)
        try:
            table = con.sql(
                f"""
                SELECT p.user_id, m.idx, p.t
                FROM (SELECT user_id, item_id, min(epoch_us(ts)) AS t FROM {events}
                      WHERE list_contains(?, event_type) GROUP BY ALL) p
                JOIN _serve_items m USING (item_id)
                """,
                params=[model.event_types],
            ).to_arrow_table()
            (latest,) = con.execute(f"SELECT epoch_us(max(ts)) FROM {events}").fetchall()
        finally:
            con.unregister("_serve_items")
    user_col = table.column("user_id").to_numpy(zero_copy_only=False).astype("S")
    item = table.column("idx").to_numpy().astype(np.int64)
    t = table.column("t").to_numpy().astype(np.int64)
    users, inverse = np.unique(user_col, return_inverse=True)
    order = np.lexsort((tie_keys(item, t, 0), t, inverse))
    counts = np.bincount(inverse, minlength=len(users)).astype(np.int64)
    indptr = np.zeros(len(users) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return users, indptr, item[order], (int(latest[0]) if latest and latest[0] else None)
