"""Seeded synthetic event CSV files with planted anomalies and their exact ground truth.

`generate_events(path, rows=1_000_000, seed=7)` writes a CSV with the canonical event
columns and returns `PlantedEvents`: how many rows of each reason code were planted.

The file looks like a shop's click log: Zipf-like user and item popularity, sessions of
events a few seconds to minutes apart, mostly views and clicks with fewer carts and
purchases, timestamps over a year, prices per item with small discounts, search queries
(with a few e-mails, phones and card numbers, HTML and full-width letters).

Every planted anomaly is built so that exactly one cleaning rule fires on it, so the
counts are exact, not estimates:

* Each user's sessions are laid out one after another, and events of one session are at
  least 5 s apart: clean rows never form near-duplicates (2 s window) nor bot bursts
  (> 60 events a minute), and no two clean rows are identical.
* A row-local anomaly (missing field, unparseable value, invalid code, out-of-range
  value, malformed line, bad encoding) replaces one field of a base row, at most one per
  session, so two anomalous rows can never be exact duplicates of each other.
* Exact duplicates copy a clean row verbatim; near-duplicates copy a clean view, click,
  add-to-cart or search 1-2 s later.
* Bots are extra users with a burst of 61-150 views and clicks inside one calendar
  minute, on distinct items. Price outliers are a purchase at 100x or 1/100 of an item's
  price, planted together with five normally priced purchases of the same item (so the
  item always has enough prices); clean prices stay within 15 % of the list price.
* Invalid UTF-8 bytes are planted only after the first 1.1 MiB: encoding detection reads
  the first MiB and would otherwise read the whole file as cp1252.

Files are written in chunks of `chunk_rows` rows with vectorized numpy and pyarrow, so
memory stays bounded (a few hundred MB) whatever the size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveInt

if TYPE_CHECKING:
    from collections.abc import Mapping

COLUMNS = (
    "user_id", "item_id", "event_type", "ts", "session_id", "query", "value", "quantity",
    "price", "currency",
)  # fmt: skip
"""Columns of a generated file, in order."""

DEFAULT_RATES: Mapping[str, float] = {
    "malformed_row": 0.0015,
    "invalid_encoding": 0.0004,
    "exact_duplicate": 0.008,
    "missing_user_id": 0.003,
    "missing_item_id": 0.001,
    "missing_event_type": 0.0005,
    "missing_ts": 0.0008,
    "unparseable_ts": 0.001,
    "unparseable_value": 0.0003,
    "unparseable_quantity": 0.0003,
    "unparseable_price": 0.0008,
    "invalid_event_type": 0.001,
    "invalid_currency": 0.0004,
    "future_timestamp": 0.0003,
    "timestamp_before_start": 0.0004,
    "nonpositive_price": 0.0008,
    "absurd_quantity": 0.0002,
    "price_outlier": 0.0001,
    "near_duplicate": 0.006,
}
"""Planted rows per input row, by reason code (bots are set by `bots_per_million`)."""

DUPLICATE_CODES = frozenset({"exact_duplicate", "near_duplicate"})
"""Codes counted as duplicates rather than quarantined."""

I64 = npt.NDArray[np.int64]
_INVALID_BYTES_AFTER = (1 << 20) + (1 << 16)
_MIN_GAP, _MAX_GAP, _SESSION_GAP = 5, 180, 600
_SUPPORT = 5
_USER_BASE, _ITEM_BASE = 10_000_000, 1_000_000
_BOT_USER_BASE, _OUTLIER_USER_BASE = 95_000_000, 96_000_000
_BOT_SESSION_BASE, _OUTLIER_SESSION_BASE = 10**10, 2 * 10**10
_NO = np.iinfo(np.int64).min
"""Sentinel of an empty numeric field."""

_TYPES = (
    "view", "click", "search", "add_to_cart", "remove_from_cart", "wishlist", "purchase",
    "return", "rating",
)  # fmt: skip
_TYPE_P = np.array([0.60, 0.17, 0.08, 0.07, 0.015, 0.02, 0.03, 0.004, 0.011])
_VIEW, _CLICK, _SEARCH, _BUY, _RETURN, _RATING = 0, 1, 2, 6, 7, 8
_TYPE_TEXT = pa.array([v for t in _TYPES for v in (t, t.upper(), t.replace("_", " ").title())])
_PRICED = np.array([True, True, False, True, True, True, True, True, False])
_NEAR_TYPES = np.array([True, True, True, True, False, False, False, False, False])
_QTY_TYPES = np.array([False, False, False, True, True, False, True, True, False])
_DIURNAL = np.array(
    [2, 1, 1, 1, 1, 2, 3, 5, 6, 6, 6, 6, 7, 6, 6, 6, 6, 7, 8, 9, 9, 8, 6, 4], dtype=float
)

_FIELD_MUTATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    code: (column, tuple(values.split("|")))
    for code, column, values in (
        ("missing_user_id", "user_id", "|NULL|null|nan|None|N/A|  "),
        ("missing_item_id", "item_id", "|NaN|null|none|n/a"),
        ("missing_event_type", "event_type", "|null|NULL|None"),
        ("missing_ts", "ts", "|NaT|null|nan|N/A"),
        (
            "unparseable_ts",
            "ts",
            "2024-02-30 10:15:00|2024-13-02 08:00:00|"
            "2024-06-31T23:59:59Z|yesterday|32.01.2024 10:00|1/2/2024 25:61",
        ),
        ("unparseable_value", "value", 'abc|12.3.4|"3,50"|ten'),
        ("unparseable_quantity", "quantity", "2.5|two|1.25|x2"),
        ("unparseable_price", "price", '"9,99"|free|12.99 EUR|19.99.1|--'),
        (
            "invalid_event_type",
            "event_type",
            "pageview|checkout|clik|purchased|add_to_basket|impression",
        ),
        ("invalid_currency", "currency", "EURO|€|US|E|12|GBPX"),
        (
            "future_timestamp",
            "ts",
            "2099-06-01 12:00:00|2100-01-01T00:00:00Z|2125-03-14 09:26:53|2099-12-31 23:59:59",
        ),
        (
            "timestamp_before_start",
            "ts",
            "1970-01-01 00:00:00|1969-12-31 23:59:59|1989-12-31 23:59:59|1900-01-01 00:00:00",
        ),
        ("nonpositive_price", "price", "0|0.00|-19.99|-5.00|-0.01"),
        ("absurd_quantity", "quantity", "99999|-20000|1000000|10001"),
    )
}
"""Row-local anomalies that replace one field: code -> (column, values to choose from)."""
_MUTATION_CODES = (*_FIELD_MUTATIONS, "invalid_encoding", "malformed_row")
_FFFD_QUERIES = ("caf\ufffd au lait", "\ufffd\ufffd shoes", "t\ufffdshirt")
_BAD_BYTES = (b"caf\xe9 au lait", b"\x93sale\x94 shoes", b"t\xffshirt")
_MALFORMED = ("comma_in_query", "thousands_price", "dropped_field", "truncated")

_ADJ = (
    "red", "blue", "black", "white", "green", "leather", "wool", "cotton", "cheap", "wireless",
    "vintage", "organic", "kids", "mens", "womens", "waterproof", "large", "small", "slim",
    "running",
)  # fmt: skip
_NOUNS = (
    "shoes", "jacket", "headphones", "lamp", "backpack", "dress", "watch", "mug", "sofa",
    "phone case", "t-shirt", "jeans", "kettle", "desk", "blender", "scarf", "sneakers",
    "charger", "tent", "bike helmet",
)  # fmt: skip
_BRANDS = (
    "acme", "nordik", "zephyr", "lumo", "kraft", "orbit", "pioneer", "vela",
)  # fmt: skip
_PII = (
    "contact me at jane.doe@example.com", "call 555-867-5309 about order",
    "card 4111 1111 1111 1111 declined", "john.smith42@mail.example.org",
    "+44 20 7946 0958 callback", "(212) 555-0147 delivery",
)  # fmt: skip


class SyntheticEventsConfig(BaseModel):
    """Size, seed and mix of a synthetic event file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rows: int = Field(default=1_000_000, ge=1000)
    """Data lines in the file (header not counted)."""
    seed: int = 0
    """Seed of every random draw; the same config always gives the same bytes."""
    users: PositiveInt | None = None
    """Distinct regular users (default rows / 25)."""
    items: int | None = Field(default=None, ge=500)
    """Distinct items (default rows / 100, between 500 and 200,000)."""
    start: datetime = datetime(2024, 1, 1, tzinfo=UTC)
    """First day of the event log."""
    days: PositiveInt = 366
    """Days the sessions start in (heavy users' sessions may run a little past it)."""
    bad_scale: NonNegativeFloat = 1.0
    """Multiplier of `DEFAULT_RATES` (0: no planted rows beyond `min_planted`)."""
    min_planted: NonNegativeInt = 0
    """At least this many rows of each planted category (and at least one bot if > 0)."""
    bots_per_million: NonNegativeFloat = 4.0
    """Bot users per million rows; each bot has a burst of 61-150 events in one minute."""
    iso_share: float = Field(default=0.2, ge=0, le=1)
    """Share of timestamps written as `2024-05-01T10:00:00Z` instead of `2024-05-01 10:00:00`."""
    chunk_rows: int = Field(default=500_000, ge=1000)
    """Rows generated and written at once (memory is proportional to it)."""

    @classmethod
    def small(cls, seed: int = 0, rows: int = 6000) -> SyntheticEventsConfig:
        """A file for tests: a few thousand rows, several chunks, every category planted.

        >>> SyntheticEventsConfig.small().rows
        6000
        """
        return cls(rows=rows, seed=seed, min_planted=3, chunk_rows=2500)


