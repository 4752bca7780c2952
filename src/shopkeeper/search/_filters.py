"""Search filters (category, brand, price range) and facet counts over the catalogue.

The catalogue's brand, category path and price are read once into arrays aligned with
the retrievers' rows: brand and category as dictionary codes, price as floats (NaN where
unknown). A filter set becomes one boolean item mask, computed from those arrays (the
per-value work is done on the distinct brands and category paths only); the retrievers
apply the mask before taking their top k, so k items come back whenever k items match.

- Category: a path like `Tools > Drills` (levels split on `>`, compared case-insensitively)
  matches items whose path starts with those levels, so a node matches its descendants.
  When no path starts with it, it matches the node anywhere (`Drills` finds
  `Tools > Drills > Hammer Drills`).
- Brand: case-insensitive exact match.
- Price: `min_price <= price <= max_price`, both inclusive; items without a price never
  match a price bound.

Facets count the category (top level, and the level under a chosen category), brand and
price bucket of the items a query retrieved (its candidate pool, after the filters).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shopkeeper.errors import ConfigError
from shopkeeper.ingest import quote_ident
from shopkeeper.search._retrieve import catalogue_rows

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy.typing as npt

    from shopkeeper.warehouse import Warehouse

PRICE_EDGES = (0.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0)
"""Lower bounds of the price facet's buckets (the last one is open-ended)."""
TOP_BRANDS = 20
"""Brands listed in the brand facet (the most frequent)."""


class SearchFilters(BaseModel):
    """Which items a search may return."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    category: str | None = None
    """A category path (`A > B`); matches the node and everything under it."""
    brand: str | None = None
    """A brand, matched case-insensitively."""
    min_price: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """Lowest price, inclusive."""
    max_price: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    """Highest price, inclusive."""

    @field_validator("category", "brand")
    @classmethod
    def _blank_is_none(cls, v: str | None) -> str | None:
        return v.strip() or None if v is not None else None

    @model_validator(mode="after")
    def _range(self) -> SearchFilters:
        if (
            self.min_price is not None
            and self.max_price is not None
            and self.min_price > self.max_price
        ):
            raise ValueError(f"min_price {self.min_price} is above max_price {self.max_price}")
        return self

    @property
    def active(self) -> bool:
        """Whether any filter is set."""
        return any(v is not None for v in self.model_dump().values())


def category_levels(path: str) -> tuple[str, ...]:
    """A category path's levels, trimmed and lower-cased (empty levels dropped).

    >>> category_levels(" Tools >drills > ")
    ('tools', 'drills')
    """
    return tuple(p.strip().casefold() for p in path.split(">") if p.strip())


def _contains_run(levels: tuple[str, ...], run: tuple[str, ...]) -> bool:
    n = len(run)
    return any(levels[i : i + n] == run for i in range(len(levels) - n + 1))


def _encode(values: pa.ChunkedArray | pa.Array) -> tuple[npt.NDArray[np.int64], list[Any]]:
    """Dictionary codes (-1: null) and the distinct values."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    enc = pc.dictionary_encode(values)
    codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes, enc.dictionary.to_pylist()


