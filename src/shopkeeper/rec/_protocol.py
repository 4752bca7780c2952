"""The evaluation protocol: full ranking of the catalog for every test user, in batches.

For each batch of users the scorer returns a dense (users x items) matrix; items the
user already has in training are set to -inf when `exclude_seen` is on (and then such
items are not targets either); the top k come from `argpartition`. Figures are given
for all test users, cold users (fewer than `cold_user_threshold` training interactions)
and cold items (only held-out items with fewer than `cold_item_threshold` training
users count as targets; users without such a target are left out).
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, field_validator

from shopkeeper.logging import get_logger, progress
from shopkeeper.rec._data import Histories
from shopkeeper.rec._metrics import RANKING_METRICS, ranking_metrics, self_information, top_k
from shopkeeper.rec._splits import Split, SplitKind, leave_one_out, temporal_split, unseen_targets

if TYPE_CHECKING:
    import numpy.typing as npt

    from shopkeeper.rec._data import Interactions
    from shopkeeper.rec._scorer import RecScorer

_log = get_logger(__name__)

Segment = Literal["all", "cold_users", "cold_items"]
SEGMENTS: tuple[Segment, ...] = ("all", "cold_users", "cold_items")


class EvalConfig(BaseModel):
    """What is evaluated and how: the interactions, the split and the metrics."""

    model_config = ConfigDict(extra="forbid")

    event_types: list[str] | None = None
    """Event types that count as interactions (default: purchase, else rating)."""
    min_value: float | None = None
    """Keep only events with `value` at least this (e.g. 4 for liked ratings)."""
    dedupe: Literal["first", "none"] = "first"
    """`first`: a (user, item) pair counts once, at its first event."""
    k_core: NonNegativeInt = 0
    """Iteratively drop users and items with fewer interactions than this (0: keep all)."""
    split: SplitKind = "leave_one_out"
    """`leave_one_out` (each user's last interaction) or `temporal` (a global cut-off)."""
    test_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    """Temporal split: share of interactions at or after the cut-off."""
    exclude_seen: bool = True
    """Never rank, or count as a target, an item the user has in training."""
    ks: list[PositiveInt] = Field(default_factory=lambda: [10, 20])
    """Cut-offs of every ranking metric."""
    cold_item_threshold: PositiveInt = 5
    """Items with fewer training users than this are cold."""
    cold_user_threshold: PositiveInt = 5
    """Users with fewer training interactions than this are cold."""
    max_users: PositiveInt | None = None
    """Evaluate a seeded sample of this many test users (None: all)."""
    seed: NonNegativeInt = 0
    """Seed of tie-breaking between same-time events, user sampling and random scores."""
    batch_size: PositiveInt = 1024
    """Users scored per batch, at most; fewer when the catalog is large (see `batch_rows`)."""
    events_version: PositiveInt | None = None
    """The events version to read (None: the latest)."""

    @field_validator("ks")
    @classmethod
    def _sorted_ks(cls, v: list[int]) -> list[int]:
        return sorted(set(v))


def make_split(inter: Interactions, cfg: EvalConfig) -> Split:
    """The split `cfg` asks for."""
    if cfg.split == "temporal":
        return temporal_split(inter, test_fraction=cfg.test_fraction)
    return leave_one_out(inter)


def targets_of(split: Split, cfg: EvalConfig) -> Histories:
    """Held-out items that count: unique per user, minus training items if `exclude_seen`."""
    if cfg.exclude_seen:
        return unseen_targets(split.train, split.test)
    empty = Histories.from_lists([[]] * split.train.n_users, split.n_items)
    return unseen_targets(empty, split.test)


_CELLS_PER_BATCH = 20_000_000
"""Score cells per batch: about 14 bytes each across the scores, masks and top-k."""


def batch_rows(cfg: EvalConfig, n_items: int) -> int:
    """Users per batch: `cfg.batch_size`, fewer when a batch would exceed ~280 MB.

    >>> batch_rows(EvalConfig(), 4_000), batch_rows(EvalConfig(), 1_000_000)
    (1024, 20)
    """
    return max(1, min(cfg.batch_size, _CELLS_PER_BATCH // max(n_items, 1)))


def eval_users(targets: Histories, cfg: EvalConfig) -> npt.NDArray[np.int64]:
    """Users with a target; a seeded sample of `max_users` of them if set."""
    users = np.flatnonzero(targets.lengths > 0).astype(np.int64)
    if cfg.max_users is not None and len(users) > cfg.max_users:
        rng = np.random.default_rng(cfg.seed)
        users = np.sort(rng.choice(users, size=cfg.max_users, replace=False))
    return users


class _Accumulator:
    """Per-user metric values of each segment, and the items in anyone's top k."""

    def __init__(self, ks: list[int], n_items: int) -> None:
        ranking = [f"{m}@{k}" for k in ks for m in RANKING_METRICS]
        novelty = [f"novelty@{k}" for k in ks]
        self.values: dict[Segment, dict[str, list[npt.NDArray[np.float64]]]] = {
            s: {m: [] for m in (ranking if s == "cold_items" else [*ranking, *novelty])}
            for s in SEGMENTS
        }
        self.covered = {k: np.zeros(n_items, dtype=bool) for k in ks}

    def add(self, segment: Segment, metrics: dict[str, npt.NDArray[np.float64]]) -> None:
        for name, v in metrics.items():
            self.values[segment][name].append(v)

    def summary(self) -> dict[str, dict[str, float]]:
        """Means per segment; a segment without users reads `users: 0` and zeros."""
        out: dict[str, dict[str, float]] = {}
        for seg, metrics in self.values.items():
            cols = {m: np.concatenate(v) if v else np.zeros(0) for m, v in metrics.items()}
            n = len(next(iter(cols.values())))
            out[seg] = {"users": n, **{m: float(v.mean()) if n else 0.0 for m, v in cols.items()}}
        for k, cov in self.covered.items():
            out["all"][f"coverage@{k}"] = float(cov.mean()) if len(cov) else 0.0
        return out


def evaluate_scorer(
    scorer: RecScorer[Any],
    split: Split,
    cfg: EvalConfig,
    users: npt.NDArray[np.int64] | None = None,
    targets: Histories | None = None,
) -> dict[str, dict[str, float]]:
    """Full-ranking metrics of a fitted scorer on `split`'s held-out items.

    `users` and `targets` default to `eval_users` and `targets_of`; a caller that
    evaluates several scorers on one split passes them once computed.

    Returns:
        `{segment: {"users": n, "HR@10": ..., "NDCG@10": ..., "novelty@10": ...}}` for the
        segments all, cold_users and cold_items; `all` also has `coverage@k`.
    """
    targets = targets_of(split, cfg) if targets is None else targets
    users = eval_users(targets, cfg) if users is None else users
    ks, width = cfg.ks, min(max(cfg.ks), split.n_items)
    item_counts = split.item_train_counts()
    cold_items = item_counts < cfg.cold_item_threshold
    cold_users = split.train.lengths < cfg.cold_user_threshold
    info = self_information(item_counts, int((split.train.lengths > 0).sum()))
    acc = _Accumulator(ks, split.n_items)
    rows = batch_rows(cfg, split.n_items)
    with progress(f"Evaluating {scorer.name}", total=len(users)) as pb:
        for start in range(0, len(users), rows):
            batch = users[start : start + rows]
            top = _rank(scorer, split.train.rows(batch), width, cfg.exclude_seen)
            target = _dense(targets.rows(batch))
            metrics = _metrics(top, target, ks)
            for k in ks:
                acc.covered[k][top[:, :k]] = True
                metrics[f"novelty@{k}"] = info[top[:, :k]].mean(axis=1)
            acc.add("all", metrics)
            cold = cold_users[batch]
            acc.add("cold_users", {m: v[cold] for m, v in metrics.items()})
            cold_target = target & cold_items
            has = cold_target.any(axis=1)
            acc.add("cold_items", _metrics(top[has], cold_target[has], ks))
            pb.update(len(batch))
    return acc.summary()


def _rank(
    scorer: RecScorer[Any], hist: Histories, width: int, exclude_seen: bool
) -> npt.NDArray[np.int64]:
    scores = scorer.score(hist)
    if exclude_seen:
        scores[hist.user_of, hist.items] = -np.inf
    return top_k(scores, width)


def _dense(h: Histories) -> npt.NDArray[np.bool_]:
    out = np.zeros((h.n_users, h.n_items), dtype=bool)
    out[h.user_of, h.items] = True
    return out


def _metrics(
    top: npt.NDArray[np.int64], target: npt.NDArray[np.bool_], ks: list[int]
) -> dict[str, npt.NDArray[np.float64]]:
    hits = np.take_along_axis(target, top, axis=1)
    return ranking_metrics(hits, target.sum(axis=1), ks)


def fingerprint(scorer: RecScorer[Any]) -> str:
    """SHA-256 of a fitted scorer's config and state arrays: names the exact model."""
    h = hashlib.sha256(f"{scorer.name}:{scorer.dump_config()}".encode())
    for name, arr in sorted(scorer._state().items()):
        h.update(name.encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()
