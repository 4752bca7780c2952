"""Every cleaning rule end to end: tiny CSVs through `ingest`, read back from the warehouse."""

from __future__ import annotations

import itertools
import json
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopkeeper.clean import DEFAULT_EVENT_TYPES
from shopkeeper.errors import IngestError
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest

NOW = datetime(2025, 1, 1, tzinfo=UTC)
EVENTS = "user_id,item_id,event_type,ts,price,quantity"
_counter = itertools.count()


def _load(
    ws: Workspace, text: str, kind: Any = "events", suffix: str = ".csv", mapping: str | None = None
) -> dict[str, Any]:
    """Ingest `text` as a new file; check the accounting invariant; return the result."""
    folder = ws.home.parent / "sources"
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / f"{kind}-{next(_counter)}{suffix}"
    src.write_text(text, encoding="utf-8")
    mapping_path = None
    if mapping is not None:
        mapping_path = src.with_suffix(".yml")
        mapping_path.write_text(mapping, encoding="utf-8")
    [result] = ingest(ws, IngestRequest(src, "generic", kind, mapping_path), now=NOW)
    assert result["input_rows"] == (
        result["clean_rows"] + result["quarantined_rows"] + result["duplicate_rows"]
    )
    assert result["status"] == "written"
    return result


def _events(ws: Workspace, *rows: str) -> dict[str, Any]:
    return _load(ws, "\n".join([EVENTS, *rows]) + "\n")


def _query(ws: Workspace, sql: str) -> list[dict[str, Any]]:
    with Warehouse(ws, read_only=True) as wh:
        names, rows = wh.query(sql)
    return [dict(zip(names, r, strict=True)) for r in rows]


def _quarantine(ws: Workspace) -> list[dict[str, Any]]:
    return _query(ws, "SELECT * FROM quarantine ORDER BY version, source_line")


# -- duplicates ------------------------------------------------------------------------------


def test_exact_duplicates_are_counted_not_quarantined(workspace) -> None:
    row = "u1,A,purchase,2024-01-01 10:00:00,5,1"
    result = _events(workspace, row, row, "u2,A,purchase,2024-01-01 10:00:00,5,1", row)
    assert result["reasons"] == {"exact_duplicate": 2}
    assert (result["clean_rows"], result["duplicate_rows"], result["quarantined_rows"]) == (2, 2, 0)
    assert len(_query(workspace, "SELECT * FROM events")) == 2
    # nothing was quarantined: no quarantine file, and the (always present) view is empty
    assert not list(workspace.quarantine_dir.rglob("*.parquet"))
    assert _query(workspace, "SELECT count(*) AS n FROM quarantine") == [{"n": 0}]


