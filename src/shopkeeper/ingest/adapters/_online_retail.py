"""UCI Online Retail: invoice lines -> items, users and purchase/return events.

Columns: InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice,
CustomerID, Country (the UCI export, as CSV or Parquet). Times are UK local time.
Invoices starting with `C` are cancellations and become `return` events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shopkeeper.errors import ConfigError
from shopkeeper.ingest._mapping import MappingConfig
from shopkeeper.ingest._mapping import column_source as _col
from shopkeeper.ingest._mapping import sql_source as _src
from shopkeeper.ingest._plan import AssetPlan, ExtraRule

if TYPE_CHECKING:
    from pathlib import Path

    from shopkeeper.ingest.adapters._base import AdapterContext
    from shopkeeper.schema import AssetKind

NON_PRODUCT_CODES = (
    "POST",
    "DOT",
    "M",
    "C2",
    "D",
    "S",
    "BANK CHARGES",
    "AMAZONFEE",
    "CRUK",
    "B",
    "PADS",
)
"""Postage, carriage, manual entries, discounts, samples, fees, commissions, adjustments."""
NON_PRODUCT_PATTERN = "^GIFT_"
"""Gift vouchers."""

_COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
_TZ = "Europe/London"
_DATE = (
    "coalesce(CAST(try_strptime(CAST(\"InvoiceDate\" AS VARCHAR), '%m/%d/%Y %H:%M') AS VARCHAR), "
    'CAST("InvoiceDate" AS VARCHAR))'
)
_CODE = 'upper(trim(CAST("StockCode" AS VARCHAR)))'


class OnlineRetailAdapter:
    """Plans items, users and events from one Online Retail export."""

    name = "online-retail"

    def plan(
        self,
        ctx: AdapterContext,
        path: Path,
        kind: AssetKind | None,
        mapping: MappingConfig | None,
    ) -> list[AssetPlan]:
        """Stage the export once; plan items, then users, then events."""
        if path.is_dir():
            raise ConfigError("online-retail takes the export file itself", path=str(path))
        staged = ctx.stage(path, mapping.read if mapping else None)
        missing = [c for c in _COLUMNS if c not in staged.columns]
        if missing:
            raise ConfigError(
                f"not an Online Retail export: columns {missing} are missing (has "
                f"{staged.columns})",
                path=str(path),
            )
        codes = ", ".join(f"'{c}'" for c in NON_PRODUCT_CODES)
        non_product = ExtraRule(
            "non_product_code",
            f"{_CODE} IN ({codes}) OR regexp_matches({_CODE}, '{NON_PRODUCT_PATTERN}')",
            "item_id",
        )
        ts = _src(_DATE, "InvoiceDate", timezone=_TZ)
        gbp = _src("'GBP'")
        item = _src(_CODE, "StockCode")
        params = {"timezone": _TZ, "non_product_codes": list(NON_PRODUCT_CODES)}
        cleaning = mapping.cleaning if mapping else {}
        items = AssetPlan(
            asset="items",
            kind="items",
            stage=staged,
            transform="online-retail:items",
            sources={
                "item_id": item,
                "title": _col("Description"),
                "price": _col("UnitPrice"),
                "currency": gbp,
                "updated_at": ts,
            },
            params=params,
            extra_rules=[non_product],
            pack_attributes=False,
            cleaning=cleaning,
        )
        users = AssetPlan(
            asset="users",
            kind="users",
            stage=staged,
            transform="online-retail:users",
            sources={
                "user_id": _col("CustomerID"),
                "attributes": _src(
                    "CAST(json_object('country', trim(\"Country\")) AS VARCHAR)", "Country"
                ),
                "created_at": ts,
            },
            params=params,
            cleaning=cleaning,
        )
        events = AssetPlan(
            asset="events",
            kind="events",
            stage=staged,
            transform="online-retail:events",
            sources={
                "user_id": _col("CustomerID"),
                "item_id": item,
                "event_type": _src(
                    "CASE WHEN upper(CAST(\"InvoiceNo\" AS VARCHAR)) LIKE 'C%' "
                    "THEN 'return' ELSE 'purchase' END",
                    "InvoiceNo",
                ),
                "ts": ts,
                "session_id": _col("InvoiceNo"),
                "value": _src(
                    'TRY_CAST("Quantity" AS DOUBLE) * TRY_CAST("UnitPrice" AS DOUBLE)',
                    "Quantity",
                    "UnitPrice",
                ),
                "quantity": _col("Quantity"),
                "price": _col("UnitPrice"),
                "currency": gbp,
            },
            params=params,
            extra_rules=[non_product],
            depends_on_items=True,
            cleaning={"near_duplicate_event_types": [], "bot_event_types": [], **cleaning},
        )
        return [items, users, events]
