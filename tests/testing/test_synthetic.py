"""The synthetic event generator: determinism, file shape, and ground truth vs the pipeline."""

from __future__ import annotations

import csv
import hashlib
import io
from types import ModuleType
from typing import TYPE_CHECKING

import duckdb
import pytest

import shopkeeper.testing
from shopkeeper.testing import (
    COLUMNS,
    PlantedEvents,
    SyntheticEventsConfig,
    generate_events,
)
from shopkeeper.warehouse import IngestRequest, Workspace, ingest

if TYPE_CHECKING:
    from pathlib import Path


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _records(path: Path) -> list[list[str]]:
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    return list(csv.reader(io.StringIO(text, newline="")))


def _ingest(workspace: Workspace, planted: PlantedEvents) -> dict[str, object]:
    results = ingest(workspace, IngestRequest(planted.path, "generic", "events"))
    assert len(results) == 1
    return results[0]


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> PlantedEvents:
    """A small generated file with every category planted (shared by the module)."""
    path = tmp_path_factory.mktemp("synthetic") / "events.csv"
    return generate_events(path, SyntheticEventsConfig.small(seed=11))


def test_all_is_sorted_and_complete() -> None:
    names = shopkeeper.testing.__all__
    assert names == sorted(names)
    public = {
        n
        for n, v in vars(shopkeeper.testing).items()
        if not n.startswith("_") and not isinstance(v, ModuleType)  # e.g. .models, .rec
    }
    assert set(names) == public - {"annotations"}


def test_same_seed_same_bytes(tmp_path: Path, small: PlantedEvents) -> None:
    again = generate_events(tmp_path / "again.csv", SyntheticEventsConfig.small(seed=11))
    assert _sha(again.path) == _sha(small.path)
    assert again.reasons == small.reasons
    assert again.size_bytes == small.size_bytes == small.path.stat().st_size


def test_other_seed_other_bytes(tmp_path: Path, small: PlantedEvents) -> None:
    other = generate_events(tmp_path / "other.csv", SyntheticEventsConfig.small(seed=12))
    assert _sha(other.path) != _sha(small.path)
    assert other.input_rows == small.input_rows


def test_keyword_shorthand_matches_config(tmp_path: Path) -> None:
    cfg = SyntheticEventsConfig(rows=3000, seed=5, min_planted=1, chunk_rows=1000)
    a = generate_events(tmp_path / "a.csv", cfg)
    b = generate_events(tmp_path / "b.csv", rows=3000, seed=5, min_planted=1, chunk_rows=1000)
    c = generate_events(tmp_path / "c.csv", SyntheticEventsConfig(rows=3000), seed=5,
                        min_planted=1, chunk_rows=1000)  # fmt: skip
    assert _sha(a.path) == _sha(b.path) == _sha(c.path)


def test_file_parses_with_planted_field_counts(small: PlantedEvents) -> None:
    records = _records(small.path)
    assert tuple(records[0]) == COLUMNS
    data = records[1:]
    assert len(data) == small.input_rows
    wrong = sum(len(r) != len(COLUMNS) for r in data)
    assert wrong == small.reasons["malformed_row"]


def test_every_category_is_planted(small: PlantedEvents) -> None:
    expected = {
        "malformed_row", "invalid_encoding", "exact_duplicate", "near_duplicate",
        "missing_user_id", "missing_item_id", "missing_event_type", "missing_ts",
        "unparseable_ts", "unparseable_value", "unparseable_quantity", "unparseable_price",
        "invalid_event_type", "invalid_currency", "future_timestamp",
        "timestamp_before_start", "nonpositive_price", "absurd_quantity", "price_outlier",
        "bot_user",
    }  # fmt: skip
    assert set(small.reasons) == expected
    assert all(n >= 3 for n in small.reasons.values())
    assert small.exact == frozenset(expected)
    assert small.reasons["bot_user"] > 60
    bad_share = (small.quarantined_rows + small.duplicate_rows) / small.input_rows
    assert 0.01 < bad_share < 0.1


def test_shape_is_realistic(small: PlantedEvents) -> None:
    con = duckdb.connect(":memory:")
    rel = f"read_csv('{small.path}', all_varchar=true, ignore_errors=true, header=true)"
    types = dict(
        con.execute(f"SELECT lower(event_type), count(*) FROM {rel} GROUP BY 1").fetchall()
    )
    assert types["view"] > types["click"] > types["add_to_cart"] > types["purchase"]
    top_item_share, n_items = con.execute(
        f"SELECT max(n) / sum(n), count(*) FROM (SELECT item_id, count(*) AS n FROM {rel} "
        "GROUP BY 1)"
    ).fetchone() or (0, 0)
    assert 0.005 < top_item_share < 0.2  # a popular head, not a single item
    assert n_items > 300
    span = con.execute(
        f"SELECT max(t) - min(t) FROM (SELECT TRY_CAST(ts AS TIMESTAMP) AS t FROM {rel} "
        "WHERE ts LIKE '2024%')"
    ).fetchone()
    assert span is not None
    assert span[0].days > 300
    pii = con.execute(
        f"SELECT count(*) FROM {rel} WHERE query LIKE '%@%' OR query LIKE '%555%'"
    ).fetchone()
    assert pii is not None
    assert pii[0] > 0


def test_pipeline_reasons_match_ground_truth(workspace: Workspace, small: PlantedEvents) -> None:
    result = _ingest(workspace, small)
    assert result["reasons"] == small.reasons
    assert result["input_rows"] == small.input_rows
    assert result["clean_rows"] == small.clean_rows
    assert result["quarantined_rows"] == small.quarantined_rows
    assert result["duplicate_rows"] == small.duplicate_rows
    assert small.input_rows == small.clean_rows + small.quarantined_rows + small.duplicate_rows
    assert result["rows"] == small.clean_rows


@pytest.mark.parametrize("seed", [1, 2])
def test_invalid_bytes_past_first_mib_match(tmp_path: Path, seed: int) -> None:
    planted = generate_events(
        tmp_path / "events.csv", SyntheticEventsConfig.small(seed=seed, rows=25_000)
    )
    assert planted.size_bytes > 1 << 20
    assert planted.invalid_byte_rows > 0
    raw = planted.path.read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    raw[: 1 << 20].decode("utf-8")  # encoding detection must still see UTF-8
    result = _ingest(Workspace.at(tmp_path / "ws"), planted)
    assert result["reasons"] == planted.reasons


def test_clean_file_has_no_reasons(tmp_path: Path) -> None:
    planted = generate_events(tmp_path / "clean.csv", rows=4000, bad_scale=0, seed=3)
    assert planted.reasons == {}
    assert planted.clean_rows == 4000
    result = _ingest(Workspace.at(tmp_path / "ws"), planted)
    assert result["reasons"] == {}
    assert result["clean_rows"] == 4000


def test_too_few_rows_for_the_anomalies(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="too few"):
        generate_events(tmp_path / "x.csv", rows=1000, min_planted=40)
