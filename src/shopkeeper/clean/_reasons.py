"""Reason codes: why a row was quarantined or counted as a duplicate."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Every rule's code. Column-specific codes are `<reason>_<column>`."""

    MALFORMED_ROW = "malformed_row"
    """Wrong number of fields, or not a JSON object."""
    INVALID_ENCODING = "invalid_encoding"
    """Bytes that are not valid in the file's encoding, or U+FFFD in text."""
    EXACT_DUPLICATE = "exact_duplicate"
    """Identical in every source field to an earlier row (counted, not quarantined)."""
    NEAR_DUPLICATE = "near_duplicate"
    """Same user, item and event type within the near-duplicate window (counted)."""
    SUPERSEDED = "superseded"
    """An older row for the same id in the same load; the latest wins (counted)."""
    MISSING = "missing"
    """A required field is empty, `nan`, `null` or absent."""
    UNPARSEABLE = "unparseable"
    """A value that does not parse as its type (timestamp, number)."""
    INVALID_EVENT_TYPE = "invalid_event_type"
    INVALID_CURRENCY = "invalid_currency"
    UNKNOWN_CURRENCY = "unknown_currency"
    """A currency with no exchange rate when conversion was asked for."""
    FUTURE_TIMESTAMP = "future_timestamp"
    TIMESTAMP_BEFORE_START = "timestamp_before_start"
    NONPOSITIVE_PRICE = "nonpositive_price"
    PRICE_OUTLIER = "price_outlier"
    """Price far outside the item's (events) or category's (items) robust range."""
    ABSURD_QUANTITY = "absurd_quantity"
    UNKNOWN_ITEM = "unknown_item"
    """An event or review for an item the items asset does not hold."""
    BOT_USER = "bot_user"
    """A user whose event rate is beyond any person's."""
    NON_PRODUCT = "non_product_code"
    """Postage, fees, adjustments and other codes that are not products."""


DUPLICATE_REASONS = frozenset({Reason.EXACT_DUPLICATE, Reason.NEAR_DUPLICATE, Reason.SUPERSEDED})
"""Reasons whose rows are counted as duplicates rather than quarantined."""


def reason_code(reason: Reason, column: str | None = None) -> str:
    """The code reported in `reasons`, e.g. `missing_user_id`.

    >>> reason_code(Reason.MISSING, "user_id")
    'missing_user_id'
    >>> reason_code(Reason.BOT_USER)
    'bot_user'
    """
    return f"{reason.value}_{column}" if column else reason.value


def is_duplicate_code(code: str) -> bool:
    """Whether a reported code counts as a duplicate.

    >>> is_duplicate_code("near_duplicate"), is_duplicate_code("missing_ts")
    (True, False)
    """
    return code in {r.value for r in DUPLICATE_REASONS}
