"""Fold live events into the warehouse: the same cleaning as any ingest, then marked.

Unfolded events are written (raw ids unsealed) to a staging CSV inside the 0600 live
folder, ingested with the generic adapter as `events`, and marked with the version
they went into; the staging file is removed. A crash between the ingest and the mark
is harmless: the same rows make the same file, which ingest reports as unchanged,
and the mark is then made.
"""

from __future__ import annotations

import csv
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shopkeeper.logging import get_logger
from shopkeeper.warehouse import IngestRequest, ingest

if TYPE_CHECKING:
    from shopkeeper.clean import FieldCipher
    from shopkeeper.serve._live import LiveEventStore
    from shopkeeper.warehouse import Workspace

_log = get_logger(__name__)
_COLUMNS = ("user_id", "item_id", "event_type", "ts", "session_id", "query", "value")


def compact_live_events(
    ws: Workspace, live: LiveEventStore, cipher: FieldCipher, limit: int = 1_000_000
) -> dict[str, Any]:
    """Ingest up to `limit` unfolded live events as a new events version.

    Returns:
        `{"events": n}` when there was nothing to fold, else the ingest's accounting
        for the events asset plus `events` and `upto_seq`.
    """
    rows = live.unfolded(limit)
    if not rows:
        return {"events": 0}
    upto = int(rows[-1]["seq"])
    path = live.path.parent / f"live-events-{rows[0]['seq']:012d}-{upto:012d}.csv"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(_COLUMNS)
            for r in rows:
                ts = datetime.fromtimestamp(r["ts_us"] / 1e6, UTC).isoformat()
                w.writerow(
                    (
                        cipher.decrypt(r["user_sealed"]),
                        r["item_id"],
                        r["event_type"],
                        ts,
                        r["session_id"] or "",
                        r["query"] or "",
                        "" if r["value"] is None else r["value"],
                    )
                )
        results = ingest(ws, IngestRequest(path=path, adapter="generic", kind="events"))
    finally:
        path.unlink(missing_ok=True)
    events = next(r for r in results if r["asset"] == "events")
    live.mark_folded(upto, int(events["version"]))
    _log.info("live events folded", events=len(rows), version=events["version"])
    return {**events, "events": len(rows), "upto_seq": upto}
