"""Live events: the durable, append-only store behind `POST /events`.

One SQLite file in the workspace (`live/events.sqlite`, WAL journal, `synchronous=FULL`),
shared by every worker process: an event is on disk before its request is answered,
and every worker sees it at its next read. User ids are kept as their pseudonym (to
look histories up) and sealed with the field cipher (so that compaction can hand the
warehouse the id as the source gave it, to be cleaned like any ingest). Compaction
marks rows as folded into an events version; rows folded into a version that the
serving snapshot already holds are pruned.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from shopkeeper.warehouse import Workspace

_SCHEMA = """
CREATE TABLE IF NOT EXISTS live_events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    received_us INTEGER NOT NULL,
    user_pseudo TEXT NOT NULL,
    user_sealed TEXT NOT NULL,
    item_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    ts_us INTEGER NOT NULL,
    session_id TEXT,
    query TEXT,
    value REAL,
    folded_version INTEGER
);
CREATE INDEX IF NOT EXISTS live_by_user ON live_events (user_pseudo, seq);
CREATE INDEX IF NOT EXISTS live_unfolded ON live_events (folded_version, seq);
CREATE TABLE IF NOT EXISTS erased_users (
    user_pseudo TEXT PRIMARY KEY,
    erased_us INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class LiveEvent:
    """One accepted event, as stored."""

    user_pseudo: str
    user_sealed: str
    item_id: str
    event_type: str
    ts_us: int
    session_id: str | None = None
    query: str | None = None
    value: float | None = None


@dataclass(frozen=True)
class UserLive:
    """A user's live events (oldest first) and the newest sequence number among them."""

    items: list[str]
    event_types: list[str]
    ts_us: list[int]
    watermark: int
    erased: bool = False


class LiveEventStore:
    """Append-only live events in SQLite; one connection per thread.

    Args:
        path: The SQLite file (created with its folder, mode 0600).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
        con = self._con()
        con.executescript(_SCHEMA)
        path.chmod(0o600)

    @classmethod
    def of(cls, ws: Workspace) -> LiveEventStore:
        """The live store of a workspace (`live/events.sqlite`)."""
        return cls(ws.home / "live" / "events.sqlite")

    def _con(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.execute("PRAGMA busy_timeout=10000")
            self._local.con = con
        return con

    def append(self, events: Sequence[LiveEvent], received_us: int) -> list[int]:
        """Store `events` in one durable transaction; return their sequence numbers."""
        con = self._con()
        rows = [
            (
                received_us,
                e.user_pseudo,
                e.user_sealed,
                e.item_id,
                e.event_type,
                e.ts_us,
                e.session_id,
                e.query,
                e.value,
            )
            for e in events
        ]
        con.execute("BEGIN IMMEDIATE")
        try:
            cur = con.execute("SELECT coalesce(max(seq), 0) FROM live_events")
            first = int(cur.fetchone()[0]) + 1
            con.executemany(
                "INSERT INTO live_events (received_us, user_pseudo, user_sealed, item_id, "
                "event_type, ts_us, session_id, query, value) VALUES (?,?,?,?,?,?,?,?,?)",
                rows,
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return list(range(first, first + len(rows)))

    def for_user(self, user_pseudo: str, event_types: Sequence[str], limit: int) -> UserLive:
        """The user's latest `limit` live events of `event_types`, oldest first."""
        con = self._con()
        marks = ",".join("?" * len(event_types))
        rows = con.execute(
            f"SELECT item_id, event_type, ts_us, seq FROM live_events "
            f"WHERE user_pseudo = ? AND event_type IN ({marks}) ORDER BY seq DESC LIMIT ?",
            [user_pseudo, *event_types, limit],
        ).fetchall()
        top, erased = con.execute(
            "SELECT (SELECT max(seq) FROM live_events WHERE user_pseudo = ?), "
            "EXISTS (SELECT 1 FROM erased_users WHERE user_pseudo = ?)",
            [user_pseudo, user_pseudo],
        ).fetchone()
        rows.reverse()
        return UserLive(
            items=[r[0] for r in rows],
            event_types=[r[1] for r in rows],
            ts_us=[int(r[2]) for r in rows],
            watermark=int(top or 0),
            erased=bool(erased),
        )

    def unfolded(self, limit: int = 1_000_000) -> list[dict[str, Any]]:
        """Events not yet folded into the warehouse, oldest first (for compaction)."""
        cur = self._con().execute(
            "SELECT seq, user_sealed, item_id, event_type, ts_us, session_id, query, value "
            "FROM live_events WHERE folded_version IS NULL ORDER BY seq LIMIT ?",
            [limit],
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def mark_folded(self, upto_seq: int, version: int) -> int:
        """Record that every unfolded event up to `upto_seq` is in events `version`."""
        cur = self._con().execute(
            "UPDATE live_events SET folded_version = ? WHERE folded_version IS NULL AND seq <= ?",
            [version, upto_seq],
        )
        return cur.rowcount

    def prune(self, held_version: int) -> int:
        """Delete events folded into `held_version` or earlier (the snapshot holds them)."""
        cur = self._con().execute(
            "DELETE FROM live_events WHERE folded_version <= ?", [held_version]
        )
        return cur.rowcount

    def erase(self, user_pseudo: str, erased_us: int) -> int:
        """Delete a user's live events and remember the erasure (all workers see it)."""
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            n = con.execute("DELETE FROM live_events WHERE user_pseudo = ?", [user_pseudo]).rowcount
            con.execute(
                "INSERT OR REPLACE INTO erased_users VALUES (?, ?)", [user_pseudo, erased_us]
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return n

    def erased_count(self) -> int:
        """How many users were erased (a change means snapshots must be rebuilt)."""
        row = self._con().execute("SELECT count(*) FROM erased_users").fetchone()
        return int(row[0]) if row else 0

    def stats(self) -> dict[str, int]:
        """Total and not yet folded events."""
        row = (
            self._con()
            .execute(
                "SELECT count(*), count(*) FILTER (WHERE folded_version IS NULL) FROM live_events"
            )
            .fetchone()
        )
        return {"events": int(row[0]), "unfolded": int(row[1])}
