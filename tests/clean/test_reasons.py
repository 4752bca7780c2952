"""Reason codes: stable values, per-column codes, and which ones count as duplicates."""

from __future__ import annotations

import re

import pytest

from shopkeeper.clean import DUPLICATE_REASONS, Reason, is_duplicate_code, reason_code
from shopkeeper.schema import ASSET_KINDS, columns


def test_codes_are_unique_snake_case() -> None:
    values = [r.value for r in Reason]
    assert len(values) == len(set(values))
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", v) for v in values)


def test_reason_is_a_string() -> None:
    assert isinstance(Reason.MISSING, str)
    assert str(Reason.MISSING) == "missing"
    assert f"{Reason.BOT_USER}" == "bot_user"


@pytest.mark.parametrize(
    ("reason", "column", "expected"),
    [
        (Reason.MISSING, "user_id", "missing_user_id"),
        (Reason.UNPARSEABLE, "ts", "unparseable_ts"),
        (Reason.MISSING, None, "missing"),
        (Reason.PRICE_OUTLIER, None, "price_outlier"),
        (Reason.MALFORMED_ROW, "", "malformed_row"),
    ],
)
def test_reason_code(reason, column, expected) -> None:
    assert reason_code(reason, column) == expected


def test_only_duplicates_are_counted_as_duplicates() -> None:
    assert {Reason.EXACT_DUPLICATE, Reason.NEAR_DUPLICATE, Reason.SUPERSEDED} == DUPLICATE_REASONS
    for reason in Reason:
        assert is_duplicate_code(reason.value) is (reason in DUPLICATE_REASONS)


@pytest.mark.parametrize("kind", ASSET_KINDS)
def test_column_codes_are_never_duplicates(kind) -> None:
    for col in columns(kind):
        for reason in (Reason.MISSING, Reason.UNPARSEABLE):
            assert not is_duplicate_code(reason_code(reason, col.name))


def test_unknown_codes_are_not_duplicates() -> None:
    assert not is_duplicate_code("duplicate")
    assert not is_duplicate_code("EXACT_DUPLICATE")
    assert not is_duplicate_code("")
