"""Canonical columns of items, users, events, reviews, queries and judgments.

Every clean table has exactly these columns, in this order, with these types.
The `doc` of each column is stored as Arrow field metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import pyarrow as pa

AssetKind = Literal["events", "items", "users", "reviews", "queries", "judgments"]
ASSET_KINDS: tuple[AssetKind, ...] = get_args(AssetKind)

Pii = Literal["none", "pseudonymized", "masked_free_text", "quasi_identifier"]
UTC_TS = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class CanonicalColumn:
    """One column of the canonical model."""

    name: str
    type: pa.DataType
    required: bool
    doc: str
    pii: Pii = "none"


def _c(name: str, typ: pa.DataType, required: bool, doc: str, pii: Pii = "none") -> CanonicalColumn:
    return CanonicalColumn(name, typ, required, doc, pii)


_USER = "User id, pseudonymized with HMAC-SHA256 under the workspace key (never the raw id)."
_COLUMNS: dict[AssetKind, tuple[CanonicalColumn, ...]] = {
    "events": (
        _c("user_id", pa.string(), True, _USER, "pseudonymized"),
        _c("item_id", pa.string(), True, "Item id as the source gave it."),
        _c("event_type", pa.string(), True, "view, click, add_to_cart, purchase, return, …"),
        _c("ts", UTC_TS, True, "When it happened, in UTC."),
        _c("session_id", pa.string(), False, "Session or order (invoice) id."),
        _c(
            "query",
            pa.string(),
            False,
            "Search query that led to it; PII masked.",
            "masked_free_text",
        ),
        _c(
            "value",
            pa.float64(),
            False,
            "Event value: revenue for purchases, the rating for ratings.",
        ),
        _c("quantity", pa.int64(), False, "Units, negative for returns."),
        _c("price", pa.float64(), False, "Unit price in `currency`."),
        _c("currency", pa.string(), False, "ISO 4217 code, upper case."),
    ),
    "items": (
        _c("item_id", pa.string(), True, "Item id as the source gave it."),
        _c("title", pa.string(), True, "Product title, normalized text."),
        _c("description", pa.string(), False, "Long description, HTML stripped."),
        _c("brand", pa.string(), False, "Brand name."),
        _c("category_path", pa.string(), False, "Category path, levels joined by ' > '."),
        _c("tags", pa.list_(pa.string()), False, "Free tags."),
        _c("price", pa.float64(), False, "Current unit price in `currency`."),
        _c("currency", pa.string(), False, "ISO 4217 code, upper case."),
        _c("attributes", pa.string(), False, "Other source fields as a JSON object."),
        _c("updated_at", UTC_TS, False, "When the source last changed this item, UTC."),
    ),
    "users": (
        _c("user_id", pa.string(), True, _USER, "pseudonymized"),
        _c(
            "attributes",
            pa.string(),
            False,
            "Other fields as JSON (may hold quasi-identifiers).",
            "quasi_identifier",
        ),
        _c("created_at", UTC_TS, False, "First time the user was seen, UTC."),
    ),
    "reviews": (
        _c("user_id", pa.string(), True, _USER, "pseudonymized"),
        _c("item_id", pa.string(), True, "Item id as the source gave it."),
        _c("rating", pa.float64(), True, "Rating on the source's scale."),
        _c(
            "text",
            pa.string(),
            False,
            "Review text; e-mails, phones and cards masked.",
            "masked_free_text",
        ),
        _c("ts", UTC_TS, False, "When it was written, UTC."),
    ),
    "queries": (
        _c("query_id", pa.string(), True, "Query id."),
        _c("query", pa.string(), True, "Query text as typed; PII masked.", "masked_free_text"),
    ),
    "judgments": (
        _c("query_id", pa.string(), True, "Query id."),
        _c("item_id", pa.string(), True, "Judged item."),
        _c("relevance", pa.float64(), True, "Graded relevance; higher is better."),
    ),
}


def columns(kind: AssetKind) -> tuple[CanonicalColumn, ...]:
    """Return the canonical columns of `kind` in table order."""
    return _COLUMNS[kind]


def required_columns(kind: AssetKind) -> tuple[str, ...]:
    """Names of the columns that must not be null."""
    return tuple(c.name for c in _COLUMNS[kind] if c.required)


def arrow_schema(kind: AssetKind) -> pa.Schema:
    """The Arrow schema of a clean `kind` table, with each column's doc as metadata.

    >>> arrow_schema("queries").names
    ['query_id', 'query']
    """
    return pa.schema(
        [
            pa.field(c.name, c.type, nullable=not c.required, metadata={"doc": c.doc, "pii": c.pii})
            for c in _COLUMNS[kind]
        ]
    )


_DUCK = {
    pa.string(): "VARCHAR",
    pa.float64(): "DOUBLE",
    pa.int64(): "BIGINT",
    UTC_TS: "TIMESTAMPTZ",
    pa.list_(pa.string()): "VARCHAR[]",
}


def duckdb_type(col: CanonicalColumn) -> str:
    """The DuckDB type a clean column is cast to.

    >>> duckdb_type(columns("events")[3])
    'TIMESTAMPTZ'
    """
    return _DUCK[col.type]