@dataclass(frozen=True)
class PlantedEvents:
    """What a generated file holds: its path, size and the rows planted per reason code."""

    path: Path
    config: SyntheticEventsConfig
    input_rows: int
    reasons: dict[str, int]
    """Reason code -> rows, as the pipeline reports them (codes with 0 rows left out)."""
    exact: frozenset[str]
    """Codes whose count is exact by construction (all planted codes)."""
    size_bytes: int
    invalid_byte_rows: int = 0
    """Of `invalid_encoding`, rows with invalid UTF-8 bytes (the rest hold U+FFFD)."""

    @property
    def duplicate_rows(self) -> int:
        """Rows the pipeline counts as duplicates."""
        return sum(n for c, n in self.reasons.items() if c in DUPLICATE_CODES)

    @property
    def quarantined_rows(self) -> int:
        """Rows the pipeline quarantines."""
        return sum(n for c, n in self.reasons.items() if c not in DUPLICATE_CODES)

    @property
    def clean_rows(self) -> int:
        """Rows that pass every rule."""
        return self.input_rows - self.duplicate_rows - self.quarantined_rows

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary, with the counts in the pipeline's result layout."""
        return {
            "path": str(self.path),
            "config": self.config.model_dump(mode="json"),
            "input_rows": self.input_rows,
            "clean_rows": self.clean_rows,
            "quarantined_rows": self.quarantined_rows,
            "duplicate_rows": self.duplicate_rows,
            "reasons": self.reasons,
            "exact": sorted(self.exact),
            "size_bytes": self.size_bytes,
            "invalid_byte_rows": self.invalid_byte_rows,
        }


