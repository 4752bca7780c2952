"""Validation of posted events at the boundary, with the reason codes ingest uses.

A batch is checked event by event: every valid event is kept, every bad one is
reported with its position, field and reason; nothing is dropped silently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shopkeeper.clean import DEFAULT_EVENT_TYPES, Reason, mask_pii, reason_code
from shopkeeper.clean._pii import normalize_id
from shopkeeper.serve._live import LiveEvent

if TYPE_CHECKING:
    from collections.abc import Callable, Container

    from shopkeeper.clean import FieldCipher, Pseudonymizer

FIELDS = ("user_id", "item_id", "event_type", "ts", "session_id", "query", "value")
MAX_TEXT = 1000
"""Longest id, session or query accepted."""
FUTURE_TOLERANCE = timedelta(minutes=5)
"""Clock skew allowed for a client's timestamp."""


@dataclass(frozen=True)
class Rejection:
    """Why event number `index` of a batch was refused."""

    index: int
    reason: str
    field: str | None = None
    detail: str = ""


def _text(value: Any) -> str | None:
    """A non-empty string, numbers as their text (ids like 17850); None when missing.

    >>> _text(17850), _text(" nan "), _text(True), _text(" a ")
    ('17850', None, None, 'a')
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not isinstance(value, str | int | float):
        return None
    text = str(value).strip()
    if not text or text.lower() in {"nan", "null", "none"}:
        return None
    return text


def _timestamp(value: Any, now: datetime) -> datetime | None:
    """ISO 8601 (naive means UTC) or Unix seconds; raises ValueError when unparseable."""
    if value is None:
        return now
    if isinstance(value, bool):
        raise ValueError("not a timestamp")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError("not a finite number")
        return datetime.fromtimestamp(float(value), UTC)
    if isinstance(value, str):
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)
    raise ValueError("not a string or number")


class EventValidator:
    """Turns raw event objects into stored `LiveEvent`s, or rejections.

    Args:
        known_item: Whether an item id exists (events for unknown items are refused).
        pseudonymizer: The workspace's user id pseudonymizer.
        cipher: Seals the raw id for compaction.
        event_types: Allowed event types.
    """

    def __init__(
        self,
        known_item: Callable[[str], bool],
        pseudonymizer: Pseudonymizer,
        cipher: FieldCipher,
        event_types: Container[str] = DEFAULT_EVENT_TYPES,
    ) -> None:
        self.known_item = known_item
        self.pseudonymizer = pseudonymizer
        self.cipher = cipher
        self.event_types = event_types

    def validate(
        self, raw: list[Any], now: datetime
    ) -> tuple[list[tuple[int, LiveEvent]], list[Rejection]]:
        """Check every event; return (position, event) of the valid ones and the rejections."""
        ok: list[tuple[int, LiveEvent]] = []
        bad: list[Rejection] = []
        for i, obj in enumerate(raw):
            event = self._one(i, obj, now)
            if isinstance(event, Rejection):
                bad.append(event)
            else:
                ok.append((i, event))
        return ok, bad

    def _one(self, i: int, obj: Any, now: datetime) -> LiveEvent | Rejection:
        if not isinstance(obj, dict):
            return Rejection(i, Reason.MALFORMED_ROW.value, None, "not a JSON object")
        unknown = sorted(set(obj) - set(FIELDS))
        if unknown:
            return Rejection(i, Reason.MALFORMED_ROW.value, unknown[0], "unknown field")
        values = {f: _text(obj.get(f)) for f in ("user_id", "item_id", "event_type")}
        for f, v in values.items():
            if v is None:
                return Rejection(i, reason_code(Reason.MISSING, f), f)
            if len(v) > MAX_TEXT:
                return Rejection(i, reason_code(Reason.UNPARSEABLE, f), f, "too long")
        etype = str(values["event_type"]).lower().replace(" ", "_")
        if etype not in self.event_types:
            return Rejection(i, Reason.INVALID_EVENT_TYPE.value, "event_type", etype[:40])
        try:
            ts = _timestamp(obj.get("ts"), now)
        except (ValueError, OverflowError, OSError):
            return Rejection(i, reason_code(Reason.UNPARSEABLE, "ts"), "ts")
        assert ts is not None
        if ts > now + FUTURE_TOLERANCE:
            return Rejection(i, Reason.FUTURE_TIMESTAMP.value, "ts")
        item = str(values["item_id"])
        if not self.known_item(item):
            return Rejection(i, Reason.UNKNOWN_ITEM.value, "item_id")
        value = obj.get("value")
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            return Rejection(i, reason_code(Reason.UNPARSEABLE, "value"), "value")
        session = _text(obj.get("session_id"))
        query = _text(obj.get("query"))
        for f, v in (("session_id", session), ("query", query)):
            if v is not None and len(v) > MAX_TEXT:
                return Rejection(i, reason_code(Reason.UNPARSEABLE, f), f, "too long")
        user = normalize_id(str(values["user_id"]))
        return LiveEvent(
            user_pseudo=self.pseudonymizer.pseudonymize(user),
            user_sealed=self.cipher.encrypt(user),
            item_id=item,
            event_type=etype,
            ts_us=int(ts.timestamp() * 1_000_000),
            session_id=session,
            query=None if query is None else mask_pii(query),
            value=None if value is None else float(value),
        )
