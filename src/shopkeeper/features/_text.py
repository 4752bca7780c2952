"""Item text: a configurable template over title, brand, category, tags and description.

The template is compiled to one DuckDB expression, so the text of every item is built
and hashed inside the warehouse, vectorized, with no per-row Python.
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from shopkeeper.errors import NotFoundError
from shopkeeper.ingest import quote_ident, sql_literal

if TYPE_CHECKING:
    from collections.abc import Sequence

    from shopkeeper.warehouse import Warehouse

TextField = Literal["title", "brand", "category", "tags", "description"]
TEXT_FIELDS: dict[str, str] = {
    "title": "title",
    "brand": "brand",
    "category": "category_path",
    "tags": "array_to_string(tags, ', ')",
    "description": "description",
}
"""Template field -> SQL over the canonical items columns."""


class ItemTextConfig(BaseModel):
    """How an item becomes the one text the encoder reads."""

    model_config = ConfigDict(extra="forbid")

    template: list[str] = Field(
        default_factory=lambda: [
            "{title}",
            "Brand: {brand}",
            "Category: {category}",
            "Tags: {tags}",
            "{description}",
        ]
    )
    """Segments joined by `separator`; a segment whose fields are all empty is dropped."""
    separator: str = ". "
    """Joins the non-empty segments."""
    max_field_chars: PositiveInt = 400
    """Each field is cut at a word boundary to at most this many characters."""
    max_chars: PositiveInt = 1000
    """The whole text is cut to this many characters (title and brand come first)."""

    @field_validator("template")
    @classmethod
    def _known_fields(cls, segments: list[str]) -> list[str]:
        if not segments:
            raise ValueError("the template needs at least one segment")
        for seg in segments:
            fields = template_fields(seg)
            if not fields:
                raise ValueError(f"segment {seg!r} names no field")
            unknown = [f for f in fields if f not in TEXT_FIELDS]
            if unknown:
                raise ValueError(
                    f"unknown field(s) {unknown} in {seg!r}; known: {list(TEXT_FIELDS)}"
                )
        return segments


def template_fields(segment: str) -> list[str]:
    """The `{field}` names of one template segment, in order.

    >>> template_fields("Brand: {brand} ({category})")
    ['brand', 'category']
    """
    return [name for _, name, _, _ in string.Formatter().parse(segment) if name is not None]


def _truncate_sql(expr: str, n: int) -> str:
    """`expr` cut at the last word boundary within `n` characters (a lone long word is cut)."""
    return (
        f"CASE WHEN length({expr}) <= {n} THEN {expr} "
        f"ELSE left(regexp_replace(left({expr}, {n + 1}), '\\s+\\S*$', ''), {n}) END"
    )


def item_text_sql(cfg: ItemTextConfig) -> str:
    """One DuckDB expression over the items columns that yields each item's text."""
    parts = []
    for seg in cfg.template:
        pieces: list[str] = []
        present: list[str] = []
        for literal, name, _, _ in string.Formatter().parse(seg):
            if literal:
                pieces.append(sql_literal(literal))
            if name is not None:
                value = f"nullif(trim({TEXT_FIELDS[name]}), '')"
                pieces.append(f"coalesce({_truncate_sql(value, cfg.max_field_chars)}, '')")
                present.append(f"{value} IS NOT NULL")
        parts.append(f"CASE WHEN {' OR '.join(present)} THEN concat({', '.join(pieces)}) END")
    joined = f"concat_ws({sql_literal(cfg.separator)}, {', '.join(parts)})"
    return _truncate_sql(joined, cfg.max_chars)


def read_item_texts(
    wh: Warehouse, item_ids: Sequence[str], cfg: ItemTextConfig | None = None
) -> list[str]:
    """Each item's text from the latest items version, in `item_ids` order ("" if none).

    Raises:
        NotFoundError: the workspace has no items.
    """
    items = wh.latest("items")
    if items is None:
        raise NotFoundError("no items asset yet; ingest items first")
    source = (
        f"(SELECT item_id, any_value({item_text_sql(cfg or ItemTextConfig())}) AS text "
        f"FROM {quote_ident(f'items_v{items.version}')} GROUP BY item_id)"
    )
    texts: list[str] = rows_in_order(wh, item_ids, "coalesce(text, '')", source)
    return texts


def rows_in_order(wh: Warehouse, item_ids: Sequence[str], select: str, source: str) -> Any:
    """`select` over `source` left-joined to `item_ids` on `item_id`: one row per id, in
    order (NULLs where `source` lacks the id). One column: a list; several: a dict of
    NumPy arrays by column."""
    wanted = pa.table(
        {
            "item_id": pa.array(list(item_ids), pa.string()),
            "pos": pa.array(range(len(item_ids)), pa.int64()),
        }
    )
    wh.con.register("_wanted_items", wanted)
    try:
        table: pa.Table = wh.con.sql(
            f"SELECT {select} FROM _wanted_items w LEFT JOIN {source} s USING (item_id) "
            f"ORDER BY w.pos"
        ).to_arrow_table()
    finally:
        wh.con.unregister("_wanted_items")
    if table.num_columns == 1:
        return table.column(0).to_pylist()
    return {name: table.column(name).to_numpy() for name in table.column_names}
