"""`recommend`: the top items of many users from the stored model, in one pass.

User ids arrive as the source gave them; they are pseudonymized inside DuckDB with the
workspace key chain (the same SQL ingest runs), joined to the latest events in one
query, turned into histories over the model's items and scored in batches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from shopkeeper.clean import norm_id
from shopkeeper.errors import ConfigError, NotFoundError
from shopkeeper.ingest import quote_ident
from shopkeeper.logging import Stopwatch, get_logger
from shopkeeper.rec._data import Histories, tie_keys
from shopkeeper.rec._metrics import top_k
from shopkeeper.rec._train import load_rec_model
from shopkeeper.warehouse import Warehouse

if TYPE_CHECKING:
    from pathlib import Path

    import numpy.typing as npt

    from shopkeeper.rec._train import RecModel
    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)

FALLBACK = "popularity"
"""The `fallback` of entries for users without a usable history."""


def read_user_ids(path: Path) -> list[str]:
    """User ids from a file, one a line (surrounding spaces trimmed).

    Raises:
        ConfigError: the file cannot be read, is empty, or has a blank line (with its number).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the user file: {exc}", path=str(path)) from exc
    ids = [line.strip() for line in text.splitlines()]
    for n, uid in enumerate(ids, 1):
        if not uid:
            raise ConfigError(f"line {n}: empty user id", path=str(path))
    if not ids:
        raise ConfigError("no user ids in the file", path=str(path))
    return ids


