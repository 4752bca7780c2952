"""Per-column SQL: normalize the raw value, then parse it into its canonical type."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from shopkeeper.clean._pii import Pseudonymizer, mask_pii_sql, pii_flags_sql
from shopkeeper.clean._text import (
    event_type_sql,
    has_replacement_char,
    norm_id,
    norm_text,
    null_if_marker,
)
from shopkeeper.schema import CanonicalColumn, duckdb_type

if TYPE_CHECKING:
    from shopkeeper.ingest import ColumnSource

_ID_COLUMNS = {"user_id", "item_id", "session_id", "query_id"}
_EPOCH_DIVISOR = {"s": 1, "ms": 1_000, "us": 1_000_000}
_OFFSET_RE = "(Z|[+-][0-9]{2}:?[0-9]{2}|[0-9]:[0-9]{2}(:[0-9]{2}(\\.[0-9]+)?)?[+-][0-9]{2})$"
"""An explicit UTC offset: `Z`, `+05:30`, `+0530`, or `+05` right after a time."""


@dataclass
class ColumnSql:
    """The SQL of one canonical column inside the mapped table."""

    expr: str
    """Parsed, normalized value."""
    raw: str | None = None
    """Normalized source text, kept to tell missing from unparseable."""
    pii_flags: dict[str, str] = field(default_factory=dict)
    encoding_check: str | None = None
    pre: str | None = None
    """Computed one layer below as `"_p_<name>"`, which `expr` and `raw` then reference."""


def _number(raw: str, clean: bool = False) -> str:
    s = raw if clean else null_if_marker(f"CAST({raw} AS VARCHAR)")
    slow = f"TRY_CAST(regexp_replace({s}, '^[£$€]|\\s', '', 'g') AS DOUBLE)"
    return f"coalesce(TRY_CAST({s} AS DOUBLE), {slow})"


def _timestamp(raw: str, src: ColumnSource, clean: bool = False) -> str:
    s = raw if clean else null_if_marker(f"CAST({raw} AS VARCHAR)")
    tz = (src.spec.timezone or "UTC").replace("'", "''")
    if src.spec.unit:
        v = f"TRY_CAST({s} AS DOUBLE) / {_EPOCH_DIVISOR[src.spec.unit]}"
        return f"CASE WHEN abs({v}) < 1e11 THEN to_timestamp({v}) END"
    if src.spec.format:
        fmt = src.spec.format.replace("'", "''")
        parsed = f"try_strptime({s}, '{fmt}')"
        if "%z" in src.spec.format or "%Z" in src.spec.format:
            return f"CAST({parsed} AS TIMESTAMPTZ)"
        return f"timezone('{tz}', {parsed})"
    if tz == "UTC":  # naive values are read as UTC, explicit offsets are honoured: one cast
        return f"TRY_CAST({s} AS TIMESTAMPTZ)"
    return (
        f"CASE WHEN regexp_matches({s}, '{_OFFSET_RE}') THEN TRY_CAST({s} AS TIMESTAMPTZ) "
        f"ELSE timezone('{tz}', TRY_CAST({s} AS TIMESTAMP)) END"
    )


def _json_list(raw: str) -> tuple[str, str]:
    """(is a JSON array, its elements as normalized text without NULLs) for list sources.

    Lists from JSON and Parquet are staged as JSON text: their elements are taken
    as they are, never split on separators.
    """
    text = f"CAST({raw} AS VARCHAR)"
    test = f"(starts_with(ltrim({text}), '[') AND coalesce(json_valid({text}), false))"
    items = (
        f"list_filter(list_transform(json_extract_string({text}, '$[*]'), "
        f"lambda _e: {norm_text('_e')}), lambda _e: _e IS NOT NULL)"
    )
    return test, items


def _category(raw: str, sep: str | None) -> str:
    splitter = re.escape(sep) if sep else ">"
    split = f"regexp_replace({norm_text(raw)}, '\\s*{splitter}\\s*', ' > ', 'g')"
    is_list, items = _json_list(raw)
    return f"CASE WHEN {is_list} THEN nullif(array_to_string({items}, ' > '), '') ELSE {split} END"


def _tags(raw: str, sep: str | None) -> str:
    splitter = re.escape(sep) if sep else "[|,;]"
    joined = f"regexp_replace({norm_text(raw)}, '\\s*{splitter}\\s*', '|', 'g')"
    trimmed = f"regexp_replace(regexp_replace({joined}, '\\|+', '|', 'g'), '^\\||\\|$', '', 'g')"
    is_list, items = _json_list(raw)
    return (
        f"CASE WHEN {is_list} THEN (CASE WHEN len({items}) > 0 THEN {items} END) "
        f"WHEN {trimmed} <> '' THEN string_split({trimmed}, '|') END"
    )


def column_sql(col: CanonicalColumn, src: ColumnSource, pseudo: Pseudonymizer) -> ColumnSql:
    """Build the normalize-and-parse SQL of canonical column `col` from `src`."""
    raw = src.raw_sql
    cast = src.spec.cast
    if col.name == "user_id":
        return ColumnSql(pseudo.sql(norm_id(raw)))
    p = f'"_p_{col.name}"'
    marked = null_if_marker(f"CAST({raw} AS VARCHAR)")
    if col.name in _ID_COLUMNS or cast == "id":
        return ColumnSql(
            f"CASE WHEN contains({p}, '.') THEN regexp_replace({p}, '^(-?[0-9]+)\\.0+$', '\\1') "
            f"ELSE {p} END",
            pre=marked,
        )
    if col.name == "event_type":
        return ColumnSql(event_type_sql(p, src.spec.values), pre=f"lower({marked})")
    if col.name == "currency":
        return ColumnSql(f"upper({null_if_marker(f'CAST({raw} AS VARCHAR)')})")
    if col.name == "category_path" or cast == "category":
        return ColumnSql(
            _category(raw, src.spec.separator),
            encoding_check=has_replacement_char(f"CAST({raw} AS VARCHAR)"),
        )
    if col.name == "tags" or cast == "tags":
        return ColumnSql(_tags(raw, src.spec.separator))
    typ = duckdb_type(col)
    if typ == "TIMESTAMPTZ":
        return ColumnSql(_timestamp(p, src, clean=True), raw=p, pre=marked)
    if typ == "DOUBLE":
        v = _number(p, clean=True)
        return ColumnSql(f"CASE WHEN isfinite({v}) THEN {v} END", raw=p, pre=marked)
    if typ == "BIGINT":
        v = _number(p, clean=True)
        return ColumnSql(
            f"CASE WHEN isfinite({v}) AND {v} = round({v}) AND abs({v}) < 9e18 "
            f"THEN CAST({v} AS BIGINT) END",
            raw=p,
            pre=marked,
        )
    if col.name == "attributes":
        return ColumnSql(f"CAST({raw} AS VARCHAR)")
    check = has_replacement_char(f"CAST({raw} AS VARCHAR)")
    if col.pii == "masked_free_text":
        return ColumnSql(
            f"CASE WHEN regexp_matches({p}, '[@0-9]') THEN {mask_pii_sql(p)} ELSE {p} END",
            pii_flags=pii_flags_sql(f'"{col.name}"', f"_pii_{col.name}"),
            encoding_check=check,
            pre=norm_text(raw),
        )
    return ColumnSql(p, encoding_check=check, pre=norm_text(raw))


def pack_attributes_sql(columns: list[tuple[str, str]], mask: bool) -> str:
    """A JSON object of leftover source columns: (key, SQL expression) pairs."""
    if not columns:
        return "NULL"
    parts = []
    for key, expr in columns:
        value = norm_text(expr)
        if mask:
            value = mask_pii_sql(value)
        parts.append(f"'{key.replace(chr(39), chr(39) * 2)}', {value}")
    return f"CAST(json_object({', '.join(parts)}) AS VARCHAR)"
