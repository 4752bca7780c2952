"""Page data of the playground: search and recommendations with scores and reasons."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from shopkeeper.errors import NotFoundError, ShopkeeperError
from shopkeeper.rec._data import Histories
from shopkeeper.rec._metrics import top_k
from shopkeeper.warehouse import Warehouse

if TYPE_CHECKING:
    import numpy.typing as npt

    from shopkeeper.features import AnnIndex
    from shopkeeper.serve._service import Service
    from shopkeeper.serve._snapshot import Snapshot

ItemInfo = dict[str, Any]
_ITEMS: dict[tuple[str, int], dict[str, ItemInfo]] = {}
_ITEMS_LOCK = threading.Lock()
_WHY_HISTORY = 200
"""The most recent history items compared with each recommendation."""


def item_info(service: Service) -> dict[str, ItemInfo]:
    """Title, price and category of every item of the served items version (cached)."""
    key = (str(service.ws.home), service.snapshot.key.get("items", 0))
    with _ITEMS_LOCK:
        if key in _ITEMS:
            return _ITEMS[key]
    with Warehouse(service.ws, read_only=True) as wh:
        rows = wh.con.execute(
            "SELECT item_id, title, price, currency, category_path FROM items"
        ).fetchall()
    info = {
        r[0]: {"title": r[1] or "", "price": r[2], "currency": r[3] or "", "category": r[4] or ""}
        for r in rows
    }
    with _ITEMS_LOCK:
        _ITEMS.clear()  # one workspace's catalogue at a time
        _ITEMS[key] = info
    return info


def active_users(snap: Snapshot, n: int = 25) -> list[dict[str, Any]]:
    """The pseudonyms of the users with the longest histories (for the user picker)."""
    h = snap.histories
    if h is None or len(h) == 0:
        return []
    lengths = np.diff(np.asarray(h.indptr))
    order = np.argsort(-lengths, kind="stable")[:n]
    return [{"pseudonym": h.users[i].decode(), "items": int(lengths[i])} for i in order]


def _unit(v: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    out: npt.NDArray[np.float32] = (v / np.where(norm == 0, 1, norm)).astype(np.float32)
    return out


def _vector(ann: AnnIndex, item_id: str) -> npt.NDArray[np.float32] | None:
    try:
        return ann.vector(item_id)
    except NotFoundError:
        return None


def explain(snap: Snapshot, history: list[str], items: list[str]) -> dict[str, dict[str, Any]]:
    """For each item, the most similar item of the history by text embedding (cosine)."""
    ann = snap.ann
    if ann is None or not history:
        return {}
    known, vecs = [], []
    for h in dict.fromkeys(history[-_WHY_HISTORY:]):
        v = _vector(ann, h)
        if v is not None:
            known.append(h)
            vecs.append(v)
    if not known:
        return {}
    hist = _unit(np.concatenate(vecs))
    out = {}
    for item in items:
        v = _vector(ann, item)
        if v is None:
            continue
        sims = hist @ _unit(v)[0]
        best = int(np.argmax(sims))
        out[item] = {"because": known[best], "similarity": round(float(sims[best]), 4)}
    return out


def _by_pseudonym(snap: Snapshot, pseudo: str, k: int) -> tuple[list[Any], list[str]]:
    """The model's top `k` for a known user picked by pseudonym, and their history."""
    model = snap.model
    if model is None or snap.histories is None:
        return [], []
    hist = snap.histories.row(pseudo)
    scores = model.scorer.score(Histories.from_lists([hist.tolist()], len(model.item_ids)))
    scores[0, hist] = -np.inf
    top = top_k(scores, min(k, len(model.item_ids)))[0]
    items = [
        {"item_id": model.item_ids[int(i)], "score": round(float(scores[0, i]), 6)}
        for i in top
        if np.isfinite(scores[0, i])
    ]
    return items, [model.item_ids[int(i)] for i in hist]


async def recommendations(
    service: Service, user_id: str | None, pseudonym: str | None, k: int
) -> dict[str, Any]:
    """Recommendations for a raw user id (through the service) or a picked pseudonym."""
    snap = service.snapshot
    if snap.model is None:
        return {"error": "no trained recommender; run `shopkeeper train rec` first"}
    if user_id:
        out = await service.recommend(user_id, k)
        pseudo = service.pseudonymizer.pseudonymize(user_id)
        hist_rows, _ = await asyncio.to_thread(service.history, snap, pseudo)
        history = [snap.model.item_ids[int(i)] for i in hist_rows]
    else:
        assert pseudonym is not None
        items, history = await asyncio.to_thread(_by_pseudonym, snap, pseudonym, k)
        out = {"items": items, "fallback": None, "cached": False}
        if not history:
            out["fallback"], out["reason"] = "popularity", "no history"
    why = await asyncio.to_thread(explain, snap, history, [i["item_id"] for i in out["items"]])
    catalogue = await asyncio.to_thread(item_info, service)
    rows = []
    for rank, hit in enumerate(out["items"], 1):
        reason = why.get(hit["item_id"])
        if out.get("fallback"):
            text = f"popular overall ({out.get('reason', 'fallback')})"
        elif reason:
            title = catalogue.get(reason["because"], {}).get("title", reason["because"])
            text = f"similar to “{title}” in the history (cosine {reason['similarity']:.2f})"
        else:
            text = "scored by the model from the whole history"
        rows.append({"rank": rank, **hit, **catalogue.get(hit["item_id"], {}), "why": text})
    return {
        "model": snap.model.params.get("model"),
        "model_version": snap.model_version,
        "history_length": len(history),
        "history": [{"item_id": h, **catalogue.get(h, {})} for h in reversed(history[-5:])],
        "fallback": out.get("fallback"),
        "reason": out.get("reason"),
        "cached": out.get("cached", False),
        "items": rows,
    }


async def search_results(
    service: Service, query: str, user_id: str | None, k: int
) -> dict[str, Any]:
    """Search hits with item text and price, and the score of each stage."""
    res = await service.run_search(query, k, None, user_id or None)
    catalogue = await asyncio.to_thread(item_info, service)
    rows = []
    for rank, hit in enumerate(res["items"], 1):
        stages = hit.get("stages") or {}
        retrieval = stages.get("retrieval", hit["score"])
        personal = stages.get("personalization")
        why = f"retrieval ({res['model']}) scored it {retrieval:.3f}"
        if personal is not None:
            why += f"; the user's taste added affinity {personal:.3f}, final {hit['score']:.3f}"
        rows.append(
            {
                "rank": rank,
                "item_id": hit["item_id"],
                "score": hit["score"],
                "retrieval": retrieval,
                "personalization": personal,
                **catalogue.get(hit["item_id"], {}),
                "why": why,
            }
        )
    return {
        "query": res["query"],
        "model": res["model"],
        "personalized": res["personalized"],
        "cached": res.get("cached", False),
        "items": rows,
    }


async def playground(
    service: Service, q: str, user_id: str, pseudonym: str, k: int
) -> dict[str, Any]:
    """Everything the playground shows for one submission (errors shown, not raised)."""
    data: dict[str, Any] = {"q": q, "user_id": user_id, "pseudonym": pseudonym, "k": k}
    data["users"] = active_users(service.snapshot)
    try:
        if q:
            data["search"] = await search_results(service, q, user_id or None, k)
        if user_id or pseudonym:
            data["rec"] = await recommendations(service, user_id or None, pseudonym or None, k)
    except ShopkeeperError as exc:
        data["error"] = str(exc)
    return data
