"""A tiny hardware catalogue with queries and graded judgments, as generic CSV files."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from shopkeeper.warehouse import IngestRequest, Workspace, ingest

ITEMS = [
    ("T1", "Elongated Toilet Seat in White", "Kohler", "Bath > Toilets", "Slow close seat."),
    ("T2", "Round Toilet Seat", "American Standard", "Bath > Toilets", ""),
    ("T3", "Toilet Bowl Cleaner Brush", "", "Bath > Cleaning", "Scrubs toilets."),
    ("D1", "20V Cordless Drill Driver Kit", "DeWalt", "Tools > Drills", "Two batteries."),
    ("D2", "Hammer Drill 1/2 in.", "Bosch", "Tools > Drills", "Corded hammer drill."),
    ("D3", "Drill Bit Set (21-Piece)", "DeWalt", "Tools > Accessories", ""),
    ("P1", "Interior Paint Eggshell White 1 gal.", "Behr", "Paint > Interior", ""),
    ("P2", "9 in. Paint Roller Cover", "Wooster", "Paint > Supplies", "For smooth walls."),
    ("P3", "Exterior Wood Stain Cedar", "Behr", "Paint > Stains", "Protects decks."),
    ("G1", "Garden Hose 50 ft.", "Flexzilla", "Outdoors > Watering", "Kink free."),
    ("G2", "Hose Nozzle Sprayer", "Melnor", "Outdoors > Watering", ""),
    ("L1", "LED Light Bulb 60-Watt Equivalent", "Philips", "Lighting > Bulbs", "Soft white."),
]
QUERIES = [
    ("q1", "toilet seat"),
    ("q2", "cordless drill"),
    ("q3", "paint roller"),
    ("q4", "garden hose"),
    ("q5", "led bulb"),
    ("q6", "drill bits"),
    ("q7", "wood stain"),
    ("q8", "white paint"),
]
JUDGMENTS = [
    ("q1", "T1", 3.0),
    ("q1", "T2", 3.0),
    ("q1", "T3", 1.67),
    ("q2", "D1", 3.0),
    ("q2", "D2", 2.33),
    ("q2", "D3", 1.33),
    ("q3", "P2", 3.0),
    ("q3", "P1", 1.67),
    ("q4", "G1", 3.0),
    ("q4", "G2", 2.0),
    ("q5", "L1", 3.0),
    ("q6", "D3", 3.0),
    ("q6", "D1", 1.67),
    ("q7", "P3", 3.0),
    ("q8", "P1", 3.0),
    ("q8", "P2", 1.33),
]


TABLES: dict[str, tuple[tuple[str, ...], Sequence[tuple[object, ...]]]] = {
    "items": (("item_id", "title", "brand", "category", "description"), ITEMS),
    "queries": (("query_id", "query"), QUERIES),
    "judgments": (("query_id", "item_id", "relevance"), JUDGMENTS),
}


def _write(path: Path, header: tuple[str, ...], rows: Sequence[tuple[object, ...]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_catalogue(root: Path) -> dict[str, Path]:
    """The items, queries and judgments CSV files under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    return {kind: _write(root / f"{kind}.csv", *table) for kind, table in TABLES.items()}


def ingest_catalogue(ws: Workspace, root: Path) -> None:
    """Ingest the tiny catalogue, its queries and judgments into `ws`."""
    for kind, path in write_catalogue(root).items():
        ingest(ws, IngestRequest(path, "generic", kind))  # type: ignore[arg-type]
