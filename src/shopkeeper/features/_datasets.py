"""Fused training examples: (user, item, context, label) with point-in-time features.

Every positive is an event of a configured type; each gets `negatives` catalogue
items drawn by a hash of the example (so a rebuild draws the same ones), label 0.
Every behaviour feature of an example at time t counts only events strictly
before t: per-item, per-user and per-(user, item) running counts are kept once per
distinct timestamp and found with ASOF joins (`t > ts`), and the history is the
user's last `history` items from earlier timestamps. Catalogue attributes (codes,
log price) come from the `item_features` snapshot; the item text vectors from the
`item_embeddings` version, recorded in the lineage with its encoder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from shopkeeper.errors import NotFoundError
from shopkeeper.features._embeddings import EMBEDDINGS_ASSET
from shopkeeper.features._structured import ITEM_FEATURES_ASSET
from shopkeeper.ingest import sql_list, sql_literal
from shopkeeper.logging import Stopwatch, get_logger
from shopkeeper.warehouse import DerivedVersion, Warehouse, built_from, commit_derived

if TYPE_CHECKING:
    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)

TRAINING_ASSET = "training_examples"


class DatasetConfig(BaseModel):
    """What becomes a training example."""

    model_config = ConfigDict(extra="forbid")

    positive_types: list[str] = Field(
        default_factory=lambda: ["purchase", "add_to_cart", "click", "rating", "wishlist"]
    )
    """Event types that make a positive example."""
    negatives: int = Field(default=4, ge=0, le=100)
    """Random catalogue items per positive, label 0 (a draw equal to the positive is dropped)."""
    history: int = Field(default=20, ge=1, le=500)
    """Items of the user's history kept per example (earlier timestamps only)."""
    seed: int = 0


def examples_sql(events: str, items: str, item_features: str | None, cfg: DatasetConfig) -> str:
    """One SELECT producing the training examples (see the module docstring)."""
    h = cfg.history
    positives = (
        f"SELECT user_id, item_id, ts, event_type, 1 AS label FROM {events} "
        f"WHERE event_type IN ({sql_list(cfg.positive_types)})"
    )
    catalogue = f"(SELECT item_id, row_number() OVER (ORDER BY item_id) - 1 AS _r FROM {items})"
    negatives = (
        f"SELECT p.user_id, c.item_id, p.ts, NULL::VARCHAR AS event_type, 0 AS label FROM "
        f"(SELECT *, hash(user_id, item_id, ts, event_type, _k, {cfg.seed}) % "
        f"(SELECT count(*) FROM {items}) AS _pick FROM ({positives}) "
        f"CROSS JOIN range({cfg.negatives}) AS k(_k)) p JOIN {catalogue} c ON c._r = p._pick "
        f"WHERE c.item_id <> p.item_id"
    )
    examples = f"{positives} UNION ALL {negatives}" if cfg.negatives else positives
    item_run = (
        f"(SELECT item_id, ts AS _ts, sum(n) OVER w AS item_events, sum(p) OVER w AS "
        f"item_purchases FROM (SELECT item_id, ts, count(*) AS n, count(*) FILTER (WHERE "
        f"event_type = 'purchase') AS p FROM {events} GROUP BY ALL) "
        f"WINDOW w AS (PARTITION BY item_id ORDER BY ts ROWS UNBOUNDED PRECEDING))"
    )
    user_run = (
        f"(SELECT user_id, ts AS _ts, sum(n) OVER (PARTITION BY user_id ORDER BY ts "
        f"ROWS UNBOUNDED PRECEDING) AS user_events, list(items) OVER (PARTITION BY user_id "
        f"ORDER BY ts ROWS BETWEEN {h - 1} PRECEDING AND CURRENT ROW) AS _hist FROM "
        f"(SELECT user_id, ts, count(*) AS n, list(item_id ORDER BY item_id) AS items "
        f"FROM {events} GROUP BY ALL))"
    )
    pair_run = (
        f"(SELECT user_id, item_id, ts AS _ts, sum(n) OVER (PARTITION BY user_id, item_id "
        f"ORDER BY ts ROWS UNBOUNDED PRECEDING) AS user_item_events FROM (SELECT user_id, "
        f"item_id, ts, count(*) AS n FROM {events} GROUP BY ALL))"
    )
    attrs = ""
    attr_join = ""
    if item_features is not None:
        attrs = (
            ", f.brand_code, f.cat_l1_code, f.cat_l2_code, f.cat_l3_code, f.log_price, f.price_pct"
        )
        attr_join = f"LEFT JOIN {item_features} f ON f.item_id = x.item_id"
    return (
        f"SELECT x.user_id, x.item_id, x.ts, x.event_type, x.label, "
        f"coalesce(ir.item_events, 0) AS item_events_before, "
        f"coalesce(ir.item_purchases, 0) AS item_purchases_before, "
        f"coalesce(ur.user_events, 0) AS user_events_before, "
        f"coalesce(pr.user_item_events, 0) AS user_item_events_before, "
        f"epoch(x.ts) - epoch(ur._ts) AS secs_since_user_event, "
        f"coalesce(flatten(ur._hist)[-{h}:], []) AS history, "
        f"hour(x.ts) AS hour, isodow(x.ts) AS day_of_week{attrs} "
        f"FROM ({examples}) x "
        f"ASOF LEFT JOIN {item_run} ir ON ir.item_id = x.item_id AND x.ts > ir._ts "
        f"ASOF LEFT JOIN {user_run} ur ON ur.user_id = x.user_id AND x.ts > ur._ts "
        f"ASOF LEFT JOIN {pair_run} pr ON pr.user_id = x.user_id AND pr.item_id = x.item_id "
        f"AND x.ts > pr._ts {attr_join} "
        f"ORDER BY x.ts, x.user_id, x.label DESC, x.item_id"
    )