@pytest.mark.parametrize(
    ("event_type", "gap", "near"),
    [
        ("view", 1.0, True),
        ("view", 2.0, True),
        ("view", 2.5, False),
        ("view", 60.0, False),
        ("click", 0.5, True),
        ("add_to_cart", 1.9, True),
        ("search", 0.0, True),
        ("purchase", 1.0, False),
        ("return", 0.0, False),
        ("wishlist", 1.0, False),
    ],
)
def test_near_duplicate_window(workspace, event_type, gap, near) -> None:
    later = datetime(2024, 1, 1, 10, 0, tzinfo=UTC).timestamp() + gap
    ts2 = datetime.fromtimestamp(later, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    result = _events(
        workspace,
        f"u1,A,{event_type},2024-01-01 10:00:00,5,1",
        f"u1,A,{event_type},{ts2},5,2",  # differs in quantity: not an exact duplicate
        f"u2,A,{event_type},{ts2},5,1",  # another user
        f"u1,B,{event_type},{ts2},5,1",  # another item
    )
    assert result["reasons"] == ({"near_duplicate": 1} if near else {})
    assert result["duplicate_rows"] == int(near)
    assert result["clean_rows"] == 4 - int(near)
    kept = _query(workspace, "SELECT quantity FROM events WHERE item_id = 'A' ORDER BY ts")
    assert kept[0]["quantity"] == 1  # the first event is the one kept


def test_near_duplicates_need_the_same_event_type(workspace) -> None:
    result = _events(
        workspace, "u1,A,view,2024-01-01 10:00:00,5,1", "u1,A,click,2024-01-01 10:00:01,5,1"
    )
    assert result["reasons"] == {}


# -- row rules -------------------------------------------------------------------------------


def test_missing_and_unparseable(workspace) -> None:
    result = _events(
        workspace,
        ",A,view,2024-01-01 10:00:00,5,1",
        "u2,nan,view,2024-01-01 10:00:00,5,1",
        "u3,A,NULL,2024-01-01 10:00:00,5,1",
        "u4,A,view,,5,1",
        "u5,A,view,N/A,5,1",
        "u6,A,view,yesterday,5,1",
        "u7,A,view,2024-13-45 10:00:00,5,1",
        "u8,A,purchase,2024-01-01 10:00:00,five,1",
        "u9,A,purchase,2024-01-01 10:00:00,5,1.5",
        "u10,A,purchase,2024-01-01 10:00:00,inf,1",
        "u11,A,purchase,2024-01-01 10:00:00,,",
        "u12,A,purchase,2024-01-01 10:00:00,$5.50,2",
    )
    assert result["reasons"] == {
        "missing_user_id": 1,
        "missing_item_id": 1,
        "missing_event_type": 1,
        "missing_ts": 2,
        "unparseable_ts": 2,
        "unparseable_price": 2,
        "unparseable_quantity": 1,
    }
    assert result["clean_rows"] == 2  # optional price and quantity may be empty
    bad = _quarantine(workspace)
    assert [(r["source_line"], r["reason"], r["column_name"]) for r in bad] == [
        (2, "missing_user_id", "user_id"),
        (3, "missing_item_id", "item_id"),
        (4, "missing_event_type", "event_type"),
        (5, "missing_ts", "ts"),
        (6, "missing_ts", "ts"),
        (7, "unparseable_ts", "ts"),
        (8, "unparseable_ts", "ts"),
        (9, "unparseable_price", "price"),
        (10, "unparseable_quantity", "quantity"),
        (11, "unparseable_price", "price"),
    ]
    assert _query(workspace, "SELECT price, quantity FROM events WHERE price IS NOT NULL") == [
        {"price": 5.5, "quantity": 2}
    ]


def test_invalid_event_type(workspace) -> None:
    result = _events(
        workspace,
        "u1,A,teleport,2024-01-01 10:00:00,5,1",
        "u1,A,Add To Cart,2024-01-01 10:00:00,5,1",
    )
    assert result["reasons"] == {"invalid_event_type": 1}
    assert [r["event_type"] for r in _query(workspace, "SELECT * FROM events")] == ["add_to_cart"]


def test_invalid_currency(workspace) -> None:
    result = _load(
        workspace,
        "user_id,item_id,event_type,ts,price,currency\n"
        "u1,A,purchase,2024-01-01,5,euro\nu2,A,purchase,2024-01-01,5,gbp\n",
    )
    assert result["reasons"] == {"invalid_currency": 1}
    assert _query(workspace, "SELECT currency FROM events") == [{"currency": "GBP"}]


def test_future_and_too_early_timestamps(workspace) -> None:
    result = _events(
        workspace,
        "u1,A,view,2025-01-01 23:59:00,5,1",  # within the 24 h tolerance of NOW
        "u2,A,view,2025-01-02 00:00:01,5,1",
        "u3,A,view,2099-01-01 00:00:00,5,1",
        "u4,A,view,1990-01-01 00:00:00,5,1",
        "u5,A,view,1989-12-31 23:59:59,5,1",
        "u6,A,view,1970-01-01 00:00:00,5,1",
    )
    assert result["reasons"] == {"future_timestamp": 2, "timestamp_before_start": 2}
    assert [r["source_line"] for r in _quarantine(workspace)] == [3, 4, 6, 7]


def test_nonpositive_price_and_absurd_quantity(workspace) -> None:
    result = _events(
        workspace,
        "u1,A,purchase,2024-01-01 10:00:00,0,1",
        "u2,A,purchase,2024-01-01 10:00:00,-1.5,1",
        "u3,A,purchase,2024-01-01 10:00:00,0.01,1",
        "u4,A,purchase,2024-01-01 10:00:00,1,10001",
        "u5,A,return,2024-01-01 10:00:00,1,-10001",
        "u6,A,return,2024-01-01 10:00:00,1,-10000",
        "u7,A,purchase,2024-01-01 10:00:00,1,10000",
    )
    assert result["reasons"] == {"nonpositive_price": 2, "absurd_quantity": 2}
    assert {(r["reason"], r["column_name"]) for r in _quarantine(workspace)} == {
        ("nonpositive_price", "price"),
        ("absurd_quantity", "quantity"),
    }


def _priced(prices: list[float], item: str = "A") -> list[str]:
    return [
        f"u{i},{item},purchase,2024-01-01 10:{i // 60:02d}:{i % 60:02d},{p},1"
        for i, p in enumerate(prices)
    ]


def test_price_outlier(workspace) -> None:
    result = _events(workspace, *_priced([10, 11, 9, 10.5, 12, 8, 1000, 0.5]))
    assert result["reasons"] == {"price_outlier": 2}
    bad = _quarantine(workspace)
    assert {(r["source_line"], r["column_name"]) for r in bad} == {(8, "price"), (9, "price")}


def test_normal_price_spread_is_not_an_outlier(workspace) -> None:
    result = _events(workspace, *_priced([5, 10, 20, 40, 8, 30, 15, 45, 6, 12]))
    assert result["reasons"] == {}


def test_price_outliers_need_enough_observations(workspace) -> None:
    result = _events(
        workspace, *_priced([10, 10, 10, 1000]), *_priced([10, 11, 9, 10, 12, 10], item="B")
    )
    assert result["reasons"] == {}


def test_bot_user(workspace) -> None:
    bot = [f"bot,I{i},view,2024-01-01 10:00:{i % 60:02d}.{i // 60},1,1" for i in range(61)]
    busy = [f"busy,I{i},view,2024-01-01 10:{i // 30:02d}:{i % 30:02d},1,1" for i in range(120)]
    buyer = [f"buyer,I{i},purchase,2024-01-01 10:00:00.{i:03d},1,1" for i in range(70)]
    result = _events(workspace, *bot, "bot,X,purchase,2024-01-02 10:00:00,1,1", *busy, *buyer)
    assert result["reasons"] == {"bot_user": 62}  # every event of the bot, purchases too
    assert result["clean_rows"] == 190
    bad = _quarantine(workspace)
    assert {r["column_name"] for r in bad} == {"user_id"}


def test_bot_burst_across_a_minute_boundary(workspace) -> None:
    """40 events either side of 10:01:00 are 80 in 60 s: a bot, though no calendar
    minute holds more than 40. One event a second is 60 in any 60 s: not a bot."""
    early = [f"b,I{i},view,2024-01-01 10:00:{30 + i * 0.7:06.3f},1,1" for i in range(40)]
    late = [f"b,J{i},view,2024-01-01 10:01:{i * 0.7:06.3f},1,1" for i in range(40)]
    steady = [f"s,I{i},view,2024-01-01 11:{i // 60:02d}:{i % 60:02d},1,1" for i in range(61)]
    result = _events(workspace, *early, *late, *steady)
    assert result["reasons"] == {"bot_user": 80}
    assert result["clean_rows"] == 61


def test_unknown_item_once_an_items_asset_exists(workspace) -> None:
    first = _events(workspace, "u1,GHOST,view,2024-01-01 10:00:00,5,1")
    assert first["reasons"] == {}  # no items asset yet: nothing to check against
    _load(workspace, "item_id,title\nA,Mug\nB,Plate\n", "items")
    result = _events(
        workspace,
        "u1,A,view,2024-01-01 11:00:00,5,1",
        "u1,GHOST,view,2024-01-01 11:00:00,5,1",
        "u1,B,view,2024-01-01 11:00:00,5,1",
    )
    assert result["reasons"] == {"unknown_item": 1}
    bad = [r for r in _quarantine(workspace) if r["asset"] == "events"]
    assert [(r["source_line"], r["column_name"]) for r in bad] == [(3, "item_id")]
    # appends keep the first load's rows
    assert len(_query(workspace, "SELECT * FROM events")) == 3


# -- items and users -------------------------------------------------------------------------


def test_items_latest_wins_and_upsert_across_loads(workspace) -> None:
    first = _load(
        workspace,
        "item_id,title,price,updated_at,color\n"
        "A,Old mug,10,2024-01-01,red\n"
        "A,New mug,12,2024-02-01,blue\n"
        "B,Plate,5,2024-01-01,\n"
        "A,Oldest mug,9,2023-12-01,green\n"
        "C,Bowl,3,,\n"
        "C,Bowl v2,4,,\n",
        "items",
    )
    assert first["reasons"] == {"superseded": 3}
    assert (first["clean_rows"], first["duplicate_rows"]) == (3, 3)
    v1 = {r["item_id"]: r for r in _query(workspace, "SELECT * FROM items")}
    assert {k: r["title"] for k, r in v1.items()} == {"A": "New mug", "B": "Plate", "C": "Bowl v2"}
    assert json.loads(v1["A"]["attributes"]) == {"color": "blue"}
    second = _load(
        workspace,
        "item_id,title,price,updated_at\nB,Plate XL,6,2024-03-01\nD,Cup,2,2024-03-01\n",
        "items",
    )
    assert (second["version"], second["rows"]) == (2, 4)
    latest = {r["item_id"]: r["title"] for r in _query(workspace, "SELECT * FROM items")}
    assert latest == {"A": "New mug", "B": "Plate XL", "C": "Bowl v2", "D": "Cup"}
    old = {r["item_id"]: r["title"] for r in _query(workspace, "SELECT * FROM items_v1")}
    assert old == {"A": "New mug", "B": "Plate", "C": "Bowl v2"}


def test_tags_and_categories_from_text_and_from_lists(workspace, tmp_path) -> None:
    _load(
        workspace,
        "item_id,title,tags,category\n"
        "A,Mug, red | kitchen ;; gift ,Home>Kitchen > Mugs\n"
        'B,Cup,"[""tea"", ""cup, small""]","[""Home"", ""Tea""]"\n'
        "C,Pot,,\n",
        "items",
    )
    got = {
        r["item_id"]: (r["tags"], r["category_path"])
        for r in _query(workspace, "SELECT * FROM items")
    }
    assert got == {
        "A": (["red", "kitchen", "gift"], "Home > Kitchen > Mugs"),
        "B": (["tea", "cup, small"], "Home > Tea"),
        "C": (None, None),
    }
    table = pa.table(
        {
            "item_id": ["D", "E"],
            "title": ["Bowl", "Jug"],
            "tags": [["blue", " big, deep "], []],
            "category_path": [["Home", "Bowls"], None],
        }
    )
    path = tmp_path / "items.parquet"
    pq.write_table(table, path)
    ingest(workspace, IngestRequest(path, "generic", "items"), now=NOW)
    got = {
        r["item_id"]: (r["tags"], r["category_path"])
        for r in _query(workspace, "SELECT * FROM items WHERE item_id IN ('D', 'E')")
    }
    assert got == {"D": (["blue", "big, deep"], "Home > Bowls"), "E": (None, None)}


def test_users_created_at_is_first_seen(workspace) -> None:
    _load(
        workspace,
        "user_id,created_at,country\nu1,2024-02-01,FR\nu1,2024-01-01,DE\nu2,2024-03-01,UK\n",
        "users",
    )
    pseudo = workspace.keys.load()
    rows = {r["user_id"]: r for r in _query(workspace, "SELECT * FROM users")}
    assert rows[pseudo.pseudonymize("u1")]["created_at"] == datetime(2024, 1, 1, tzinfo=UTC)
    _load(
        workspace,
        "user_id,created_at,country\nu1,2024-06-01,ES\nu2,2023-03-01,UK\nu3,2024-05-01,IT\n",
        "users",
    )
    rows = {r["user_id"]: r for r in _query(workspace, "SELECT * FROM users")}
    first_seen = {u: rows[pseudo.pseudonymize(u)]["created_at"] for u in ("u1", "u2", "u3")}
    assert first_seen == {
        "u1": datetime(2024, 1, 1, tzinfo=UTC),
        "u2": datetime(2023, 3, 1, tzinfo=UTC),
        "u3": datetime(2024, 5, 1, tzinfo=UTC),
    }
    sealed = rows[pseudo.pseudonymize("u1")]["attributes"]
    assert json.loads(workspace.field_cipher.decrypt(sealed)) == {"country": "ES"}
    assert not any(u in rows for u in ("u1", "u2", "u3"))


# -- the quarantine: where each row came from, and no raw user ids ---------------------------


def test_quarantine_rows_carry_file_line_and_pseudonyms(workspace) -> None:
    text = (
        "\n".join(
            [
                EVENTS,
                "alice@example.com,A,view,2024-01-01 10:00:00,5,1",
                "bob-1234,A,view,2024-01-01 10:00:00,5,1,surplus",
                "carol-5678,A,teleport,2024-01-01 10:00:00,5,1",
                "dave-9012,A,view,not a date,5,1",
                "erin-3456,A,view,2024-01-01 10:00:00,5,1",
            ]
        )
        + "\n"
    )
    result = _load(workspace, text)
    assert result["reasons"] == {"malformed_row": 1, "invalid_event_type": 1, "unparseable_ts": 1}
    pseudo = workspace.keys.load()
    bad = _quarantine(workspace)
    source = _query(workspace, "SELECT DISTINCT source_file FROM quarantine")
    assert len(source) == 1
    assert source[0]["source_file"].endswith(".csv")
    assert [(r["source_line"], r["reason"]) for r in bad] == [
        (3, "malformed_row"),
        (4, "invalid_event_type"),
        (5, "unparseable_ts"),
    ]
    assert bad[0]["raw"].split(",")[0] == pseudo.pseudonymize("bob-1234")
    assert json.loads(bad[1]["raw"])["user_id"] == pseudo.pseudonymize("carol-5678")
    assert json.loads(bad[2]["raw"]) == {
        "user_id": pseudo.pseudonymize("dave-9012"),
        "item_id": "A",
        "event_type": "view",
        "ts": "not a date",
        "price": "5",
        "quantity": "1",
    }
    everything = json.dumps(_query(workspace, "SELECT * FROM quarantine"), default=str)
    for raw_id in ("alice", "bob-1234", "carol-5678", "dave-9012"):
        assert raw_id not in everything
    clean = _query(workspace, "SELECT user_id FROM events ORDER BY ts")
    assert {r["user_id"] for r in clean} == {
        pseudo.pseudonymize("alice@example.com"),
        pseudo.pseudonymize("erin-3456"),
    }


def test_source_lines_without_malformed_rows(workspace) -> None:
    # the header is line 1 even when DuckDB rejected nothing
    _events(workspace, "u1,A,view,2024-01-01 10:00:00,5,1", "u2,A,view,,5,1")
    assert [r["source_line"] for r in _quarantine(workspace)] == [3]


def test_source_lines_after_consecutive_malformed_rows(workspace) -> None:
    _events(
        workspace,
        "u1,A,view,2024-01-01 10:00:00,5,1",
        "x",
        "y,y",
        "u2,A,view,,5,1",
        "z,z,z,z,z,z,z",
        "u3,A,view,nope,5,1",
    )
    assert [(r["source_line"], r["reason"]) for r in _quarantine(workspace)] == [
        (3, "malformed_row"),
        (4, "malformed_row"),
        (5, "missing_ts"),
        (6, "malformed_row"),
        (7, "unparseable_ts"),
    ]


def test_jsonl_malformed_line_is_quarantined_without_raw_ids(workspace) -> None:
    lines = [
        '{"user_id": "u-secret-1", "item_id": "A", "event_type": "view", "ts": "2024-01-01"}',
        "",
        '{"user_id": "u-secret-2", "item_id": "A", "event_type": "view", "ts": ',
        '{"user_id": "u-secret-3", "item_id": "A", "event_type": "view", "ts": "soon"}',
    ]
    result = _load(workspace, "\n".join(lines) + "\n", suffix=".jsonl")
    assert (result["input_rows"], result["reasons"]) == (
        3,
        {"malformed_row": 1, "unparseable_ts": 1},
    )
    bad = _quarantine(workspace)
    assert [(r["source_line"], r["reason"]) for r in bad] == [
        (3, "malformed_row"),
        (4, "unparseable_ts"),
    ]
    assert "u-secret" not in json.dumps(bad, default=str)


def test_malformed_line_with_a_quoted_delimiter_keeps_no_raw_user_id(workspace) -> None:
    text = 'note,user_id,item_id,event_type,ts\n"a,b",secret-user-1,A,view,2024-01-01,extra\n'
    text += "ok,u2,A,view,2024-01-01\nok,u3,A,view,2024-01-01\n"
    _load(workspace, text)
    [bad] = _quarantine(workspace)
    assert "secret-user-1" not in (bad["raw"] or "")


def test_quarantined_users_rows_have_pii_masked(workspace) -> None:
    _load(
        workspace,
        "user_id,email,phone,created_at\n"
        "u1,john@example.com,555-123-4567,2099-01-01\n"
        "u2,ann@example.com,555-987-6543,2024-01-01\n",
        "users",
    )
    [clean] = _query(workspace, "SELECT attributes FROM users")
    sealed = workspace.field_cipher.decrypt(clean["attributes"])  # sealed at rest
    assert json.loads(sealed) == {"email": "[EMAIL]", "phone": "[PHONE]"}
    [bad] = _quarantine(workspace)
    assert "john@example.com" not in bad["raw"]
    assert "555-123-4567" not in bad["raw"]


def test_other_formats_end_to_end(workspace, tmp_path) -> None:
    items = tmp_path / "catalog.json"
    items.write_text(
        json.dumps(
            [
                {"item_id": 17.0, "title": "<b>Mug</b> &amp; saucer"},
                {"item_id": "18", "title": None},
            ]
        ),
        encoding="utf-8",
    )
    [result] = ingest(workspace, IngestRequest(items, "generic", "items"), now=NOW)
    assert result["reasons"] == {"missing_title": 1}
    assert _query(workspace, "SELECT item_id, title FROM items") == [
        {"item_id": "17", "title": "Mug & saucer"}
    ]
    archive = tmp_path / "events.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(
            "export/events.tsv",
            f"{EVENTS}\n".replace(",", "\t")
            + "u1\t17\tview\t2024-01-01\t1\t1\nu1\t99\tview\t2024-01-01\t1\t1\n",
        )
    [result] = ingest(workspace, IngestRequest(archive, "generic", "events"), now=NOW)
    assert result["reasons"] == {"unknown_item": 1}
    [bad] = [r for r in _quarantine(workspace) if r["asset"] == "events"]
    assert bad["source_file"] == f"{archive}!export/events.tsv"
    assert bad["source_line"] == 3


