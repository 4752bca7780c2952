"""Parameters of the cleaning rules."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, NonNegativeFloat, PositiveFloat, PositiveInt

DEFAULT_EVENT_TYPES = (
    "view",
    "click",
    "add_to_cart",
    "remove_from_cart",
    "wishlist",
    "purchase",
    "return",
    "rating",
    "search",
)


class CleaningConfig(BaseModel):
    """Thresholds and switches of the cleaning rules; every rule reports a reason code."""

    model_config = ConfigDict(extra="forbid")

    event_types: list[str] = list(DEFAULT_EVENT_TYPES)
    """Allowed event types after normalization (lower case, `_` for spaces)."""
    near_duplicate_window_seconds: NonNegativeFloat = 2.0
    """Same user, item and type within this many seconds is a near-duplicate (0: off)."""
    near_duplicate_event_types: list[str] = ["view", "click", "add_to_cart", "search"]
    """Event types the near-duplicate rule applies to."""
    data_start: datetime = datetime(1990, 1, 1, tzinfo=UTC)
    """Timestamps before the shop's data begins are anomalies."""
    future_tolerance_hours: NonNegativeFloat = 24.0
    """Timestamps later than now plus this are anomalies."""
    max_abs_quantity: PositiveInt = 10_000
    """Quantities beyond this (either sign) are absurd."""
    price_outlier_factor: PositiveFloat = 10.0
    """A price within this factor of the group's median is never an outlier."""
    price_outlier_k: PositiveFloat = 5.0
    """Outlier when |log price - median| exceeds k robust standard deviations (IQR / 1.349)."""
    price_outlier_min_observations: PositiveInt = 5
    """Groups (items for events, categories for items) need this many prices."""
    bot_max_events_per_minute: PositiveInt = 60
    """A user with more events than this in any 60 seconds is a bot."""
    bot_event_types: list[str] = ["view", "click", "add_to_cart", "search"]
    """Event types counted for the bot rule."""
    check_unknown_items: bool = True
    """Quarantine events and reviews whose item the items asset lacks (when it exists)."""
    max_bad_share_warning: PositiveFloat = 0.5
    """Warn when more than this share of rows is quarantined."""