def build_training_examples(ws: Workspace, cfg: DatasetConfig, build_id: str) -> dict[str, Any]:
    """Write a `training_examples` version from the latest events, unless already current.

    Call with the workspace write lock held.
    """
    with Warehouse(ws, read_only=True) as wh:
        events = wh.latest("events")
        items = wh.latest("items")
        if events is None or items is None:
            raise NotFoundError("training examples need events and items; ingest them first")
        feats = wh.latest(ITEM_FEATURES_ASSET)
        emb = wh.latest(EMBEDDINGS_ASSET)
        params = {
            "config": cfg.model_dump(mode="json"),
            "events_version": events.version,
            "items_version": items.version,
            "item_features_version": feats.version if feats else None,
            "embeddings_version": emb.version if emb else None,
            "model_id": emb.params.get("model_id") if emb else None,
        }
        last = wh.latest(TRAINING_ASSET)
        if built_from(last, params):
            return {"asset": TRAINING_ASSET, "version": last.version, "status": "unchanged"}
        timer = Stopwatch()
        tmp = ws.tmp_dir / build_id
        tmp.mkdir(parents=True, exist_ok=True)
        data = tmp / "training_examples.parquet"
        sql = examples_sql(
            f"events_v{events.version}",
            f"items_v{items.version}",
            f"{ITEM_FEATURES_ASSET}_v{feats.version}" if feats else None,
            cfg,
        )
        wh.con.execute(
            f"COPY ({sql}) TO {sql_literal(str(data))} (FORMAT parquet, COMPRESSION zstd)"
        )
        row = wh.con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE label = 1) FROM read_parquet("
            f"{sql_literal(str(data))})"
        ).fetchone()
    n, positives = (int(row[0]), int(row[1])) if row else (0, 0)
    parents = [("events", events.version, "examples_from"), ("items", items.version, "catalogue")]
    if feats is not None:
        parents.append((ITEM_FEATURES_ASSET, feats.version, "item_attributes"))
    if emb is not None:
        parents.append((EMBEDDINGS_ASSET, emb.version, "item_vectors"))
    if last is not None:
        parents.append((TRAINING_ASSET, last.version, "previous"))
    dv = DerivedVersion(
        asset=TRAINING_ASSET,
        kind="training_examples",
        transform="features.training_examples",
        params=params,
        row_count=n,
        schema=_schema(feats is not None),
        files=[("data", data, n)],
        parents=parents,
        quality={"positives": positives, "negatives": n - positives},
    )
    version = commit_derived(ws, dv, build_id)
    _log.info("built training examples", version=version, rows=n, elapsed=str(timer))
    return {
        "asset": TRAINING_ASSET,
        "version": version,
        "status": "written",
        "rows": n,
        "positives": positives,
    }


def _schema(with_attributes: bool) -> list[dict[str, Any]]:
    cols = [
        ("user_id", "string", "Pseudonymized user id.", "pseudonymized"),
        ("item_id", "string", "Item id (the event's, or a sampled negative).", "none"),
        ("ts", "timestamp[us, UTC]", "Time of the example (the positive event's).", "none"),
        ("event_type", "string", "The positive's event type (NULL for negatives).", "none"),
        ("label", "int32", "1: the user did this; 0: a sampled catalogue item.", "none"),
        ("item_events_before", "int64", "Events on the item strictly before ts.", "none"),
        ("item_purchases_before", "int64", "Purchases of the item strictly before ts.", "none"),
        ("user_events_before", "int64", "The user's events strictly before ts.", "none"),
        ("user_item_events_before", "int64", "The user's events on the item before ts.", "none"),
        ("secs_since_user_event", "double", "Seconds since the user's previous event.", "none"),
        ("history", "list<string>", "The user's last items before ts, oldest first.", "none"),
        ("hour", "int64", "Hour of day (UTC) of ts.", "none"),
        ("day_of_week", "int64", "ISO day of week of ts (1 = Monday).", "none"),
    ]
    if with_attributes:
        cols += [
            ("brand_code", "int64", "Item brand code (item_features).", "none"),
            ("cat_l1_code", "int64", "Item level-1 category code.", "none"),
            ("cat_l2_code", "int64", "Item level-2 category code.", "none"),
            ("cat_l3_code", "int64", "Item level-3 category code.", "none"),
            ("log_price", "double", "ln(1 + price) from the catalogue snapshot.", "none"),
            ("price_pct", "double", "Price percentile within the item's category.", "none"),
        ]
    return [{"name": n, "type": t, "nullable": True, "doc": d, "pii": p} for n, t, d, p in cols]