@dataclass
class ItemAttributes:
    """Brand, category and price of every catalogue row, for filters and facets."""

    brand_codes: npt.NDArray[np.int64]
    """Row -> index into `brands` (-1: no brand); one code per case-folded brand."""
    brands: list[str]
    """Display name of each brand code (its first spelling in the catalogue)."""
    category_codes: npt.NDArray[np.int64]
    """Row -> index into `categories` (-1: no category)."""
    categories: list[tuple[str, ...]]
    """Levels of each distinct category path, as written."""
    price: npt.NDArray[np.float64]
    """Row -> price (NaN: unknown)."""

    @classmethod
    def from_table(cls, item_ids: Sequence[str], table: pa.Table) -> ItemAttributes:
        """Attributes of `item_ids` from a table with `item_id` and any of `brand`,
        `category_path`, `price` (missing columns or items: no value)."""
        n = len(item_ids)
        rows = catalogue_rows(table.column("item_id").to_pylist(), item_ids)
        found = rows >= 0

        def column(name: str, typ: pa.DataType) -> pa.Array:
            if name not in table.column_names:
                return pa.nulls(n, typ)
            col = table.column(name).combine_chunks().cast(typ)
            return pc.if_else(pa.array(found), col.take(pa.array(np.maximum(rows, 0))), None)

        brand = pc.utf8_trim_whitespace(column("brand", pa.string()))
        brand = pc.if_else(pc.equal(brand, ""), None, brand)
        brand_codes, _ = _encode(pc.utf8_lower(brand))
        first = np.unique(brand_codes, return_index=True)
        shown = brand.take(pa.array(first[1][first[0] >= 0])).to_pylist()
        cat_codes, paths = _encode(column("category_path", pa.string()))
        levels = [tuple(p.strip() for p in s.split(">") if p.strip()) for s in paths]
        has_levels = np.array([bool(lv) for lv in levels] + [False])
        cat_codes = np.where(has_levels[cat_codes], cat_codes, -1)  # -1 reads the last
        price = column("price", pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
        return cls(brand_codes, shown, cat_codes, levels, price)

    @property
    def n_items(self) -> int:
        """Catalogue rows."""
        return len(self.price)

    def _brand_code(self, brand: str) -> int:
        want = brand.lower()
        keys = [b.lower() for b in self.brands]
        if want in keys:
            return keys.index(want)
        near = difflib.get_close_matches(want, keys, n=3, cutoff=0.6)
        hint = (
            f"; did you mean {', '.join(self.brands[keys.index(x)] for x in near)}?" if near else ""
        )
        known = "" if self.brands else " (the catalogue has no brands)"
        raise ConfigError(f"no item has brand {brand!r}{known}{hint}")

    def category_match(self, category: str) -> npt.NDArray[np.bool_]:
        """Which distinct category paths `category` matches (itself or a descendant).

        Raises:
            ConfigError: no category path has that node.
        """
        want = category_levels(category)
        folded = [tuple(x.casefold() for x in lv) for lv in self.categories]
        n = len(want)
        match = np.array([lv[:n] == want for lv in folded], dtype=bool)
        if n and not match.any():
            match = np.array([_contains_run(lv, want) for lv in folded], dtype=bool)
        if not n or not match.any():
            tops = sorted({lv[0] for lv in self.categories if lv})
            listed = ", ".join(tops[:10]) + (", …" if len(tops) > 10 else "")
            known = f"; top-level categories: {listed}" if tops else " (the catalogue has none)"
            raise ConfigError(f"unknown category {category!r}{known}")
        return match

    def mask(self, filters: SearchFilters | None) -> npt.NDArray[np.bool_] | None:
        """The rows that pass `filters` (None: no filter set, every row passes).

        Raises:
            ConfigError: an unknown brand or category.
        """
        if filters is None or not filters.active:
            return None
        keep = np.ones(self.n_items, dtype=bool)
        if filters.brand is not None:
            keep &= self.brand_codes == self._brand_code(filters.brand)
        if filters.category is not None:
            match = np.append(self.category_match(filters.category), False)
            keep &= match[self.category_codes]  # code -1 reads the appended False
        with np.errstate(invalid="ignore"):
            if filters.min_price is not None:
                keep &= self.price >= filters.min_price
            if filters.max_price is not None:
                keep &= self.price <= filters.max_price
        return keep

    def _children(self, category: str, cats: npt.NDArray[np.int64]) -> list[dict[str, Any]]:
        """Counts of the level under `category` among items of category codes `cats`."""
        want = category_levels(category)
        child_of, names = _children_of(self.categories, self.category_match(category), want)
        return _counted(child_of[cats], names)

    def facets(self, rows: npt.NDArray[np.int64], category: str | None = None) -> dict[str, Any]:
        """Category, brand and price-bucket counts of the given rows (-1 entries ignored).

        Args:
            rows: Catalogue rows (any shape; each occurrence counts once).
            category: The chosen category, whose next level is counted as `subcategory`.
        """
        rows = rows[rows >= 0].ravel()
        out: dict[str, Any] = {"items": len(rows)}
        cats = self.category_codes[rows]
        tops = sorted({lv[0] for lv in self.categories if lv})
        top_index = {t: i for i, t in enumerate(tops)}
        top_of = np.array(
            [top_index[lv[0]] if lv else -1 for lv in self.categories] + [-1], dtype=np.int64
        )
        out["category"] = _counted(top_of[cats], tops)
        if category is not None:
            out["subcategory"] = {
                "parent": category,
                "values": self._children(category, cats),
            }
        out["brand"] = _counted(self.brand_codes[rows], self.brands)[:TOP_BRANDS]
        out["price"] = price_buckets(self.price[rows])
        return out


def _children_of(
    categories: Sequence[tuple[str, ...]], match: npt.NDArray[np.bool_], want: tuple[str, ...]
) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Per category code, the index of its level under `want` (-1: none), and the names."""
    child = [_child(lv, want) if m else None for lv, m in zip(categories, match, strict=True)]
    names = sorted({c for c in child if c is not None})
    index = {c: i for i, c in enumerate(names)}
    codes = [index[c] if c is not None else -1 for c in child]
    return np.array([*codes, -1], dtype=np.int64), names


def _child(levels: tuple[str, ...], want: tuple[str, ...]) -> str | None:
    """The level right under the run `want` in `levels` (None: it is the leaf)."""
    folded = tuple(x.casefold() for x in levels)
    n = len(want)
    for i in range(len(folded) - n + 1):
        if folded[i : i + n] == want:
            return levels[i + n] if i + n < len(levels) else None
    return None


def _counted(codes: npt.NDArray[np.int64], names: Sequence[str]) -> list[dict[str, Any]]:
    """`[{"value", "count"}]` of the non-negative codes, most frequent first (ties by name)."""
    counts = np.bincount(codes[codes >= 0], minlength=len(names))
    nz = np.flatnonzero(counts)
    order = sorted(nz.tolist(), key=lambda i: (-int(counts[i]), names[i]))
    return [{"value": names[i], "count": int(counts[i])} for i in order]


def price_buckets(price: npt.NDArray[np.float64]) -> list[dict[str, Any]]:
    """Counts per price bucket of `PRICE_EDGES` (empty ones left out) and of no price.

    >>> price_buckets(np.array([5.0, 10.0, 12.5, np.nan, 2000.0]))
    [{'min': 0.0, 'max': 10.0, 'count': 1}, {'min': 10.0, 'max': 25.0, 'count': 2}, \
{'min': 1000.0, 'max': None, 'count': 1}, {'min': None, 'max': None, 'count': 1}]
    """
    known = ~np.isnan(price)
    edges = np.asarray(PRICE_EDGES)
    bucket = np.searchsorted(edges, price[known], side="right") - 1
    counts = np.bincount(np.maximum(bucket, 0), minlength=len(edges))
    uppers: list[float | None] = [*PRICE_EDGES[1:], None]
    out = [
        {"min": lo, "max": hi, "count": int(c)}
        for lo, hi, c in zip(PRICE_EDGES, uppers, counts.tolist(), strict=True)
        if c
    ]
    if (~known).any():
        out.append({"min": None, "max": None, "count": int((~known).sum())})
    return out


def read_item_attributes(
    wh: Warehouse, items_version: int, item_ids: Sequence[str]
) -> ItemAttributes:
    """The attributes of `item_ids` from one items version."""
    view = quote_ident(f"items_v{items_version}")
    have = {r[0] for r in wh.con.execute(f"DESCRIBE {view}").fetchall()}
    cols = ["item_id", *(c for c in ("brand", "category_path", "price") if c in have)]
    table = wh.con.sql(f"SELECT {', '.join(cols)} FROM {view}").to_arrow_table()
    return ItemAttributes.from_table(item_ids, table)


def parse_filters(
    category: str | None = None,
    brand: str | None = None,
    min_price: float | None = None,
    max_price: float | None = None,
) -> SearchFilters | None:
    """Filter options (command line or query string) as `SearchFilters`; None: no filter.

    Raises:
        ConfigError: a bad combination (min price above max price).
    """
    given = {"category": category, "brand": brand, "min_price": min_price, "max_price": max_price}
    try:
        filters = SearchFilters.model_validate(given)
    except ValidationError as exc:
        msg = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise ConfigError(f"bad search filter: {msg}") from exc
    return filters if filters.active else None