@dataclass
class _Rows:
    """Events in numeric form, before formatting."""

    user: I64
    item: I64
    """Item popularity rank (index into the catalogue)."""
    etype: I64
    variant: I64
    """Spelling of the event type: 0 canonical, 1 upper case, 2 title case with spaces."""
    ts: I64
    """Epoch seconds."""
    iso: npt.NDArray[np.bool_]
    session: I64
    query: I64
    """Index into the query vocabulary, -1 for none."""
    value: I64
    """Cents, `_NO` for empty."""
    quantity: I64
    price: I64
    dot_zero: npt.NDArray[np.bool_]
    """Write the user id as `123.0` (as spreadsheets do)."""
    lower_currency: npt.NDArray[np.bool_]
    """Write the currency as `eur`."""


@dataclass
class _Plan:
    """Whole-file decisions: planted counts, sessions and their chunks."""

    counts: dict[str, int]
    bursts: I64
    item_ids: I64
    item_cents: I64
    item_cdf: npt.NDArray[np.float64]
    queries: pa.Array
    query_cdf: npt.NDArray[np.float64]
    sess_user: I64
    sess_start: I64
    sess_len: I64
    chunks: list[tuple[int, int, int, int]]
    """(first session, end session, first base row, end base row) per chunk."""
    per_chunk: dict[str, I64] = field(default_factory=dict)
    """Planted count of each category in each chunk."""


def _zipf_cdf(n: int, s: float, q: float) -> npt.NDArray[np.float64]:
    w = 1.0 / np.power(np.arange(1, n + 1) + q, s)
    cdf = np.cumsum(w)
    out: npt.NDArray[np.float64] = cdf / cdf[-1]
    return out


def _draw(cdf: npt.NDArray[np.float64], rng: np.random.Generator, n: int) -> I64:
    idx = np.searchsorted(cdf, rng.random(n), side="right")
    return np.minimum(idx, len(cdf) - 1).astype(np.int64)


def _planted_counts(
    cfg: SyntheticEventsConfig, rng: np.random.Generator
) -> tuple[dict[str, int], I64]:
    counts = {
        c: max(cfg.min_planted, round(r * cfg.bad_scale * cfg.rows))
        for c, r in DEFAULT_RATES.items()
    }
    n_bots = round(cfg.bots_per_million * cfg.bad_scale * cfg.rows / 1e6)
    n_bots = max(n_bots, 1 if cfg.min_planted else 0)
    bursts = rng.integers(61, 151, n_bots).astype(np.int64)
    counts["bot_user"] = int(bursts.sum())
    return counts, bursts


