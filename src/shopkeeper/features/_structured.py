"""Structured item features: category levels, brand, price, popularity and recency.

One SQL pass over the latest items and events versions writes the `item_features`
asset. Categorical columns become integer codes from vocabularies stored with the
version (`vocabularies.json`): code 0 is the unknown bucket (missing, rare, or a
value first seen after the vocabulary was built), codes 1.. follow frequency.
Popularity and recency are measured as of the last event of the events version,
so a rebuild on the same data gives the same features.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from shopkeeper.errors import NotFoundError
from shopkeeper.features._text import rows_in_order
from shopkeeper.ingest import quote_ident, sql_literal
from shopkeeper.logging import Stopwatch, get_logger
from shopkeeper.warehouse import DerivedVersion, Warehouse, built_from, commit_derived

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import numpy.typing as npt

    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)

ITEM_FEATURES_ASSET = "item_features"
CATEGORICAL = ("brand", "cat_l1", "cat_l2", "cat_l3")
"""Columns that get a vocabulary; `<name>_code` holds the code."""
_COLUMNS: list[tuple[str, str, str]] = [
    ("item_id", "string", "Item id."),
    ("cat_l1", "string", "Top-level category (first segment of category_path)."),
    ("cat_l2", "string", "Category path down to level 2 (`A > B`)."),
    ("cat_l3", "string", "Category path down to level 3 (`A > B > C`)."),
    ("category_depth", "int64", "Segments in category_path (0: none)."),
    ("brand", "string", "Brand as cleaned."),
    ("brand_code", "int64", "Brand vocabulary code (0: unknown bucket)."),
    ("cat_l1_code", "int64", "cat_l1 vocabulary code (0: unknown bucket)."),
    ("cat_l2_code", "int64", "cat_l2 vocabulary code (0: unknown bucket)."),
    ("cat_l3_code", "int64", "cat_l3 vocabulary code (0: unknown bucket)."),
    ("has_price", "bool", "The item has a positive price."),
    ("log_price", "double", "ln(1 + price); NULL without a price."),
    ("price_pct", "double", "Price percentile (0-1) within the item's deepest category."),
    ("events", "int64", "Events on the item in the events version."),
    ("purchases", "int64", "Purchase events on the item."),
    ("users", "int64", "Distinct users with an event on the item."),
    ("recent_events", "int64", "Events in the last `recent_days` before `as_of`."),
    ("popularity", "double", "ln(1 + events)."),
    ("popularity_pct", "double", "Percentile (0-1) of events among all items."),
    ("recency_days", "double", "Days from the item's last event to `as_of` (NULL: none)."),
    ("age_days", "double", "Days from the item's first event to `as_of` (NULL: none)."),
]


class StructuredConfig(BaseModel):
    """How structured item features are built."""

    model_config = ConfigDict(extra="forbid")

    min_count: int = Field(default=2, ge=1)
    """Categorical values on fewer items than this go to the unknown bucket."""
    recent_days: int = Field(default=30, ge=1)
    """Window of `recent_events`, ending at the last event."""


def _vocab_sql(column: str, source: str, min_count: int) -> str:
    c = quote_ident(column)
    return (
        f"(SELECT {c} AS value, row_number() OVER (ORDER BY n DESC, {c}) AS code FROM "
        f"(SELECT {c}, count(*) AS n FROM {source} WHERE {c} IS NOT NULL GROUP BY 1 "
        f"HAVING count(*) >= {min_count}))"
    )


def item_features_sql(items: str, events: str | None, cfg: StructuredConfig) -> list[str]:
    """Statements creating temp tables `_sf_items` (features) and `_sf_vocab_<col>`."""
    parts = "string_split(category_path, ' > ')"
    level = [
        f"CASE WHEN len({parts}) >= {n} THEN array_to_string({parts}[1:{n}], ' > ') END"
        for n in (1, 2, 3)
    ]
    base = (
        f"SELECT item_id, brand, price, {level[0]} AS cat_l1, {level[1]} AS cat_l2, "
        f"{level[2]} AS cat_l3, coalesce(len({parts}), 0) AS category_depth FROM {items}"
    )
    stmts = [f"CREATE OR REPLACE TEMP TABLE _sf_base AS {base}"]
    stmts += [
        f"CREATE OR REPLACE TEMP TABLE _sf_vocab_{c} AS {_vocab_sql(c, '_sf_base', cfg.min_count)}"
        for c in CATEGORICAL
    ]
    if events is not None:
        stats = (
            f"SELECT item_id, count(*) AS events, count(*) FILTER (WHERE event_type = "
            f"'purchase') AS purchases, count(DISTINCT user_id) AS users, "
            f"count(*) FILTER (WHERE ts > (SELECT max(ts) FROM {events}) - "
            f"INTERVAL {cfg.recent_days} DAY) AS recent_events, "
            f"min(ts) AS first_ts, max(ts) AS last_ts FROM {events} GROUP BY 1"
        )
        as_of = f"(SELECT max(ts) FROM {events})"
    else:
        stats = (
            "SELECT NULL::VARCHAR AS item_id, 0 AS events, 0 AS purchases, 0 AS users, "
            "0 AS recent_events, NULL::TIMESTAMPTZ AS first_ts, NULL::TIMESTAMPTZ AS last_ts "
            "WHERE false"
        )
        as_of = "NULL::TIMESTAMPTZ"
    codes = ", ".join(f"coalesce(v_{c}.code, 0) AS {c}_code" for c in CATEGORICAL)
    joins = " ".join(f"LEFT JOIN _sf_vocab_{c} v_{c} ON v_{c}.value = b.{c}" for c in CATEGORICAL)
    days = "epoch({as_of} - {t}) / 86400.0"
    stmts.append(
        "CREATE OR REPLACE TEMP TABLE _sf_items AS SELECT b.item_id, b.cat_l1, b.cat_l2, "
        f"b.cat_l3, b.category_depth, b.brand, {codes}, "
        "coalesce(b.price > 0, false) AS has_price, "
        "CASE WHEN b.price > 0 THEN ln(1 + b.price) END AS log_price, "
        "CASE WHEN b.price > 0 THEN percent_rank() OVER (PARTITION BY b.price > 0, "
        "coalesce(b.cat_l3, b.cat_l2, b.cat_l1) ORDER BY b.price) END AS price_pct, "
        "coalesce(s.events, 0) AS events, coalesce(s.purchases, 0) AS purchases, "
        "coalesce(s.users, 0) AS users, coalesce(s.recent_events, 0) AS recent_events, "
        "ln(1 + coalesce(s.events, 0)) AS popularity, "
        "percent_rank() OVER (ORDER BY coalesce(s.events, 0)) AS popularity_pct, "
        f"{days.format(as_of=as_of, t='s.last_ts')} AS recency_days, "
        f"{days.format(as_of=as_of, t='s.first_ts')} AS age_days "
        f"FROM _sf_base b {joins} LEFT JOIN ({stats}) s ON s.item_id = b.item_id"
    )
    return stmts


def build_item_features(ws: Workspace, cfg: StructuredConfig, build_id: str) -> dict[str, Any]:
    """Build `item_features` from the latest items (and events) unless already current.

    Call with the workspace write lock held.
    """
    with Warehouse(ws, read_only=True) as wh:
        items = wh.latest("items")
        if items is None:
            raise NotFoundError("no items yet; ingest a catalogue first")
        events = wh.latest("events")
        params: dict[str, Any] = {
            "config": cfg.model_dump(mode="json"),
            "items_version": items.version,
            "events_version": events.version if events else None,
        }
        last = wh.latest(ITEM_FEATURES_ASSET)
        if built_from(last, params):
            return _summary(last.version, "unchanged", last.row_count)
        timer = Stopwatch()
        con = wh.con
        events_rel = f"events_v{events.version}" if events else None
        for stmt in item_features_sql(f"items_v{items.version}", events_rel, cfg):
            con.execute(stmt)
        tmp = ws.tmp_dir / build_id
        tmp.mkdir(parents=True, exist_ok=True)
        data = tmp / "item_features.parquet"
        con.execute(
            f"COPY (SELECT * FROM _sf_items ORDER BY item_id) TO {sql_literal(str(data))} "
            "(FORMAT parquet, COMPRESSION zstd)"
        )
        vocab = {
            c: [
                r[0]
                for r in con.execute(f"SELECT value FROM _sf_vocab_{c} ORDER BY code").fetchall()
            ]
            for c in CATEGORICAL
        }
        row = con.execute("SELECT count(*), max(events) FROM _sf_items").fetchone()
        n = int(row[0]) if row else 0
    vocab_file = tmp / "vocabularies.json"
    vocab_file.write_text(json.dumps(vocab, ensure_ascii=False, indent=1))
    parents = [("items", items.version, "built_from")]
    if events is not None:
        parents.append(("events", events.version, "popularity_from"))
    if last is not None:
        parents.append((ITEM_FEATURES_ASSET, last.version, "previous"))
    dv = DerivedVersion(
        asset=ITEM_FEATURES_ASSET,
        kind="item_features",
        transform="features.item_features",
        params={**params, "vocabulary_sizes": {c: len(v) + 1 for c, v in vocab.items()}},
        row_count=n,
        schema=[
            {"name": name, "type": typ, "nullable": name != "item_id", "doc": doc}
            for name, typ, doc in _COLUMNS
        ],
        files=[("data", data, n), ("artifact", vocab_file, sum(len(v) for v in vocab.values()))],
        parents=parents,
    )
    version = commit_derived(ws, dv, build_id)
    _log.info("built item features", version=version, items=n, elapsed=str(timer))
    return _summary(version, "written", n)


def _summary(version: int, status: str, n: int) -> dict[str, Any]:
    return {"asset": ITEM_FEATURES_ASSET, "version": version, "status": status, "items": n}


ATTRIBUTE_COLUMNS = ("brand_code", "cat_l1_code", "cat_l2_code", "cat_l3_code", "price_decile")
"""What `read_item_attributes` returns per item: static catalogue codes only (no
popularity, which would carry the events a model is evaluated on)."""


def read_item_attributes(
    wh: Warehouse, item_ids: Sequence[str]
) -> tuple[npt.NDArray[np.int64], int] | None:
    """(items, 5) codes of `ATTRIBUTE_COLUMNS` in `item_ids` order, and the version read.

    Code 0 is unknown (a missing value, a rare one, or an item the asset lacks); the price
    decile is 1-10 within the item's deepest category. None without an `item_features`
    asset.
    """
    import numpy as np

    last = wh.latest(ITEM_FEATURES_ASSET)
    if last is None:
        return None
    decile = "CASE WHEN has_price THEN least(10, 1 + floor(price_pct * 10))::BIGINT END"
    exprs = ["brand_code", "cat_l1_code", "cat_l2_code", "cat_l3_code", decile]
    select = ", ".join(f"coalesce({e}, 0) AS c{k}" for k, e in enumerate(exprs))
    source = quote_ident(f"{ITEM_FEATURES_ASSET}_v{last.version}")
    table = rows_in_order(wh, item_ids, select, source)
    codes = np.stack([np.asarray(v, dtype=np.int64) for v in table.values()], axis=1)
    return codes.reshape(len(item_ids), len(ATTRIBUTE_COLUMNS)), last.version
