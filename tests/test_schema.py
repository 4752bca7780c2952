"""The canonical data model: columns, Arrow schemas with docs, DuckDB types."""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pytest

from shopkeeper.schema import (
    ASSET_KINDS,
    arrow_schema,
    columns,
    duckdb_type,
    required_columns,
)
from shopkeeper.schema._canonical import UTC_TS


def test_asset_kinds() -> None:
    assert ASSET_KINDS == ("events", "items", "users", "reviews", "queries", "judgments")


@pytest.mark.parametrize("kind", ASSET_KINDS)
def test_arrow_schema_mirrors_the_columns(kind) -> None:
    cols = columns(kind)
    schema = arrow_schema(kind)
    assert schema.names == [c.name for c in cols]
    assert len(set(schema.names)) == len(schema.names)
    for field, col in zip(schema, cols, strict=True):
        assert field.type == col.type
        assert field.nullable is not col.required
        assert field.metadata == {b"doc": col.doc.encode(), b"pii": col.pii.encode()}
        assert col.doc.strip()


@pytest.mark.parametrize("kind", ASSET_KINDS)
def test_required_columns(kind) -> None:
    required = required_columns(kind)
    assert required == tuple(c.name for c in columns(kind) if c.required)
    assert required  # every kind has a key or a required field
    assert list(required) == [n for n in arrow_schema(kind).names if n in required]


@pytest.mark.parametrize("kind", ASSET_KINDS)
def test_duckdb_types_round_trip_through_arrow(kind) -> None:
    """An empty clean table built from the DuckDB types has the Arrow schema's types."""
    cols = ", ".join(f'CAST(NULL AS {duckdb_type(c)}) AS "{c.name}"' for c in columns(kind))
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        table = con.sql(f"SELECT {cols} WHERE false").to_arrow_table()
    finally:
        con.close()
    expected = arrow_schema(kind)
    for name in expected.names:
        got = table.schema.field(name).type
        want = expected.field(name).type
        if pa.types.is_list(want):
            assert pa.types.is_list(got) or pa.types.is_large_list(got)
            assert pa.types.is_string(got.value_type) or pa.types.is_large_string(got.value_type)
        elif pa.types.is_string(want):
            assert pa.types.is_string(got) or pa.types.is_large_string(got)
        else:
            assert got == want, name


def test_timestamps_are_utc_microseconds() -> None:
    assert pa.timestamp("us", tz="UTC") == UTC_TS
    for kind in ASSET_KINDS:
        for c in columns(kind):
            if pa.types.is_timestamp(c.type):
                assert c.type == UTC_TS
                assert duckdb_type(c) == "TIMESTAMPTZ"


def test_user_ids_are_always_pseudonymized() -> None:
    for kind in ASSET_KINDS:
        for c in columns(kind):
            if c.name == "user_id":
                assert c.pii == "pseudonymized"
                assert c.required


def test_free_text_that_may_hold_pii_is_masked() -> None:
    masked = {(k, c.name) for k in ASSET_KINDS for c in columns(k) if c.pii == "masked_free_text"}
    assert masked == {("events", "query"), ("reviews", "text"), ("queries", "query")}


@pytest.mark.parametrize(
    ("kind", "key"),
    [
        ("events", ("user_id", "item_id", "event_type", "ts")),
        ("items", ("item_id", "title")),
        ("users", ("user_id",)),
        ("reviews", ("user_id", "item_id", "rating")),
        ("queries", ("query_id", "query")),
        ("judgments", ("query_id", "item_id", "relevance")),
    ],
)
def test_required_columns_per_kind(kind, key) -> None:
    assert required_columns(kind) == key


def test_duckdb_type_names() -> None:
    by_name = {c.name: duckdb_type(c) for c in columns("items")}
    assert by_name == {
        "item_id": "VARCHAR",
        "title": "VARCHAR",
        "description": "VARCHAR",
        "brand": "VARCHAR",
        "category_path": "VARCHAR",
        "tags": "VARCHAR[]",
        "price": "DOUBLE",
        "currency": "VARCHAR",
        "attributes": "VARCHAR",
        "updated_at": "TIMESTAMPTZ",
    }
    assert duckdb_type(columns("events")[7]) == "BIGINT"


def test_unknown_kind_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        columns("orders")  # type: ignore[arg-type]