def recommend(
    ws: Workspace,
    user_ids: list[str],
    k: int = 10,
    *,
    include_seen: bool = False,
    batch_size: int = 2048,
    model: RecModel | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """The `k` best items of each user, best first: `{user_id: [{"item_id", "score"}, …]}`.

    Args:
        ws: The workspace (must hold a trained `rec_model`).
        user_ids: Ids as the source gave them; a repeated id is answered once.
        k: Items per user.
        include_seen: Keep items the user already interacted with.
        batch_size: Users scored at once (bounds memory: batch x catalog floats).
        model: A loaded model (default: the latest `rec_model`).

    Returns:
        One list per distinct id, in input order. A user without history (unknown, or
        only items the model does not know) gets the scorer's cold ranking, and every
        entry of theirs carries `"fallback": "popularity"`.

    Raises:
        ConfigError: an empty id, or k < 1.
        NotFoundError: no trained model or no events.
    """
    if k < 1:
        raise ConfigError(f"k must be at least 1, not {k}")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, not {batch_size}")
    blank = [i for i, u in enumerate(user_ids) if not u.strip()]
    if blank:
        raise ConfigError(f"empty user id at position {blank[0] + 1}")
    ids = list(dict.fromkeys(user_ids))
    model = model or load_rec_model(ws)
    timer = Stopwatch()
    histories = read_histories(ws, ids, model)
    read_s = timer.seconds
    items, scores = _rank(model, histories, k, include_seen, batch_size)
    out = _entries(ids, model, histories, items, scores)
    _log.info(
        "recommended",
        users=len(ids),
        cold=int((histories.lengths == 0).sum()),
        model_version=model.version,
        read_s=round(read_s, 3),
        total_s=round(timer.seconds, 3),
    )
    return out


def read_histories(ws: Workspace, user_ids: list[str], model: RecModel) -> Histories:
    """Row i: the items of `user_ids[i]` known to `model`, oldest first (one SQL query).

    Each (user, item) pair counts once, at its first event, as in training; events
    with the same time are ordered by the same seeded hash.
    """
    n_items = len(model.item_ids)
    with Warehouse(ws, read_only=True) as wh:
        if wh.latest("events") is None:
            raise NotFoundError("no events asset yet; ingest events first")
        pos, item, t = _query(wh, ws, user_ids, model)
    order = np.lexsort((tie_keys(item, t, 0), t, pos))
    return Histories.from_pairs(pos[order], item[order], len(user_ids), n_items)


def _query(
    wh: Warehouse, ws: Workspace, user_ids: list[str], model: RecModel
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(request position, model item index, first time) of every requested user's pair."""
    pseudo = ws.keys.load(create=False)
    requests = pa.table(
        {"pos": pa.array(np.arange(len(user_ids), dtype=np.int64)), "raw": user_ids}
    )
    catalog = pa.table(
        {
            "item_id": pa.array(model.item_ids, pa.string()),
            "idx": pa.array(np.arange(len(model.item_ids), dtype=np.int64)),
        }
    )
    con = wh.con
    con.register("_rec_requests", requests)
    con.register("_rec_items", catalog)
    try:
        events = quote_ident(f"events_v{wh.version('events').version}")
        table = con.sql(
            f"""
            WITH req AS MATERIALIZED (SELECT pos, {pseudo.sql(norm_id("raw"))} AS user_id
                         FROM _rec_requests),
            pairs AS (
                SELECT e.user_id, e.item_id, min(epoch_us(e.ts)) AS t
                FROM {events} e SEMI JOIN req USING (user_id)
                WHERE list_contains(?, e.event_type)
                GROUP BY ALL)
            SELECT req.pos, m.idx, pairs.t
            FROM req JOIN pairs USING (user_id) JOIN _rec_items m USING (item_id)
            """,
            params=[model.event_types],
        ).to_arrow_table()
    finally:
        con.unregister("_rec_requests")
        con.unregister("_rec_items")
    return tuple(table.column(c).to_numpy().astype(np.int64) for c in ("pos", "idx", "t"))


def _rank(
    model: RecModel, histories: Histories, k: int, include_seen: bool, batch_size: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Top-k item indices and scores per row; -inf marks slots with no item left.

    Rows without history all get the same popularity ranking: it is computed once.
    """
    n = histories.n_users
    k = min(k, len(model.item_ids))
    items = np.zeros((n, k), dtype=np.int64)
    scores = np.zeros((n, k), dtype=np.float32)
    todo = np.arange(n, dtype=np.int64)
    cold = histories.lengths == 0
    if model.scorer.popularity_fallback and cold.any():
        one = Histories.from_lists([[]], histories.n_items)
        items[cold], scores[cold] = _top(model, one, k, include_seen)
        todo = np.flatnonzero(~cold)
    for start in range(0, len(todo), batch_size):
        rows = todo[start : start + batch_size]
        items[rows], scores[rows] = _top(model, histories.rows(rows), k, include_seen)
    return items, scores


def _top(
    model: RecModel, batch: Histories, k: int, include_seen: bool
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Score one batch, mask its seen items unless asked not to, keep the top k."""
    s = model.scorer.score(batch)
    if not include_seen:
        s[batch.user_of, batch.items] = -np.inf
    top = top_k(s, k)
    return top, np.take_along_axis(s, top, axis=1)


def _entries(
    ids: list[str],
    model: RecModel,
    histories: Histories,
    items: npt.NDArray[np.int64],
    scores: npt.NDArray[np.float32],
) -> dict[str, list[dict[str, Any]]]:
    """The output dict; scores as floats rounded to 7 significant digits."""
    names = np.asarray(model.item_ids, dtype=object)[items].tolist()
    values = round_scores(scores).tolist()
    valid = np.isfinite(scores).tolist()
    cold = (histories.lengths == 0).tolist()
    extra = {"fallback": FALLBACK if model.scorer.popularity_fallback else model.scorer.name}
    return {
        uid: [
            {"item_id": i, "score": s, **extra} if c else {"item_id": i, "score": s}
            for i, s, ok in zip(row_i, row_s, row_ok, strict=True)
            if ok
        ]
        for uid, row_i, row_s, row_ok, c in zip(ids, names, values, valid, cold, strict=True)
    }


def round_scores(scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """Scores as float64 rounded to 7 significant digits, float32's precision (short JSON).

    >>> round_scores(np.array([[0.123456789, 1234.5678, 0.0, -np.inf]], dtype=np.float32)).tolist()
    [[0.1234568, 1234.568, 0.0, -inf]]
    """
    x = scores.astype(np.float64)
    finite = np.isfinite(x) & (x != 0)
    mag = np.zeros_like(x)
    mag[finite] = np.floor(np.log10(np.abs(x[finite])))
    decimals = (6 - mag).astype(np.int64)
    out = x.copy()
    for d in np.unique(decimals[finite]).tolist():
        sel = finite & (decimals == d)
        out[sel] = np.round(x[sel], d)
    return out
