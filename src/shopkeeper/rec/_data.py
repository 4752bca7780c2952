"""Interactions read from the clean `events` asset, as index arrays in time order.

Users and items become dense indices (sorted by id); every array is sorted by user,
then time, then a seeded hash of (item, time) that breaks ties between events with the
same timestamp (an invoice's lines all share one). The hash reads no user pseudonym, so
a split is the same in any workspace holding the data, and it differs from one
timestamp to the next, so no item is systematically the one held out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import sparse

from shopkeeper.errors import ConfigError, NotFoundError
from shopkeeper.ingest import quote_ident
from shopkeeper.logging import get_logger

if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Literal

    import numpy.typing as npt

    from shopkeeper.warehouse import Warehouse

_log = get_logger(__name__)

DEFAULT_EVENT_TYPES = ("purchase", "rating")
"""Tried in this order when no event types are given: the first present wins."""


@dataclass(frozen=True)
class Histories:
    """Item sequences of many users in CSR layout: row u is `items[indptr[u]:indptr[u+1]]`.

    Items within a row keep their time order (oldest first).
    """

    indptr: npt.NDArray[np.int64]
    items: npt.NDArray[np.int64]
    n_items: int
    ts: npt.NDArray[np.int64] | None = None
    """Each stored item's time (microseconds), when known: items with the same time (one
    basket) are in an arbitrary order, which a sequential model may reshuffle."""

    @classmethod
    def from_pairs(
        cls,
        users: npt.NDArray[np.int64],
        items: npt.NDArray[np.int64],
        n_users: int,
        n_items: int,
        ts: npt.NDArray[np.int64] | None = None,
    ) -> Histories:
        """Histories from (user, item) pairs already sorted by user (then time).

        >>> h = Histories.from_pairs(np.array([0, 0, 2]), np.array([5, 3, 1]), 3, 6)
        >>> h.row(0).tolist(), h.row(1).tolist(), h.lengths.tolist()
        ([5, 3], [], [2, 0, 1])
        """
        counts = np.bincount(users, minlength=n_users).astype(np.int64)
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        times = None if ts is None else np.asarray(ts, dtype=np.int64)
        return cls(indptr, np.asarray(items, dtype=np.int64), n_items, times)

    @classmethod
    def from_lists(cls, rows: Sequence[Sequence[int]], n_items: int) -> Histories:
        """Histories from one list of item indices per user (for tests and small inputs)."""
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        flat = np.fromiter((i for r in rows for i in r), dtype=np.int64, count=int(indptr[-1]))
        return cls(indptr, flat, n_items)

    @property
    def n_users(self) -> int:
        """Number of rows."""
        return len(self.indptr) - 1

    @property
    def lengths(self) -> npt.NDArray[np.int64]:
        """Items per row."""
        return np.diff(self.indptr)

    @property
    def user_of(self) -> npt.NDArray[np.int64]:
        """The row of each stored item."""
        return np.repeat(np.arange(self.n_users, dtype=np.int64), self.lengths)

    def row(self, u: int) -> npt.NDArray[np.int64]:
        """The items of row `u`, oldest first."""
        return self.items[self.indptr[u] : self.indptr[u + 1]]

    def rows(self, users: npt.NDArray[np.int64]) -> Histories:
        """A new Histories holding only `users`' rows, in that order (vectorized gather)."""
        users = np.asarray(users, dtype=np.int64)
        starts, lengths = self.indptr[users], self.lengths[users]
        indptr = np.zeros(len(users) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        offsets = np.arange(int(indptr[-1]), dtype=np.int64) - np.repeat(indptr[:-1], lengths)
        src = np.repeat(starts, lengths) + offsets
        ts = None if self.ts is None else self.ts[src]
        return Histories(indptr, self.items[src], self.n_items, ts)

    def to_csr(self) -> sparse.csr_matrix:
        """The binary (rows x items) float32 matrix; repeated items count once."""
        data = np.ones(len(self.items), dtype=np.float32)
        m = sparse.csr_matrix(
            (data, self.items, self.indptr), shape=(self.n_users, self.n_items), copy=True
        )
        m.sum_duplicates()
        m.data[:] = 1.0
        return m


@dataclass(frozen=True)
class Interactions:
    """(user, item, time) triples of the chosen event types, sorted by user then time."""

    user_ids: list[str]
    item_ids: list[str]
    users: npt.NDArray[np.int64]
    items: npt.NDArray[np.int64]
    ts: npt.NDArray[np.int64]
    """Microseconds since the epoch, UTC."""
    events_version: int
    event_types: tuple[str, ...]

    @property
    def n_users(self) -> int:
        """Distinct users."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Distinct items: the catalog every model ranks in full."""
        return len(self.item_ids)

    def __len__(self) -> int:
        return len(self.users)


def resolve_event_types(wh: Warehouse, version: int, wanted: Sequence[str] | None) -> list[str]:
    """The event types to use: `wanted`, or the first of `DEFAULT_EVENT_TYPES` present."""
    present = {
        r[0]
        for r in wh.con.execute(
            f"SELECT DISTINCT event_type FROM {quote_ident(f'events_v{version}')}"
        ).fetchall()
    }
    if wanted:
        if not set(wanted) & present:
            raise ConfigError(
                f"no events of type {', '.join(wanted)}; present: {', '.join(sorted(present))}"
            )
        return list(wanted)
    for t in DEFAULT_EVENT_TYPES:
        if t in present:
            return [t]
    return sorted(present)


def read_interactions(
    wh: Warehouse,
    event_types: Sequence[str] | None = None,
    *,
    version: int | None = None,
    min_value: float | None = None,
    dedupe: Literal["first", "none"] = "first",
    k_core: int = 0,
    seed: int = 0,
) -> Interactions:
    """Read interactions from one `events` version (the latest by default).

    Args:
        wh: An open warehouse.
        event_types: Event types that count as interactions (default: purchases, or
            ratings when there are no purchases).
        version: The events version.
        min_value: Keep only events whose `value` is at least this (e.g. ratings >= 4).
        dedupe: `first` keeps each (user, item) pair's first event only; `none` keeps all.
        k_core: Drop users and items with fewer than this many interactions, repeatedly,
            until none is left (0: no filter).
        seed: Seed of the hash that orders events with the same timestamp.

    Raises:
        NotFoundError: the workspace has no events.
    """
    latest = wh.latest("events")
    if latest is None:
        raise NotFoundError("no events asset yet; ingest events first")
    v = wh.version("events", version).version
    types = resolve_event_types(wh, v, event_types)
    where = "list_contains(?, event_type)"
    params: list[object] = [types]
    if min_value is not None:
        where += " AND value >= ?"
        params.append(min_value)
    source = f"SELECT user_id, item_id, epoch_us(ts) AS t FROM {quote_ident(f'events_v{v}')}"
    sql = (
        f"SELECT user_id, item_id, min(t) AS t FROM ({source} WHERE {where}) GROUP BY ALL"
        if dedupe == "first"
        else f"{source} WHERE {where}"
    )
    table = wh.con.sql(sql, params=params).to_arrow_table()
    users, user_ids = _codes(table.column("user_id"))
    items, item_ids = _codes(table.column("item_id"))
    ts = table.column("t").to_numpy().astype(np.int64)
    keep = k_core_mask(users, items, k_core) if k_core > 1 else np.ones(len(users), dtype=bool)
    users, uidx = _compact(users[keep])
    tiebreak = tie_keys(items[keep], ts[keep], seed)
    items, iidx = _compact(items[keep])
    ts = ts[keep]
    order = np.lexsort((tiebreak, ts, users))
    out = Interactions(
        user_ids=[user_ids[i] for i in uidx.tolist()],
        item_ids=[item_ids[i] for i in iidx.tolist()],
        users=users[order],
        items=items[order],
        ts=ts[order],
        events_version=v,
        event_types=tuple(types),
    )
    _log.info(
        "read interactions",
        events_version=v,
        event_types=types,
        rows=len(out),
        users=out.n_users,
        items=out.n_items,
        k_core=k_core,
    )
    return out


def _mix64(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """SplitMix64's finalizer: a fast, well-spread 64-bit hash (wraps on purpose)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def tie_keys(
    items: npt.NDArray[np.int64], ts: npt.NDArray[np.int64], seed: int
) -> npt.NDArray[np.uint64]:
    """A seeded pseudo-random key per (item, time), the same in every run and workspace.

    >>> a = tie_keys(np.array([1, 2]), np.array([10, 10]), 0)
    >>> bool((a == tie_keys(np.array([1, 2]), np.array([10, 10]), 0)).all())
    True
    """
    salted = _mix64(items.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15))
    return _mix64(salted ^ ts.astype(np.uint64))


def _codes(column: pa.ChunkedArray) -> tuple[npt.NDArray[np.int64], list[str]]:
    """Dense codes of a string column (by sorted value) and the values."""
    values = pc.unique(column).sort()
    codes = pc.index_in(column, value_set=values).to_numpy(zero_copy_only=False)
    return codes.astype(np.int64), values.to_pylist()


def _compact(codes: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Renumber codes to 0..n-1 keeping their order; return new codes and old ids kept."""
    kept, new = np.unique(codes, return_inverse=True)
    return new.astype(np.int64), kept


def k_core_mask(
    users: npt.NDArray[np.int64], items: npt.NDArray[np.int64], k: int
) -> npt.NDArray[np.bool_]:
    """Rows that survive the iterative k-core filter (every user and item has >= k rows).

    >>> k_core_mask(np.array([0, 0, 1, 1, 2]), np.array([0, 1, 0, 1, 0]), 2).tolist()
    [True, True, True, True, False]
    """
    keep = np.ones(len(users), dtype=bool)
    while True:
        uc = np.bincount(users[keep], minlength=int(users.max(initial=-1)) + 1)
        ic = np.bincount(items[keep], minlength=int(items.max(initial=-1)) + 1)
        new = keep & (uc[users] >= k) & (ic[items] >= k)
        if new.sum() == keep.sum():
            return new
        keep = new
