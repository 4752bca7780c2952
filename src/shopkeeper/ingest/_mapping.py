"""The mapping file: how source columns become canonical columns.

A mapping is YAML validated into `MappingConfig`::

    kind: events
    read: {delimiter: ";", encoding: latin-1}
    columns:
      user_id: customer                      # shorthand for {column: customer}
      ts: {column: when, format: "%d/%m/%Y %H:%M", timezone: Europe/Paris}
      event_type: {column: action, values: {pv: view, buy: purchase}}
      price: {column: amount, cast: double}
    currency: EUR
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, field_validator

from shopkeeper.errors import ConfigError
from shopkeeper.schema import AssetKind, columns

Cast = Literal["string", "text", "id", "double", "int", "timestamp", "tags", "category"]


class ColumnSpec(BaseModel):
    """Where one canonical column comes from and how it is parsed."""

    model_config = ConfigDict(extra="forbid")

    column: str | None = None
    """Source column name."""
    sql: str | None = None
    """A SQL expression over source columns (adapters use this; quote names with "")."""
    constant: str | float | int | None = None
    """A constant value instead of a column."""
    cast: Cast | None = None
    """Target parse; defaults to the canonical column's type."""
    format: str | None = None
    """strptime format for timestamps, e.g. `%d/%m/%Y %H:%M`."""
    unit: Literal["s", "ms", "us"] | None = None
    """Epoch unit when timestamps are numbers."""
    timezone: str | None = None
    """IANA zone of naive source timestamps (converted to UTC); default UTC."""
    values: dict[str, str] | None = None
    """Value map applied after lower-casing, e.g. {pv: view}."""
    separator: str | None = None
    """Separator for tags (default `[|,;]`) or category levels (default `>`)."""

    @field_validator("values")
    @classmethod
    def _lower_keys(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        return None if v is None else {str(k).strip().lower(): str(x) for k, x in v.items()}


class ReadOptions(BaseModel):
    """How to read the file; every field is auto-detected when left out."""

    model_config = ConfigDict(extra="forbid")

    delimiter: str | None = None
    """Field separator (CSV); sniffed by default."""
    encoding: str | None = None
    """Text encoding; detected (UTF-8, cp1252 or latin-1) by default."""
    header: bool | None = None
    """Whether the first line holds column names; sniffed by default."""
    column_names: list[str] | None = None
    """Names for a file without a header line."""
    quote: str | None = None
    """Quote character (CSV)."""


class MappingConfig(BaseModel):
    """A mapping file for the `generic` adapter."""

    model_config = ConfigDict(extra="forbid")

    kind: AssetKind | None = None
    """The asset kind the file holds; `--kind` overrides."""
    asset: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,62}$")
    """Asset name to write (default: the kind)."""
    read: ReadOptions = ReadOptions()
    columns: dict[str, str | ColumnSpec] = {}
    """Canonical column name -> source column or spec; unmapped canonical names match by name."""
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    """Currency of prices when the file has no currency column."""
    base_currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    """Convert prices into this currency with `fx_rates`."""
    fx_rates: dict[str, PositiveFloat] = {}
    """Units of base currency per unit of each source currency."""
    cleaning: dict[str, Any] = {}
    """Overrides of the cleaning rules (see CleaningConfig)."""


@dataclass(frozen=True)
class ColumnSource:
    """A resolved canonical column: the raw SQL expression and its parse spec."""

    raw_sql: str
    spec: ColumnSpec
    source_columns: tuple[str, ...]


def column_source(name: str, **spec: Any) -> ColumnSource:
    """A canonical column read from source column `name` (adapters' shorthand).

    >>> column_source("CustomerID").raw_sql
    '"CustomerID"'
    """
    return ColumnSource(quote_ident(name), ColumnSpec(column=name, **spec), (name,))


