"""Splits never leak a test interaction into training; k-core and targets by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopkeeper.errors import ConfigError
from shopkeeper.rec import (
    Histories,
    Interactions,
    k_core_mask,
    leave_one_out,
    temporal_split,
    unseen_targets,
)


def interactions(users: list[int], items: list[int], ts: list[int]) -> Interactions:
    """Interactions sorted by (user, time) as read_interactions returns them."""
    u, i, t = (np.asarray(a, dtype=np.int64) for a in (users, items, ts))
    order = np.lexsort((t, u))
    n_u, n_i = int(u.max(initial=-1)) + 1, int(i.max(initial=-1)) + 1
    return Interactions(
        [f"u{x}" for x in range(n_u)],
        [f"i{x}" for x in range(n_i)],
        u[order],
        i[order],
        t[order],
        events_version=1,
        event_types=("purchase",),
    )


@st.composite
def random_interactions(draw: st.DrawFn) -> Interactions:
    n = draw(st.integers(1, 60))
    users = draw(st.lists(st.integers(0, 7), min_size=n, max_size=n))
    items = draw(st.lists(st.integers(0, 9), min_size=n, max_size=n))
    ts = draw(st.lists(st.integers(0, 20), min_size=n, max_size=n))
    return interactions(users, items, ts)


def test_leave_one_out_by_hand() -> None:
    inter = interactions([0, 0, 0, 1, 1, 2], [3, 1, 2, 0, 2, 1], [5, 1, 9, 2, 3, 7])
    split = leave_one_out(inter)
    assert [split.train.row(u).tolist() for u in range(3)] == [[1, 3], [0], [1]]
    assert [split.test.row(u).tolist() for u in range(3)] == [[2], [2], []]
    assert split.test_users.tolist() == [0, 1]
    with_valid = leave_one_out(inter, validation=True)
    assert with_valid.valid is not None
    assert [with_valid.valid.row(u).tolist() for u in range(3)] == [[3], [], []]
    assert with_valid.train.row(0).tolist() == [1]
    assert with_valid.train.row(1).tolist() == [0, 2]  # too short for both: all train


@given(random_interactions())
def test_leave_one_out_never_leaks(inter: Interactions) -> None:
    split = leave_one_out(inter, validation=True)
    assert split.valid is not None
    n_train, n_test, n_valid = (len(h.items) for h in (split.train, split.test, split.valid))
    assert n_train + n_test + n_valid == len(inter)  # a partition: nothing lost, nothing copied
    assert (split.test.lengths <= 1).all()
    for u in split.test_users.tolist():
        train_pos = np.flatnonzero(inter.users == u)[: split.train.lengths[u]]
        test_pos = np.flatnonzero(inter.users == u)[-1]
        # the held-out event is the user's last one: no training event is later
        assert inter.items[test_pos] == split.test.row(u)[0]
        assert (inter.ts[train_pos] <= inter.ts[test_pos]).all()
        assert split.train.lengths[u] >= 1


@given(random_interactions(), st.floats(0.05, 0.95))
def test_temporal_split_never_leaks(inter: Interactions, fraction: float) -> None:
    split = temporal_split(inter, test_fraction=fraction)
    assert split.cutoff_us is not None
    n_train, n_test = len(split.train.items), len(split.test.items)
    assert n_train + n_test == len(inter)
    train_ts = inter.ts[inter.ts < split.cutoff_us]
    test_ts = inter.ts[inter.ts >= split.cutoff_us]
    assert len(train_ts) == n_train
    assert len(test_ts) == n_test
    assert n_test >= 1
    if n_train:
        assert train_ts.max() < test_ts.min()  # every training event precedes every test one


def test_temporal_split_by_hand() -> None:
    inter = interactions([0, 0, 1, 1, 2], [0, 1, 0, 2, 1], [1, 2, 3, 4, 5])
    split = temporal_split(inter, test_fraction=0.4)
    assert split.cutoff_us == 4
    assert [split.train.row(u).tolist() for u in range(3)] == [[0, 1], [0], []]
    assert [split.test.row(u).tolist() for u in range(3)] == [[], [2], [1]]
    with pytest.raises(ConfigError):
        temporal_split(inter, test_fraction=1.0)


def test_unseen_targets_drop_repeats_of_training_items() -> None:
    train = Histories.from_lists([[0, 1], [2], []], 4)
    test = Histories.from_lists([[1, 3, 3], [0], [2]], 4)
    out = unseen_targets(train, test)
    assert [out.row(u).tolist() for u in range(3)] == [[3], [0], [2]]


def test_k_core_is_iterative() -> None:
    """Dropping user 2 (one event) leaves item 2 with one user: it goes in the next round."""
    users = np.array([0, 0, 1, 1, 2, 0])
    items = np.array([0, 1, 0, 1, 2, 2])
    # round 1: user 2 has 1 row -> out; item 2 then has 1 row (user 0) -> out in round 2
    assert k_core_mask(users, items, 2).tolist() == [True, True, True, True, False, False]
    assert k_core_mask(users, items, 1).all()


def test_histories_rows_and_csr() -> None:
    h = Histories.from_lists([[2, 0, 2], [], [1]], 3)
    sub = h.rows(np.array([2, 0]))
    assert [sub.row(0).tolist(), sub.row(1).tolist()] == [[1], [2, 0, 2]]
    dense = h.to_csr().toarray()
    np.testing.assert_array_equal(dense, [[1, 0, 1], [0, 0, 0], [0, 1, 0]])
