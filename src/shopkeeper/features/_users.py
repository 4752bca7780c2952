"""User representations from behaviour: decayed, weighted vectors, sequences, sessions.

* `user_vectors`: per user, the L2-normalized sum of the item vectors of the user's
  events, each weighted by its event type (purchase > add_to_cart > click > view,
  configurable) and by exp(-ln 2 * age / half-life), age measured to the last event
  of the data.
* `user_sequences`: per user, the chronological items, event types and times (the
  last `max_sequence`), the input of sequential models.
* `session_vectors`: per session (the source's session id, or a new session after
  `session_gap_minutes` of silence), the normalized weighted mean of its items.

The weights come from one SQL pass; the sums are one sparse (users x items) by
dense (items x d) product.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from shopkeeper.errors import NotFoundError
from shopkeeper.features._embeddings import EMBEDDINGS_ASSET, vector_column
from shopkeeper.features._encoder import require_ml
from shopkeeper.features._index import read_embeddings
from shopkeeper.ingest import sql_literal
from shopkeeper.logging import Stopwatch, get_logger
from shopkeeper.warehouse import DerivedVersion, Warehouse, built_from, commit_derived

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb
    import numpy as np
    import numpy.typing as npt

    from shopkeeper.warehouse import AssetVersion, Workspace

_log = get_logger(__name__)

USER_VECTORS_ASSET = "user_vectors"
USER_SEQUENCES_ASSET = "user_sequences"
SESSION_VECTORS_ASSET = "session_vectors"


class UserConfig(BaseModel):
    """How behaviour becomes user and session representations."""

    model_config = ConfigDict(extra="forbid")

    event_weights: dict[str, float] = Field(
        default_factory=lambda: {
            "purchase": 4.0,
            "add_to_cart": 2.0,
            "wishlist": 1.5,
            "rating": 2.0,
            "click": 1.0,
            "view": 0.5,
        }
    )
    """Weight of each event type; types not listed (returns, searches) weigh nothing."""
    half_life_days: float = Field(default=30.0, gt=0)
    """An event this old counts half as much as one at the data's last event."""
    max_sequence: int = Field(default=200, ge=1)
    """Longest sequence kept per user (the most recent events)."""
    session_gap_minutes: int = Field(default=30, ge=1)
    """Silence that starts a new session where the source has no session id."""


def _weight_sql(cfg: UserConfig) -> str:
    whens = " ".join(
        f"WHEN {sql_literal(t)} THEN {float(w)!r}" for t, w in sorted(cfg.event_weights.items())
    )
    return f"CASE event_type {whens} ELSE 0.0 END" if whens else "0.0"


def user_weights_sql(events: str, cfg: UserConfig) -> str:
    """(user_id, item_id, w, n, last_ts): decayed, type-weighted sums per user and item."""
    age = f"epoch((SELECT max(ts) FROM {events}) - ts) / 86400.0"
    decay = f"exp(-ln(2) * {age} / {cfg.half_life_days!r})"
    return (
        f"SELECT user_id, item_id, sum({_weight_sql(cfg)} * {decay}) AS w, count(*) AS n, "
        f"max(ts) AS last_ts FROM {events} GROUP BY 1, 2"
    )


def session_weights_sql(events: str, cfg: UserConfig) -> str:
    """(session_key, user_id, item_id, w, start_ts, end_ts, n) per session and item."""
    gap = cfg.session_gap_minutes * 60
    numbered = (
        f"SELECT *, sum(CASE WHEN prev IS NULL OR epoch(ts) - epoch(prev) > {gap} THEN 1 "
        f"ELSE 0 END) OVER (PARTITION BY user_id ORDER BY ts, item_id ROWS UNBOUNDED PRECEDING) "
        f"AS _n FROM (SELECT *, lag(ts) OVER (PARTITION BY user_id ORDER BY ts, item_id) "
        f"AS prev FROM {events})"
    )
    key = "coalesce(session_id, user_id || '#' || CAST(_n AS VARCHAR))"
    return (
        f"SELECT {key} AS session_key, any_value(user_id) AS user_id, item_id, "
        f"sum({_weight_sql(cfg)}) AS w, min(min(ts)) OVER (PARTITION BY {key}) AS start_ts, "
        f"max(max(ts)) OVER (PARTITION BY {key}) AS end_ts, "
        f"sum(count(*)) OVER (PARTITION BY {key}) AS n FROM ({numbered}) GROUP BY {key}, item_id"
    )