def sql_source(sql: str, *columns: str, **spec: Any) -> ColumnSource:
    """A canonical column computed by a SQL expression over `columns` of the source."""
    return ColumnSource(f"({sql})", ColumnSpec(sql=sql, **spec), columns)


def quote_ident(name: str) -> str:
    """Quote a SQL identifier.

    >>> quote_ident("Customer ID")
    '"Customer ID"'
    """
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: object) -> str:
    """Render a Python scalar as a SQL literal.

    >>> sql_literal("it's")
    "'it''s'"
    >>> sql_literal(None)
    'NULL'
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def sql_list(values: list[str]) -> str:
    """The items of a SQL `IN (...)` list; `NULL` for none (so `x IN (NULL)` matches nothing).

    >>> sql_list(["view", "it's"]), sql_list([])
    ("'view', 'it''s'", 'NULL')
    """
    return ", ".join(sql_literal(v) for v in values) or "NULL"


_ALIASES = {"category_path": ("category", "category_path"), "text": ("text", "review", "body")}


def resolve_columns(
    mapping: MappingConfig, kind: AssetKind, source_columns: list[str], source: str
) -> dict[str, ColumnSource]:
    """Match canonical columns of `kind` to source columns.

    Raises:
        ConfigError: an unknown canonical name, a missing source column, or a
            required canonical column with no source.
    """
    canon = {c.name: c for c in columns(kind)}
    by_lower = {c.lower(): c for c in source_columns}
    unknown = sorted(set(mapping.columns) - set(canon))
    if unknown:
        raise ConfigError(
            f"mapping names unknown {kind} columns {unknown}; known: {sorted(canon)}", path=source
        )
    out: dict[str, ColumnSource] = {}
    for name, col in canon.items():
        raw = mapping.columns.get(name)
        spec = ColumnSpec(column=raw) if isinstance(raw, str) else raw
        if spec is None:
            match = next((by_lower[a] for a in _ALIASES.get(name, (name,)) if a in by_lower), None)
            if match is None:
                if name == "currency" and mapping.currency:
                    out[name] = ColumnSource(
                        sql_literal(mapping.currency.upper()),
                        ColumnSpec(constant=mapping.currency),
                        (),
                    )
                elif col.required:
                    raise ConfigError(
                        f"no source column for required {kind} column {name!r}; the file has "
                        f"{source_columns}; map one in the mapping file's `columns:`",
                        path=source,
                    )
                continue
            spec = ColumnSpec(column=match)
        out[name] = _source_of(spec, by_lower, source_columns, source, name)
    return out


def _referenced(sql: str, source_columns: list[str]) -> tuple[str, ...]:
    """Source columns that `sql` names, quoted or bare, in any case (as DuckDB reads them).

    Erring on the side of too many is safe: these columns are pseudonymized (user ids)
    or left out of `attributes`.

    >>> _referenced('lower(cust) || "Order ID"', ["Cust", "order id", "sku"])
    ('Cust', 'order id')
    """
    text = sql.lower()
    return tuple(
        c
        for c in source_columns
        if quote_ident(c).lower() in text
        or re.search(rf"(?<![\w\"]){re.escape(c.lower())}(?![\w\"])", text)
    )


def _source_of(
    spec: ColumnSpec, by_lower: dict[str, str], source_columns: list[str], source: str, name: str
) -> ColumnSource:
    if spec.constant is not None:
        return ColumnSource(sql_literal(spec.constant), spec, ())
    if spec.sql is not None:
        return ColumnSource(f"({spec.sql})", spec, _referenced(spec.sql, source_columns))
    if spec.column is None:
        raise ConfigError(f"column {name!r} needs one of column, sql or constant", path=source)
    actual = spec.column if spec.column in source_columns else by_lower.get(spec.column.lower())
    if actual is None:
        raise ConfigError(
            f"column {name!r} maps to {spec.column!r}, which the file lacks; it has "
            f"{source_columns}",
            path=source,
        )
    return ColumnSource(quote_ident(actual), spec, (actual,))