def _queries(rng: np.random.Generator) -> pa.Array:
    """The query vocabulary, CSV-quoted where needed, PII and HTML in a few entries."""
    out: list[str] = []
    for _ in range(3000):
        words = [str(rng.choice(_ADJ)), str(rng.choice(_NOUNS))]
        r = rng.random()
        if r < 0.3:
            words.insert(0, str(rng.choice(_BRANDS)))
        elif r < 0.35:
            words.append(f"size {rng.integers(34, 47)}")
        text = " ".join(words)
        r = rng.random()
        if r < 0.01:
            text = str(rng.choice(_PII))
        elif r < 0.02:
            text = f"<b>{text}</b>"
        elif r < 0.03:
            text = text.replace(" ", " &amp; ", 1)
        elif r < 0.04:
            text = "".join(chr(ord(ch) + 0xFEE0) if "a" <= ch <= "z" else ch for ch in text)
        elif r < 0.05:
            text = text.replace(" ", ", ", 1)
        elif r < 0.06:
            text = text.replace(" ", "   ", 1)
        out.append(f'"{text}"' if "," in text or '"' in text else text)
    return pa.array(out)


def _layout_sessions(user: I64, start: I64, length: I64) -> I64:
    """Push each user's sessions later so that they never overlap; returns new starts.

    Within a user (sorted by start), session k starts at max(start_k, end of k-1 + gap),
    computed with a segmented running maximum instead of a Python loop.
    """
    order = np.lexsort((start, user))
    u, s = user[order], start[order]
    span = length[order] * _MAX_GAP + _SESSION_GAP
    excl = np.cumsum(span) - span
    is_first = np.ones(len(u), dtype=bool)
    is_first[1:] = u[1:] != u[:-1]
    group = np.cumsum(is_first) - 1
    c = excl - excl[np.flatnonzero(is_first)][group]
    x = s - c
    big = int(x.max() - x.min()) + 1
    y = np.maximum.accumulate(x + group * big) - group * big
    out = np.empty_like(start)
    out[order] = y + c
    return out


