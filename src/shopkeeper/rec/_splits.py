"""Train/test splits that never let a test interaction reach training.

- `leave_one_out`: each user's last interaction (in time order, seeded tie-break) is the
  test item, optionally the one before it the validation item; the rest is training.
- `temporal_split`: one global cut-off time; everything before it trains, everything
  at or after it is test. Users first seen after the cut-off are cold users with an
  empty history.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from shopkeeper.errors import ConfigError
from shopkeeper.rec._data import Histories

if TYPE_CHECKING:
    import numpy.typing as npt

    from shopkeeper.rec._data import Interactions

SplitKind = Literal["leave_one_out", "temporal"]


@dataclass(frozen=True)
class Split:
    """Training and held-out interactions, each as per-user histories over all users."""

    kind: SplitKind
    train: Histories
    """Each user's training items, oldest first."""
    test: Histories
    """Each user's held-out items (an empty row: the user is not tested)."""
    valid: Histories | None = None
    """Leave-one-out only: each user's validation item (the one before the test item)."""
    cutoff_us: int | None = None
    """Temporal only: the cut-off time, microseconds since the epoch."""

    @property
    def n_items(self) -> int:
        """Catalog size."""
        return self.train.n_items

    @property
    def test_users(self) -> npt.NDArray[np.int64]:
        """Users with at least one held-out item."""
        return np.flatnonzero(self.test.lengths > 0).astype(np.int64)

    def item_train_counts(self) -> npt.NDArray[np.int64]:
        """Training users per item (repeats count once)."""
        return np.asarray(self.train.to_csr().getnnz(axis=0), dtype=np.int64)


def leave_one_out(inter: Interactions, *, validation: bool = False, min_train: int = 1) -> Split:
    """Hold out each user's last interaction (and the one before it with `validation`).

    Users with fewer than `min_train` interactions left for training are not tested;
    all their interactions train.
    """
    held = 2 if validation else 1
    hist = Histories.from_pairs(inter.users, inter.items, inter.n_users, inter.n_items)
    lengths = hist.lengths
    owner = inter.users
    from_end = hist.indptr[owner + 1] - 1 - np.arange(len(owner), dtype=np.int64)
    tested = (lengths >= held + min_train)[owner]
    test = tested & (from_end == 0)
    valid = tested & (from_end == 1) if validation else np.zeros(len(owner), dtype=bool)
    train = ~(test | valid)
    n_u, n_i = inter.n_users, inter.n_items
    return Split(
        kind="leave_one_out",
        train=Histories.from_pairs(owner[train], inter.items[train], n_u, n_i, inter.ts[train]),
        test=Histories.from_pairs(owner[test], inter.items[test], n_u, n_i),
        valid=Histories.from_pairs(owner[valid], inter.items[valid], n_u, n_i)
        if validation
        else None,
    )


def temporal_split(inter: Interactions, *, test_fraction: float = 0.2) -> Split:
    """Cut at the time that leaves about `test_fraction` of interactions for test.

    Raises:
        ConfigError: `test_fraction` is not strictly between 0 and 1.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if len(inter) == 0:
        cutoff = 0
    else:
        ordered = np.sort(inter.ts)
        cutoff = int(ordered[min(len(ordered) - 1, int(len(ordered) * (1 - test_fraction)))])
    train = inter.ts < cutoff
    test = ~train
    n_u, n_i = inter.n_users, inter.n_items
    return Split(
        kind="temporal",
        train=Histories.from_pairs(
            inter.users[train], inter.items[train], n_u, n_i, inter.ts[train]
        ),
        test=Histories.from_pairs(inter.users[test], inter.items[test], n_u, n_i),
        cutoff_us=cutoff,
    )


def unseen_targets(train: Histories, test: Histories) -> Histories:
    """`test` without the (user, item) pairs that also occur in `train`, and without repeats.

    >>> tr = Histories.from_lists([[1, 2], [0]], 4)
    >>> te = Histories.from_lists([[2, 3, 3], [1]], 4)
    >>> [unseen_targets(tr, te).row(u).tolist() for u in range(2)]
    [[3], [1]]
    """
    n = test.n_items
    test_keys = test.user_of * n + test.items
    train_keys = train.user_of * n + train.items
    _, first = np.unique(test_keys, return_index=True)
    keep = np.zeros(len(test_keys), dtype=bool)
    keep[first] = True
    keep &= ~np.isin(test_keys, train_keys)
    return Histories.from_pairs(test.user_of[keep], test.items[keep], test.n_users, n)
