"""The item text template, compiled to SQL."""

from __future__ import annotations

import duckdb
import pytest
from pydantic import ValidationError

from shopkeeper.features import ItemTextConfig, item_text_sql


def render(con: duckdb.DuckDBPyConnection, cfg: ItemTextConfig, **cols: object) -> str:
    row = {
        "title": None,
        "brand": None,
        "category_path": None,
        "tags": None,
        "description": None,
        **cols,
    }
    con.execute(
        "CREATE OR REPLACE TEMP TABLE t AS SELECT ?::VARCHAR AS title, ?::VARCHAR AS brand, "
        "?::VARCHAR AS category_path, ?::VARCHAR[] AS tags, ?::VARCHAR AS description",
        [row["title"], row["brand"], row["category_path"], row["tags"], row["description"]],
    )
    out = con.execute(f"SELECT {item_text_sql(cfg)} FROM t").fetchall()
    return str(out[0][0])


def test_all_fields_in_template_order(duckdb_con: duckdb.DuckDBPyConnection) -> None:
    text = render(
        duckdb_con,
        ItemTextConfig(),
        title="Red cotton t-shirt",
        brand="Acme",
        category_path="Clothing > Tops",
        tags=["summer", "basics"],
        description="Soft and light.",
    )
    assert text == (
        "Red cotton t-shirt. Brand: Acme. Category: Clothing > Tops. "
        "Tags: summer, basics. Soft and light."
    )


def test_empty_fields_drop_their_segment(duckdb_con: duckdb.DuckDBPyConnection) -> None:
    text = render(duckdb_con, ItemTextConfig(), title="Garden hose", brand="  ", tags=[])
    assert text == "Garden hose"


def test_custom_template_and_separator(duckdb_con: duckdb.DuckDBPyConnection) -> None:
    cfg = ItemTextConfig(template=["{brand} {title}", "({category})"], separator=" ")
    text = render(duckdb_con, cfg, title="Mug", brand="Acme", category_path="Kitchen")
    assert text == "Acme Mug (Kitchen)"


def test_truncation_at_word_boundaries(duckdb_con: duckdb.DuckDBPyConnection) -> None:
    cfg = ItemTextConfig(max_field_chars=20, max_chars=40)
    long_desc = "word " * 100
    text = render(duckdb_con, cfg, title="Lamp", description=long_desc)
    assert len(text) <= 40
    assert text.startswith("Lamp. word")
    assert text.endswith("word")  # no word cut in half
    text = render(duckdb_con, cfg, title="x" * 50)
    assert text == "x" * 20  # a single long word is cut where it must be


def test_template_validation() -> None:
    with pytest.raises(ValidationError, match="unknown field"):
        ItemTextConfig(template=["{title}", "{colour}"])
    with pytest.raises(ValidationError, match="names no field"):
        ItemTextConfig(template=["plain"])
    with pytest.raises(ValidationError):
        ItemTextConfig(mystery=1)  # type: ignore[call-arg]


def test_config_round_trip() -> None:
    cfg = ItemTextConfig(template=["{title}", "{tags}"], max_chars=300)
    dumped = cfg.model_dump(mode="json")
    again = ItemTextConfig.model_validate(dumped)
    assert again == cfg
    assert again.model_dump(mode="json") == dumped
