"""A synthetic items catalog written as a generic CSV and ingested."""

from __future__ import annotations

import csv
from pathlib import Path

from shopkeeper.warehouse import IngestRequest, Workspace, ingest

ITEM_COLUMNS = ("item_id", "title", "brand", "category", "tags", "description", "price")
_NOUNS = ("shirt", "mug", "lamp", "candle", "hose", "chair", "kettle", "scarf", "vase", "rug")
_ADJS = ("red", "blue", "cotton", "ceramic", "garden", "wooden", "steel", "wool", "glass", "linen")


def item_rows(n: int, start: int = 0) -> list[dict[str, str]]:
    """`n` synthetic catalog rows with every text field filled in some and empty in others."""
    rows = []
    for i in range(start, start + n):
        adj, noun = _ADJS[i % len(_ADJS)], _NOUNS[(i // len(_ADJS)) % len(_NOUNS)]
        rows.append(
            {
                "item_id": f"SKU{i:05d}",
                "title": f"{adj} {noun} model {i}",
                "brand": f"Brand{i % 7}" if i % 3 else "",
                "category": f"Home > {noun.title()}s",
                "tags": f"{adj}|{noun}" if i % 2 else "",
                "description": f"A {adj} {noun} made with care, item number {i}. " * (i % 4),
                "price": f"{5 + i % 50}.99",
            }
        )
    return rows


def write_items(path: Path, rows: list[dict[str, str]]) -> Path:
    """Write catalog rows as a generic items CSV."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=ITEM_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    return path


def ingest_items(ws: Workspace, path: Path) -> None:
    """Ingest a generic items file into `ws`."""
    ingest(ws, IngestRequest(path, "generic", "items"))
