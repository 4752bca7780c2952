"""Home Depot Product Search Relevance (Kaggle 2016): pairs -> items, queries, judgments.

`train.csv` (alone or zipped) has columns `id, product_uid, product_title,
search_term, relevance`: one row per judged (search term, product) pair, relevance
the mean crowd grade from 1 (irrelevant) to 3 (exact match).

Encoding: the file is Mac Roman, not latin-1. Its non-ASCII bytes are titles that
were once UTF-8, mis-decoded as cp1252 and saved as Mac Roman: read as Mac Roman
they become the familiar `Â°` / `â€™` sequences, which the adapter repairs
(`MOJIBAKE`); read as latin-1 they would be `å¡` and C1 control characters.

A query's id is derived from its text: `q` + the first 16 hex digits of
md5(lower(trim(search_term))), so the same term always gets the same id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shopkeeper.errors import ConfigError
from shopkeeper.ingest._mapping import (
    MappingConfig,
    ReadOptions,
    quote_ident,
    sql_literal,
)
from shopkeeper.ingest._mapping import column_source as _col
from shopkeeper.ingest._mapping import sql_source as _src
from shopkeeper.ingest._plan import AssetPlan, ExtraRule
from shopkeeper.ingest.adapters._base import require_file

if TYPE_CHECKING:
    from pathlib import Path

    from shopkeeper.ingest.adapters._base import AdapterContext
    from shopkeeper.schema import AssetKind

ENCODING = "mac_roman"
"""The byte encoding of the Kaggle `train.csv` (see the module docstring)."""
RELEVANCE_RANGE = (1.0, 3.0)
"""Mean crowd grades lie between 1 (irrelevant) and 3 (perfect match)."""
MOJIBAKE = (
    ("â€™", "’"),
    ("â€˜", "‘"),
    ("â€œ", "“"),
    ("â€“", "–"),
    ("â€”", "—"),
    ("â€¦", "…"),
    ("â€ê", "‐"),
    ("â€‹", ""),
    ("â„¢", "™"),
    ("ï»¿", ""),
    ("Â\u00a0", " "),
    ("Â®", "®"),
    ("Â©", "©"),
    ("Â½", "½"),
    ("Â°", "°"),
    ("Ë_", "°"),
)
"""UTF-8-read-as-cp1252 sequences in the titles (as Mac Roman reads them) and their repair."""

_COLUMNS = ("product_uid", "product_title", "search_term", "relevance")
_FILES = ["train.csv.zip", "train.csv"]


def repair_mojibake_sql(expr: str) -> str:
    """SQL replacing each `MOJIBAKE` sequence in `expr` with the character it stands for.

    >>> repair_mojibake_sql("t").count("replace(")
    16
    """
    out = f"CAST({expr} AS VARCHAR)"
    for bad, good in MOJIBAKE:
        out = f"replace({out}, {sql_literal(bad)}, {sql_literal(good)})"
    return out


def query_id_sql(expr: str) -> str:
    """SQL for a query's id: `q` + 16 hex digits of md5 of the trimmed, lower-cased text.

    Empty text gets no id (so the row is quarantined as `missing_query_id`).

    >>> "left(md5(lower(trim(CAST(t AS VARCHAR)))), 16)" in query_id_sql("t")
    True
    """
    term = f"trim(CAST({expr} AS VARCHAR))"
    return f"CASE WHEN {term} <> '' THEN 'q' || left(md5(lower({term})), 16) END"


def _read_options(mapping: MappingConfig | None) -> ReadOptions:
    given = mapping.read.model_dump(exclude_unset=True) if mapping else {}
    return ReadOptions.model_validate({"encoding": ENCODING, "header": True, **given})


class HomeDepotAdapter:
    """Plans items, queries and judgments from the Home Depot `train.csv`."""

    name = "home-depot"

    def plan(
        self,
        ctx: AdapterContext,
        path: Path,
        kind: AssetKind | None,
        mapping: MappingConfig | None,
    ) -> list[AssetPlan]:
        """Stage the pairs once; plan items, then queries, then judgments.

        Raises:
            ConfigError: no `train.csv` at `path`, missing columns, or no asset of `kind`.
        """
        source = require_file(path, _FILES, self.name)
        staged = ctx.stage(source, _read_options(mapping))
        missing = [c for c in _COLUMNS if c not in staged.columns]
        if missing:
            raise ConfigError(
                f"not a Home Depot train.csv: columns {missing} are missing (has {staged.columns})",
                path=str(source),
            )
        cleaning = mapping.cleaning if mapping else {}
        lo, hi = RELEVANCE_RANGE
        params = {
            "encoding": staged.source.encoding,
            "relevance_range": [lo, hi],
            "query_id": "q + md5(lower(trim(search_term)))[:16]",
        }
        item = _col("product_uid")
        query_id = _src(query_id_sql(quote_ident("search_term")), "search_term")
        plans = [
            AssetPlan(
                asset="items",
                kind="items",
                stage=staged,
                transform="home-depot:items",
                sources={
                    "item_id": item,
                    "title": _src(
                        repair_mojibake_sql(quote_ident("product_title")), "product_title"
                    ),
                },
                params=params,
                pack_attributes=False,
                cleaning=cleaning,
            ),
            AssetPlan(
                asset="queries",
                kind="queries",
                stage=staged,
                transform="home-depot:queries",
                sources={"query_id": query_id, "query": _col("search_term")},
                params=params,
                cleaning=cleaning,
            ),
            AssetPlan(
                asset="judgments",
                kind="judgments",
                stage=staged,
                transform="home-depot:judgments",
                sources={"query_id": query_id, "item_id": item, "relevance": _col("relevance")},
                params=params,
                cleaning=cleaning,
                extra_rules=[
                    ExtraRule(
                        "out_of_range_relevance",
                        f'TRY_CAST(trim(CAST("relevance" AS VARCHAR)) AS DOUBLE) '
                        f"NOT BETWEEN {lo} AND {hi}",
                        "relevance",
                    )
                ],
            ),
        ]
        wanted = [p for p in plans if kind is None or p.kind == kind]
        if not wanted:
            raise ConfigError(
                f"home-depot yields items, queries and judgments, not {kind}", path=str(path)
            )
        return wanted
