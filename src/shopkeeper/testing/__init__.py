"""Test helpers: seeded synthetic data with planted anomalies and their ground truth.

`shopkeeper.testing.models` (tiny models for fast tests) needs the `ml` extra and is
imported on its own.
"""

from __future__ import annotations

from shopkeeper.testing.synthetic import (
    COLUMNS,
    DEFAULT_RATES,
    DUPLICATE_CODES,
    PlantedEvents,
    SyntheticEventsConfig,
    generate_events,
)

__all__ = [
    "COLUMNS",
    "DEFAULT_RATES",
    "DUPLICATE_CODES",
    "PlantedEvents",
    "SyntheticEventsConfig",
    "generate_events",
]