def _plan(cfg: SyntheticEventsConfig) -> _Plan:
    rng = np.random.default_rng([cfg.seed, 1])
    counts, bursts = _planted_counts(cfg, rng)
    inserted = (
        counts["exact_duplicate"]
        + counts["near_duplicate"]
        + counts["bot_user"]
        + counts["price_outlier"] * (1 + _SUPPORT)
    )
    n_base = cfg.rows - inserted
    n_mut = sum(counts[c] for c in _MUTATION_CODES)
    if n_base < 4 * (n_mut + counts["exact_duplicate"] + counts["near_duplicate"]):
        raise ValueError(
            f"{cfg.rows} rows are too few for the planted anomalies; raise rows "
            "or lower bad_scale/min_planted"
        )
    n_items = cfg.items or min(max(cfg.rows // 100, 500), 200_000)
    n_users = cfg.users or max(cfg.rows // 25, 50)
    item_ids = _ITEM_BASE + rng.permutation(n_items).astype(np.int64)
    cents = np.clip(np.exp(rng.normal(math.log(3000), 1.0, n_items)), 500, 200_000)
    item_cents = (cents // 100 * 100 + 99).astype(np.int64)
    user_ids = _USER_BASE + rng.permutation(n_users).astype(np.int64)
    lengths: list[I64] = []
    total = 0
    while total < n_base:
        more = np.minimum(rng.geometric(1 / 7, max(1024, (n_base - total) // 6)), 100)
        lengths.append(more.astype(np.int64))
        total += int(more.sum())
    length = np.concatenate(lengths)
    cum = np.cumsum(length)
    n_sess = int(np.searchsorted(cum, n_base)) + 1
    length = length[:n_sess]
    length[-1] -= int(cum[n_sess - 1] - n_base)
    user = user_ids[_draw(_zipf_cdf(n_users, 1.0, 30.0), rng, n_sess)]
    hour = rng.choice(24, n_sess, p=_DIURNAL / _DIURNAL.sum())
    start = (
        rng.integers(0, cfg.days, n_sess) * 86400 + hour * 3600 + rng.integers(0, 3600, n_sess)
    ).astype(np.int64)
    start = _layout_sessions(user, start, length) + int(cfg.start.timestamp())
    order = np.argsort(start, kind="stable")
    user, start, length = user[order], start[order], length[order]
    plan = _Plan(
        counts,
        bursts,
        item_ids,
        item_cents,
        _zipf_cdf(n_items, 1.05, 10.0),
        _queries(rng),
        _zipf_cdf(3000, 0.9, 5.0),
        user,
        start,
        length,
        _chunks(length, cfg.chunk_rows),
    )
    ends = np.array([c[3] for c in plan.chunks])
    for code, n in counts.items():
        k = n if code != "bot_user" else len(bursts)
        pos = ((np.arange(k) + 0.5) * n_base / max(k, 1)).astype(np.int64)
        plan.per_chunk[code] = np.bincount(
            np.searchsorted(ends, pos, side="right"), minlength=len(ends)
        ).astype(np.int64)
    return plan


def _chunks(length: I64, chunk_rows: int) -> list[tuple[int, int, int, int]]:
    cum = np.cumsum(length)
    out: list[tuple[int, int, int, int]] = []
    s_lo, r_lo = 0, 0
    while s_lo < len(length):
        s_hi = int(np.searchsorted(cum, r_lo + chunk_rows, side="right"))
        s_hi = min(max(s_hi, s_lo + 1), len(length))
        r_hi = int(cum[s_hi - 1])
        out.append((s_lo, s_hi, r_lo, r_hi))
        s_lo, r_lo = s_hi, r_hi
    return out


def _base_rows(
    plan: _Plan, cfg: SyntheticEventsConfig, k: int, rng: np.random.Generator
) -> tuple[_Rows, I64]:
    """The chunk's regular events, sorted by time, and each row's session index in the chunk."""
    s_lo, s_hi, _, _ = plan.chunks[k]
    lens = plan.sess_len[s_lo:s_hi]
    n = int(lens.sum())
    local = np.repeat(np.arange(s_hi - s_lo), lens)
    first = np.repeat(np.cumsum(lens) - lens, lens)
    gaps = _MIN_GAP + np.minimum(rng.exponential(35.0, n), _MAX_GAP - _MIN_GAP).astype(np.int64)
    gaps[np.arange(n) == first] = 0
    cs = np.cumsum(gaps)
    ts = plan.sess_start[s_lo + local] + cs - cs[first]
    order = np.argsort(ts, kind="stable")
    local, ts = local[order], ts[order]
    etype = rng.choice(len(_TYPES), n, p=_TYPE_P).astype(np.int64)
    item = _draw(plan.item_cdf, rng, n)
    rows = _Rows(
        user=plan.sess_user[s_lo + local],
        item=item,
        etype=etype,
        variant=rng.choice(3, n, p=[0.98, 0.01, 0.01]).astype(np.int64),
        ts=ts,
        iso=rng.random(n) < cfg.iso_share,
        session=(s_lo + local).astype(np.int64),
        query=np.where(
            (etype == _SEARCH) | ((etype == _VIEW) & (rng.random(n) < 0.05)),
            _draw(plan.query_cdf, rng, n),
            -1,
        ),
        value=np.full(n, _NO),
        quantity=np.full(n, _NO),
        price=np.full(n, _NO),
        dot_zero=rng.random(n) < 0.005,
        lower_currency=rng.random(n) < 0.02,
    )
    _fill_amounts(rows, plan, rng)
    return rows, local


def _fill_amounts(r: _Rows, plan: _Plan, rng: np.random.Generator) -> None:
    """Prices (list price or a 10/15 % discount), quantities and values from event types."""
    n = len(r.etype)
    discount = rng.choice(np.array([1.0, 0.9, 0.85]), n, p=[0.75, 0.15, 0.10])
    price = np.round(plan.item_cents[r.item] * discount).astype(np.int64)
    priced = _PRICED[r.etype]
    r.price = np.where(priced, price, _NO)
    qty = np.minimum(rng.geometric(0.6, n), 10).astype(np.int64)
    qty = np.where(r.etype == _RETURN, -np.minimum(qty, 2), qty)
    r.quantity = np.where(_QTY_TYPES[r.etype], qty, _NO)
    buy = (r.etype == _BUY) | (r.etype == _RETURN)
    value = np.where(buy, price * qty, _NO)
    r.value = np.where(r.etype == _RATING, rng.integers(1, 6, n) * 100, value)


def _blank(n: int) -> _Rows:
    """`n` rows of views by user 0 at time 0, every optional field empty."""
    no, false = np.full(n, _NO), np.zeros(n, bool)
    return _Rows(
        user=np.zeros(n, np.int64), item=np.zeros(n, np.int64), etype=np.zeros(n, np.int64),
        variant=np.zeros(n, np.int64), ts=np.zeros(n, np.int64), iso=false.copy(),
        session=np.zeros(n, np.int64), query=np.full(n, -1), value=no.copy(),
        quantity=no.copy(), price=no.copy(), dot_zero=false.copy(), lower_currency=false.copy(),
    )  # fmt: skip


def _take(r: _Rows, idx: I64) -> _Rows:
    return _Rows(**{k: getattr(r, k)[idx] for k in r.__dataclass_fields__})


def _concat(parts: list[_Rows]) -> _Rows:
    return _Rows(
        **{k: np.concatenate([getattr(p, k) for p in parts]) for k in _Rows.__dataclass_fields__}
    )


def _fresh(
    plan: _Plan,
    window: tuple[int, int],
    bot_first: int,
    n_bots: int,
    out_first: int,
    n_out: int,
    rng: np.random.Generator,
) -> _Rows:
    """Bot bursts, and price outliers each with five normally priced purchases."""
    parts: list[_Rows] = []
    for b in range(bot_first, bot_first + n_bots):
        r = _blank(int(plan.bursts[b]))
        minute = int(rng.integers(window[0], window[1] + 1)) // 60 * 60
        r.user[:], r.session[:] = _BOT_USER_BASE + b, _BOT_SESSION_BASE + b
        r.item = rng.choice(len(plan.item_ids), len(r.ts), replace=False).astype(np.int64)
        r.etype = np.where(rng.random(len(r.ts)) < 0.7, _VIEW, _CLICK).astype(np.int64)
        r.ts = np.sort(minute + rng.integers(0, 60, len(r.ts)))
        _fill_amounts(r, plan, rng)
        parts.append(r)
    size = n_out * (1 + _SUPPORT)
    g = out_first * (1 + _SUPPORT) + np.arange(size)
    r = _blank(size)
    r.user, r.session, r.etype[:] = _OUTLIER_USER_BASE + g, _OUTLIER_SESSION_BASE + g, _BUY
    r.item = item = np.repeat(_draw(plan.item_cdf, rng, n_out), 1 + _SUPPORT)
    r.ts = rng.integers(window[0], window[1] + 1, size)
    r.iso = rng.random(size) < 0.2
    _fill_amounts(r, plan, rng)
    is_out = np.zeros(size, bool)
    is_out[_SUPPORT :: 1 + _SUPPORT] = True
    base = plan.item_cents[item[is_out]]
    r.price[is_out] = np.where(
        rng.random(n_out) < 0.5, base * 100, np.maximum(np.round(base / 100), 1).astype(np.int64)
    )
    r.quantity[is_out] = 1
    r.value[is_out] = r.price[is_out]
    parts.append(r)
    return _concat(parts)


def _str(values: I64) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _cents(values: I64) -> pa.Array:
    """Cents as `12.34` / `-0.50`; empty where `_NO`."""
    empty = values == _NO
    a = np.where(empty, 0, np.abs(values))
    whole = _str(a // 100)
    frac = pc.utf8_lpad(_str(a % 100), width=2, padding="0")
    text = pc.binary_join_element_wise(whole, frac, ".")
    text = pc.if_else(pa.array(values < 0), pc.binary_join_element_wise("-", text, ""), text)
    return pc.if_else(pa.array(empty), "", text)


def _timestamps(ts: I64, iso: npt.NDArray[np.bool_]) -> pa.Array:
    plain = pc.cast(pa.array(ts, type=pa.timestamp("s")), pa.string())
    t = pc.replace_substring(plain, " ", "T", max_replacements=1)
    return pc.if_else(pa.array(iso), pc.binary_join_element_wise(t, "Z", ""), plain)


def _format(r: _Rows, plan: _Plan) -> dict[str, pa.Array]:
    """String columns of the rows (all valid values)."""
    user = _str(r.user)
    user = pc.if_else(pa.array(r.dot_zero), pc.binary_join_element_wise(user, ".0", ""), user)
    has_query = r.query >= 0
    query = plan.queries.take(pa.array(np.where(has_query, r.query, 0)))
    qty = _str(np.where(r.quantity == _NO, 0, r.quantity))
    priced = r.price != _NO
    return {
        "user_id": user,
        "item_id": _str(plan.item_ids[r.item]),
        "event_type": _TYPE_TEXT.take(pa.array(r.etype * 3 + r.variant)),
        "ts": _timestamps(r.ts, r.iso),
        "session_id": pc.binary_join_element_wise("S", _str(r.session), ""),
        "query": pc.if_else(pa.array(has_query), query, ""),
        "value": _cents(r.value),
        "quantity": pc.if_else(pa.array(r.quantity == _NO), "", qty),
        "price": _cents(r.price),
        "currency": pc.if_else(
            pa.array(priced), pc.if_else(pa.array(r.lower_currency), "eur", "EUR"), ""
        ),
    }


def _choose_mutations(plan: _Plan, k: int, local: I64, rng: np.random.Generator) -> tuple[I64, I64]:
    """Rows to mutate (at most one per session) and the category index of each."""
    labels = np.concatenate(
        [np.full(int(plan.per_chunk[c][k]), i, np.int64) for i, c in enumerate(_MUTATION_CODES)]
    )
    s_lo, s_hi, _, _ = plan.chunks[k]
    if len(labels) > s_hi - s_lo:
        raise ValueError("chunk_rows is too small for the planted anomalies")
    sessions = rng.choice(s_hi - s_lo, len(labels), replace=False)
    order = np.argsort(local, kind="stable")
    starts = np.searchsorted(local[order], sessions)
    lens = plan.sess_len[s_lo + sessions]
    rows = order[starts + (rng.random(len(labels)) * lens).astype(np.int64)]
    return rows.astype(np.int64), rng.permutation(labels)


def _mutate_fields(
    cols: dict[str, pa.Array], rows: I64, labels: I64, rng: np.random.Generator
) -> I64:
    """Row-local anomalies that replace one field; returns each row's malformed kind.

    Malformed kinds (index into `_MALFORMED`, -1 for none): an unquoted comma in the query
    or in the price gives 11 fields (the currency is set so that the line never ends in an
    empty field, which DuckDB accepts); `dropped_field` and `truncated` are applied when
    the lines are joined.
    """
    n = len(cols["user_id"])
    kinds = np.full(n, -1, np.int64)
    for i, code in enumerate(_MUTATION_CODES):
        at = np.sort(rows[labels == i])
        if not len(at):
            continue
        if code in _FIELD_MUTATIONS:
            name, choices = _FIELD_MUTATIONS[code]
            _replace(cols, name, at, rng.choice(np.array(choices), len(at)), n)
        elif code == "invalid_encoding":
            _replace(cols, "query", at, rng.choice(np.array(_FFFD_QUERIES), len(at)), n)
        else:
            kinds[at] = rng.choice(len(_MALFORMED), len(at))
            comma, price = at[kinds[at] == 0], at[kinds[at] == 1]
            _replace(cols, "query", comma, np.full(len(comma), "red shoes, size 42"), n)
            _replace(cols, "price", price, np.full(len(price), "1,299.00"), n)
            cur = np.sort(np.concatenate([comma, price]))
            _replace(cols, "currency", cur, np.full(len(cur), "EUR"), n)
    return kinds


def _replace(cols: dict[str, pa.Array], name: str, at: I64, values: Any, n: int) -> None:
    if not len(at):
        return
    mask = np.zeros(n, bool)
    mask[at] = True
    cols[name] = pc.replace_with_mask(
        cols[name], pa.array(mask), pa.array(values).cast(cols[name].type)
    )


def _chunk(plan: _Plan, cfg: SyntheticEventsConfig, k: int, offset: int) -> tuple[pa.Array, int]:
    """The lines of chunk `k` (newline-terminated, as one binary array) and invalid-byte rows."""
    rng = np.random.default_rng([cfg.seed, 2, k])
    base, local = _base_rows(plan, cfg, k, rng)
    n = len(base.ts)
    mut_rows, labels = _choose_mutations(plan, k, local, rng)
    untouched = np.ones(n, bool)
    untouched[mut_rows] = False
    n_exact = int(plan.per_chunk["exact_duplicate"][k])
    n_near = int(plan.per_chunk["near_duplicate"][k])
    near_ok = np.flatnonzero(untouched & _NEAR_TYPES[base.etype])
    near_src = np.sort(rng.choice(near_ok, n_near, replace=False))
    exact_ok = np.flatnonzero(untouched)
    exact_src = np.sort(rng.choice(exact_ok, n_exact, replace=False))
    near = _take(base, near_src)
    near.ts = near.ts + rng.integers(1, 3, n_near)
    window = (int(base.ts.min()), int(base.ts.max()))
    bot_first = int(plan.per_chunk["bot_user"][:k].sum())
    out_first = int(plan.per_chunk["price_outlier"][:k].sum())
    fresh = _fresh(
        plan,
        window,
        bot_first,
        int(plan.per_chunk["bot_user"][k]),
        out_first,
        int(plan.per_chunk["price_outlier"][k]),
        rng,
    )
    rows = _concat([base, near, fresh])
    cols = _format(rows, plan)
    label = np.full(len(rows.ts), -1, np.int64)
    label[mut_rows] = labels
    kinds = _mutate_fields(cols, mut_rows, labels, rng)
    # Order: base rows by time; copies after their source, fresh rows by their time.
    key = np.concatenate(
        [
            np.arange(n, dtype=float),
            near_src + 0.5,
            np.searchsorted(base.ts, fresh.ts).astype(float) - 0.25,
            exact_src + rng.uniform(0.01, 200.0, n_exact),
        ]
    )
    take = np.concatenate([np.arange(len(rows.ts)), exact_src])
    order = take[np.argsort(key, kind="stable")]
    label, kinds = label[order], kinds[order]
    bcols = {c: pc.cast(cols[c].take(pa.array(order)), pa.binary()) for c in COLUMNS}
    n_bytes = _plant_bytes(bcols, label, offset, rng)
    return _lines(bcols, kinds), n_bytes


def _plant_bytes(
    cols: dict[str, pa.Array], label: I64, offset: int, rng: np.random.Generator
) -> int:
    """Turn about half the U+FFFD queries past the first 1.1 MiB into invalid UTF-8 bytes."""
    enc = np.flatnonzero(label == _MUTATION_CODES.index("invalid_encoding"))
    if not len(enc):
        return 0
    lengths = sum(np.asarray(pc.binary_length(cols[c])) for c in COLUMNS) + len(COLUMNS)
    start = offset + np.cumsum(lengths) - lengths
    at = enc[(start[enc] > _INVALID_BYTES_AFTER) & (rng.random(len(enc)) < 0.5)]
    if len(at):
        mask = np.zeros(len(label), bool)
        mask[at] = True
        values = pa.array(
            [_BAD_BYTES[i] for i in rng.integers(0, len(_BAD_BYTES), len(at))], pa.binary()
        )
        cols["query"] = pc.replace_with_mask(cols["query"], pa.array(mask), values)
    return len(at)


def _lines(cols: dict[str, pa.Array], kinds: I64) -> pa.Array:
    """Join fields into newline-terminated lines, dropping fields of short malformed rows."""
    lines = pc.binary_join_element_wise(*(cols[c] for c in COLUMNS), b",")
    short = (
        ("dropped_field", tuple(c for c in COLUMNS if c != "session_id")),
        ("truncated", COLUMNS[:4]),
    )
    for kind, names in short:
        sel = np.flatnonzero(kinds == _MALFORMED.index(kind))
        if len(sel):
            mask = np.zeros(len(kinds), bool)
            mask[sel] = True
            part = pc.binary_join_element_wise(*(cols[c].take(pa.array(sel)) for c in names), b",")
            lines = pc.replace_with_mask(lines, pa.array(mask), part)
    return pc.binary_join_element_wise(lines, pa.scalar(b""), b"\n")


def _write_chunk(f: Any, lines: pa.Array) -> int:
    buffers = lines.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32)[
        lines.offset : lines.offset + len(lines) + 1
    ]
    lo, hi = int(offsets[0]), int(offsets[-1])
    f.write(memoryview(buffers[2])[lo:hi])
    return hi - lo


def generate_events(
    path: str | Path, config: SyntheticEventsConfig | None = None, **kwargs: Any
) -> PlantedEvents:
    """Write a synthetic event CSV to `path` and return what was planted in it.

    Args:
        path: the CSV file to (over)write.
        config: size, seed and mix; keyword arguments are shorthand for its fields.

    Returns:
        The file's planted counts per reason code (exact) and its size.

    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     planted = generate_events(pathlib.Path(d) / "e.csv", rows=2000, min_planted=1)
    >>> planted.input_rows, planted.reasons["bot_user"] > 60
    (2000, True)
    """
    cfg = config or SyntheticEventsConfig(**kwargs)
    if config is not None and kwargs:
        cfg = SyntheticEventsConfig.model_validate({**config.model_dump(), **kwargs})
    plan = _plan(cfg)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (",".join(COLUMNS) + "\n").encode()
    n_bytes = 0
    with out.open("wb") as f:
        f.write(header)
        size = len(header)
        for k in range(len(plan.chunks)):
            lines, nb = _chunk(plan, cfg, k, size)
            size += _write_chunk(f, lines)
            n_bytes += nb
    reasons = {c: n for c, n in sorted(plan.counts.items()) if n}
    return PlantedEvents(out, cfg, cfg.rows, reasons, frozenset(reasons), size, n_bytes)