def sequences_sql(events: str, cfg: UserConfig) -> str:
    """(user_id, items, event_types, ts, length): chronological, the last `max_sequence`."""
    order = "ORDER BY ts, item_id, event_type"
    n = cfg.max_sequence
    return (
        f"SELECT user_id, list(item_id {order})[-{n}:] AS items, "
        f"list(event_type {order})[-{n}:] AS event_types, list(ts {order})[-{n}:] AS ts, "
        f"least(count(*), {n}) AS length FROM {events} GROUP BY 1 ORDER BY 1"
    )


def weighted_vectors(
    keys: list[str],
    item_rows: npt.NDArray[np.int64],
    key_rows: npt.NDArray[np.int64],
    weights: npt.NDArray[np.float64],
    vectors: npt.NDArray[np.float32],
) -> npt.NDArray[np.float32]:
    """L2-normalized rows of (sparse key x item weights) @ item vectors; zero rows stay 0."""
    np_ = require_ml("numpy")
    sparse = require_ml("scipy.sparse")
    m = sparse.csr_matrix(
        (weights.astype(np_.float32), (key_rows, item_rows)), shape=(len(keys), len(vectors))
    )
    out = np_.asarray(m @ vectors, dtype=np_.float32)
    norms = np_.linalg.norm(out, axis=1, keepdims=True)
    result: npt.NDArray[np.float32] = np_.divide(
        out, norms, out=np_.zeros_like(out), where=norms > 0
    )
    return result


def _keyed_vectors(
    con: duckdb.DuckDBPyConnection,
    weights_sql: str,
    key: str,
    embeddings: str,
    vectors: npt.NDArray[np.float32],
) -> tuple[list[str], npt.NDArray[np.float32]]:
    """Keys (sorted) and their weighted vectors from a (key, item_id, w, ...) query.

    The query's rows are kept in temp table `_kw` for the caller's per-key statistics.
    Row numbers of keys and of items (the embeddings' item_id order, as
    `read_embeddings` returns the vectors) come from SQL, so no row goes through Python.
    """
    con.execute(f"CREATE OR REPLACE TEMP TABLE _kw AS {weights_sql}")
    keys = [str(r[0]) for r in con.execute(f"SELECT DISTINCT {key} FROM _kw ORDER BY 1").fetchall()]
    triples = con.execute(
        f"SELECT k._r AS key_row, e._r AS item_row, w.w AS w FROM _kw w "
        f"JOIN (SELECT {key}, row_number() OVER (ORDER BY {key}) - 1 AS _r "
        f"FROM (SELECT DISTINCT {key} FROM _kw)) k ON k.{key} = w.{key} "
        f"JOIN (SELECT item_id, row_number() OVER (ORDER BY item_id) - 1 AS _r "
        f"FROM {embeddings}) e ON e.item_id = w.item_id"
    ).fetchnumpy()
    out = weighted_vectors(keys, triples["item_row"], triples["key_row"], triples["w"], vectors)
    return keys, out


