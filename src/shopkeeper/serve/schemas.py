"""Request and response models of the HTTP API (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ItemScore(BaseModel):
    """One ranked item."""

    item_id: str
    score: float


class Recommendations(BaseModel):
    """`GET /recommend/{user_id}`."""

    user_id: str
    items: list[ItemScore]
    model_version: int = Field(description="The rec_model version that ranked them.")
    history_length: int = Field(description="Items in the user's history, live ones included.")
    live_events: int = Field(description="Of them, events posted since the snapshot.")
    fallback: str | None = Field(
        None, description="`popularity` when the model did not rank (see `reason`)."
    )
    reason: str | None = Field(None, description="Why a fallback answered.")
    cached: bool = False


class SearchHit(BaseModel):
    """One search result; `stages` when personalized."""

    model_config = {"extra": "allow"}

    item_id: str
    score: float


class SearchResults(BaseModel):
    """`GET /search`."""

    query: str
    model: str
    items: list[SearchHit]
    personalized: bool
    fallback: str | None = Field(None, description="`bm25` when the request waited too long.")
    reason: str | None = None
    cached: bool = False


class EventRejection(BaseModel):
    """One refused event of a batch."""

    index: int = Field(description="Its position in the batch (0-based).")
    reason: str = Field(description="The reason code, as ingest reports it.")
    field: str | None = None
    detail: str | None = None


class EventsAccepted(BaseModel):
    """`POST /events`: every valid event is stored before this answer."""

    accepted: int
    rejected: int
    ids: list[int] = Field(description="Sequence numbers of the stored events, in order.")
    errors: list[EventRejection]


EVENT_EXAMPLE: dict[str, Any] = {
    "user_id": "17850",
    "item_id": "85123A",
    "event_type": "purchase",
    "ts": "2011-12-09T12:50:00Z",
}


class Erasure(BaseModel):
    """`DELETE /users/{user_id}`."""

    model_config = {"extra": "allow"}

    user: str = Field(description="The pseudonym erased (never the raw id).")
    live_events_removed: int
    cache_entries_dropped: int


class ErrorBody(BaseModel):
    """Every error: its type and a readable message."""

    type: str
    message: str