@pytest.mark.parametrize(
    ("name", "data", "error"),
    [
        ("missing.csv", None, IngestError),
        ("empty.csv", b"", IngestError),
        ("header_only.csv", b"user_id,item_id,event_type,ts\n", IngestError),
        ("broken.csv.gz", b"\x1f\x8b\x08 not gzip", IngestError),
        ("two.zip", "zip2", IngestError),
    ],
)
def test_unreadable_sources_write_nothing(workspace, tmp_path, name, data, error) -> None:
    path = tmp_path / name
    if data == "zip2":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("a.csv", "x\n1\n")
            zf.writestr("b.csv", "x\n2\n")
    elif isinstance(data, bytes):
        path.write_bytes(data)
    with pytest.raises(error):
        ingest(workspace, IngestRequest(path, "generic", "events"), now=NOW)
    if workspace.exists():
        with Warehouse(workspace, read_only=True) as wh:
            assert wh.latest_versions() == []


# -- property: planted duplicates ------------------------------------------------------------

_ROW = st.tuples(
    st.sampled_from(["A", "B", "C"]),
    st.sampled_from(DEFAULT_EVENT_TYPES),
    st.sampled_from(["1.5", "2", "3.25", "", "x"]),  # "x": unparseable, quarantined
    st.integers(min_value=1, max_value=3),  # copies of this row
)


@settings(max_examples=10, deadline=None)
@given(rows=st.lists(_ROW, min_size=1, max_size=12), order=st.randoms(use_true_random=False))
def test_planted_exact_duplicates_are_all_counted(rows, order) -> None:
    lines, planted, bad = [], 0, 0
    for k, (item, etype, price, copies) in enumerate(rows):
        line = f"user{k},{item},{etype},2024-01-01 10:{k:02d}:00,{price},1"
        lines += [line] * copies
        planted += copies - 1
        bad += price == "x"
    order.shuffle(lines)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.at(Path(tmp) / "ws")
        result = _events(ws, *lines)
    assert result["input_rows"] == len(lines)
    assert result["duplicate_rows"] == planted
    assert result["reasons"].get("exact_duplicate", 0) == planted
    assert result["quarantined_rows"] == bad
    assert result["clean_rows"] == len(rows) - bad