def build_user_features(ws: Workspace, cfg: UserConfig, build_id: str) -> dict[str, Any]:
    """Build user vectors, user sequences and session vectors unless already current.

    Call with the workspace write lock held.
    """
    with Warehouse(ws, read_only=True) as wh:
        events = wh.latest("events")
        emb = wh.latest(EMBEDDINGS_ASSET)
        if events is None:
            raise NotFoundError("no events yet; ingest behaviour data first")
        if emb is None:
            raise NotFoundError("no item embeddings yet; run `shopkeeper features build`")
        params = {
            "config": cfg.model_dump(mode="json"),
            "events_version": events.version,
            "embeddings_version": emb.version,
            "model_id": emb.params.get("model_id"),
        }
        last = wh.latest(USER_VECTORS_ASSET)
        if built_from(last, params):
            return {"asset": USER_VECTORS_ASSET, "version": last.version, "status": "unchanged"}
        timer = Stopwatch()
        item_ids, vectors = read_embeddings(wh, emb.version)
        ev = f"events_v{events.version}"
        emb_rel = f"{EMBEDDINGS_ASSET}_v{emb.version}"
        con = wh.con
        user_keys, user_vecs = _keyed_vectors(
            con, user_weights_sql(ev, cfg), "user_id", emb_rel, vectors
        )
        users = con.sql(
            "SELECT user_id, CAST(sum(n) AS BIGINT) AS events, max(last_ts) AS last_ts FROM _kw "
            "GROUP BY 1 ORDER BY 1"
        ).to_arrow_table()
        session_keys, session_vecs = _keyed_vectors(
            con, session_weights_sql(ev, cfg), "session_key", emb_rel, vectors
        )
        sessions = con.sql(
            "SELECT session_key, min(user_id) AS user_id, min(start_ts) AS start_ts, "
            "max(end_ts) AS end_ts, CAST(max(n) AS BIGINT) AS events FROM _kw GROUP BY 1 ORDER BY 1"
        ).to_arrow_table()
        tmp = ws.tmp_dir / build_id
        tmp.mkdir(parents=True, exist_ok=True)
        seq_file = tmp / "user_sequences.parquet"
        con.execute(
            f"COPY ({sequences_sql(ev, cfg)}) TO {sql_literal(str(seq_file))} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
    n_seq = len(user_keys)  # every user with an event has a sequence
    user_file = tmp / "user_vectors.parquet"
    pq.write_table(
        users.append_column("vector", vector_column(user_vecs)).select(
            ["user_id", "vector", "events", "last_ts"]
        ),
        user_file,
        compression="zstd",
    )
    session_file = tmp / "session_vectors.parquet"
    pq.write_table(
        sessions.append_column("vector", vector_column(session_vecs)),
        session_file,
        compression="zstd",
    )
    dim = int(vectors.shape[1]) if len(item_ids) else 0
    out: dict[str, Any] = {}
    for asset, kind, file, n, schema in (
        (USER_VECTORS_ASSET, "user_vectors", user_file, len(user_keys), _user_schema(dim)),
        (USER_SEQUENCES_ASSET, "user_sequences", seq_file, n_seq, _sequence_schema()),
        (SESSION_VECTORS_ASSET, "session_vectors", session_file, len(session_keys),
         _session_schema(dim)),
    ):  # fmt: skip
        version = _commit(ws, build_id, asset, kind, file, n, schema, params, events, emb)
        out[asset] = {"version": version, "rows": n}
    _log.info("built user features", users=len(user_keys), sessions=len(session_keys))
    return {
        "asset": USER_VECTORS_ASSET,
        "version": out[USER_VECTORS_ASSET]["version"],
        "status": "written",
        "users": len(user_keys),
        "sessions": len(session_keys),
        "seconds": round(timer.seconds, 3),
        "versions": {k: v["version"] for k, v in out.items()},
    }


def _commit(
    ws: Workspace,
    build_id: str,
    asset: str,
    kind: str,
    file: Path,
    n: int,
    schema: list[dict[str, Any]],
    params: dict[str, Any],
    events: AssetVersion,
    emb: AssetVersion,
) -> int:
    parents = [("events", events.version, "built_from")]
    if asset != USER_SEQUENCES_ASSET:
        parents.append((EMBEDDINGS_ASSET, emb.version, "item_vectors"))
    with Warehouse(ws, read_only=True) as wh:
        last = wh.latest(asset)
    if last is not None:
        parents.append((asset, last.version, "previous"))
    dv = DerivedVersion(
        asset=asset,
        kind=kind,
        transform=f"features.{asset}",
        params=params,
        row_count=n,
        schema=schema,
        files=[("data", file, n)],
        parents=parents,
    )
    return commit_derived(ws, dv, build_id)


def _col(name: str, typ: str, doc: str, pii: str = "none") -> dict[str, Any]:
    return {"name": name, "type": typ, "nullable": False, "doc": doc, "pii": pii}


def _user_schema(dim: int) -> list[dict[str, Any]]:
    return [
        _col("user_id", "string", "Pseudonymized user id.", "pseudonymized"),
        _col("vector", f"list<float>[{dim}]", "L2-normalized behaviour vector."),
        _col("events", "int64", "Events of the user."),
        _col("last_ts", "timestamp[us, UTC]", "The user's last event."),
    ]


def _sequence_schema() -> list[dict[str, Any]]:
    return [
        _col("user_id", "string", "Pseudonymized user id.", "pseudonymized"),
        _col("items", "list<string>", "Item ids, oldest first (the last max_sequence)."),
        _col("event_types", "list<string>", "Event type of each item."),
        _col("ts", "list<timestamp[us, UTC]>", "Time of each event."),
        _col("length", "int64", "Length of the lists."),
    ]


def _session_schema(dim: int) -> list[dict[str, Any]]:
    return [
        _col("session_key", "string", "Source session id, or user#n from inactivity gaps."),
        _col("user_id", "string", "Pseudonymized user id.", "pseudonymized"),
        _col("start_ts", "timestamp[us, UTC]", "First event of the session."),
        _col("end_ts", "timestamp[us, UTC]", "Last event of the session."),
        _col("events", "int64", "Events in the session."),
        _col("vector", f"list<float>[{dim}]", "L2-normalized session vector."),
    ]
