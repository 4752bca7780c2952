"""The MovieLens and Home Depot adapters on small files in the real formats."""

from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from shopkeeper.errors import ConfigError
from shopkeeper.ingest.adapters._home_depot import query_id_sql, repair_mojibake_sql
from shopkeeper.ingest.adapters._movielens import GENRES
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest

if TYPE_CHECKING:
    from pathlib import Path

# -- MovieLens ---------------------------------------------------------------------------------


def _flags(*genres: str) -> str:
    return "|".join("1" if g in genres else "0" for g in GENRES)


_U_ITEM = (
    b"\n".join(
        [
            b"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|"
            + _flags("Animation", "Children's", "Comedy").encode(),
            "2|Misérables, Les (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Mis%E9rables|".encode(
                "latin-1"
            )
            + _flags("Drama", "Musical").encode(),
            b"3|unknown||||" + _flags("unknown").encode(),
            b"4|Casablanca (1942)|01-Jan-1942||http://us.imdb.com/Title?Casablanca|"
            + _flags("Drama", "Romance", "War").encode(),
            b"5|Broken Date (1996)|31-Foo-1996||http://x|" + _flags("Comedy").encode(),
            b"6|this line is broken",
        ]
    )
    + b"\n"
)

_U_USER = b"1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|T8H1N\n"

_U_DATA = (
    b"\n".join(
        [
            b"1\t1\t5\t881250949",
            b"1\t2\t3\t881250950",
            b"2\t1\t4\t891717742",
            b"2\t1\t4\t891717742",  # exact duplicate
            b"3\t3\t2\t878887116",  # the "unknown" movie: clean
            b"3\t5\t4\t878887117",  # movie 5 is quarantined -> unknown item
            b"3\t99\t4\t878887118",  # no such movie
            b"2\t2\t7\t878887119",  # 7 stars
            b"1\tbroken line",
            b"3\t4\t3\tnot-a-time",
        ]
    )
    + b"\n"
)


def _by_asset(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["asset"]: r for r in results}


def _rows(ws: Workspace, sql: str) -> list[tuple[Any, ...]]:
    with Warehouse(ws, read_only=True) as wh:
        return wh.query(sql)[1]


@pytest.fixture
def ml_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.item").write_bytes(_U_ITEM)
    (folder / "u.user").write_bytes(_U_USER)
    (folder / "u.data").write_bytes(_U_DATA)
    return folder


@pytest.fixture
def ml_loaded(tmp_path: Path, ml_folder: Path) -> tuple[Workspace, dict[str, dict[str, Any]]]:
    ws = Workspace.at(tmp_path / "ws")
    return ws, _by_asset(ingest(ws, IngestRequest(ml_folder, "movielens")))


def test_movielens_writes_four_assets_in_order(tmp_path: Path, ml_folder: Path) -> None:
    results = ingest(Workspace.at(tmp_path / "ws"), IngestRequest(ml_folder, "movielens"))
    assert [r["asset"] for r in results] == ["items", "users", "events", "reviews"]
    for r in results:
        assert r["input_rows"] == r["clean_rows"] + r["quarantined_rows"] + r["duplicate_rows"]


def test_movielens_counts_and_reasons(ml_loaded: tuple[Workspace, dict[str, Any]]) -> None:
    _, res = ml_loaded
    assert res["items"]["input_rows"] == 6
    assert res["items"]["clean_rows"] == 4
    assert res["items"]["reasons"] == {"malformed_row": 1, "unparseable_updated_at": 1}
    assert res["users"]["clean_rows"] == 3
    assert res["users"]["reasons"] == {}
    expected = {
        "unknown_item": 2,
        "exact_duplicate": 1,
        "malformed_row": 1,
        "out_of_range_rating": 1,
        "unparseable_ts": 1,
    }
    for asset in ("events", "reviews"):
        assert res[asset]["input_rows"] == 10
        assert res[asset]["clean_rows"] == 4
        assert res[asset]["duplicate_rows"] == 1
        assert res[asset]["quarantined_rows"] == 5
        assert res[asset]["reasons"] == expected


def test_movielens_items_values(ml_loaded: tuple[Workspace, dict[str, Any]]) -> None:
    ws, _ = ml_loaded
    rows = _rows(
        ws,
        "SELECT item_id, title, category_path, tags, attributes, updated_at "
        "FROM items ORDER BY item_id",
    )
    by_id = {r[0]: r for r in rows}
    assert sorted(by_id) == ["1", "2", "3", "4"]
    toy = by_id["1"]
    assert toy[1] == "Toy Story (1995)"
    assert toy[2] == "Animation"
    assert toy[3] == ["Animation", "Children's", "Comedy"]
    assert json.loads(toy[4]) == {
        "imdb_url": "http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)",
        "year": 1995,
    }
    assert toy[5] == datetime(1995, 1, 1, tzinfo=UTC)
    assert by_id["2"][1] == "Misérables, Les (1995)"  # latin-1 decoded
    unknown = by_id["3"]  # title "unknown", no date, no URL, only the `unknown` genre
    assert (unknown[1], unknown[2], unknown[3], unknown[5]) == ("unknown", None, None, None)
    assert json.loads(unknown[4]) == {"imdb_url": None, "year": None}
    assert by_id["4"][5] == datetime(1942, 1, 1, tzinfo=UTC)  # old films are not anomalies


def test_movielens_quarantine_keeps_lines(ml_loaded: tuple[Workspace, dict[str, Any]]) -> None:
    ws, _ = ml_loaded
    rows = _rows(
        ws,
        "SELECT reason, source_line, raw FROM quarantine WHERE asset = 'items' "
        "ORDER BY source_line",
    )
    assert [(r[0], r[1]) for r in rows] == [("unparseable_updated_at", 5), ("malformed_row", 6)]
    assert "31-Foo-1996" in rows[0][2]
    ev = _rows(
        ws,
        "SELECT reason, source_line, raw FROM quarantine WHERE asset = 'events' "
        "ORDER BY source_line",
    )
    assert [(r[0], r[1]) for r in ev] == [
        ("unknown_item", 6),
        ("unknown_item", 7),
        ("out_of_range_rating", 8),
        ("malformed_row", 9),
        ("unparseable_ts", 10),
    ]
    assert all('"user_id":"3"' not in r[2] for r in ev if r[2])  # raw ids pseudonymized


def test_movielens_users_and_ratings(ml_loaded: tuple[Workspace, dict[str, Any]]) -> None:
    ws, _ = ml_loaded
    pseudo = ws.keys.load()
    users = {r[0]: r for r in _rows(ws, "SELECT user_id, attributes, created_at FROM users")}
    assert set(users) == {pseudo.pseudonymize(u) for u in ("1", "2", "3")}
    cipher = ws.field_cipher  # attributes are sealed at rest
    one = users[pseudo.pseudonymize("1")]
    assert json.loads(cipher.decrypt(one[1])) == {
        "age": 24,
        "gender": "M",
        "occupation": "technician",
        "zip_code": "85711",
    }
    assert one[2] == datetime.fromtimestamp(881250949, UTC)  # first rating
    three = users[pseudo.pseudonymize("3")]
    assert json.loads(cipher.decrypt(three[1]))["zip_code"] == "T8H1N"
    assert three[2] == datetime.fromtimestamp(878887116, UTC)
    ev = _rows(ws, "SELECT user_id, item_id, event_type, ts, value FROM events ORDER BY ts")
    assert ev[0] == (
        pseudo.pseudonymize("3"),
        "3",
        "rating",
        datetime.fromtimestamp(878887116, UTC),
        2.0,
    )
    assert sorted((r[1], r[4]) for r in ev) == [("1", 4.0), ("1", 5.0), ("2", 3.0), ("3", 2.0)]
    rv = _rows(ws, "SELECT item_id, rating, text, ts FROM reviews ORDER BY item_id, rating")
    assert [(r[0], r[1], r[2]) for r in rv] == [
        ("1", 4.0, None),
        ("1", 5.0, None),
        ("2", 3.0, None),
        ("3", 2.0, None),
    ]
    assert rv[0][3] == datetime.fromtimestamp(891717742, UTC)


def test_movielens_ratings_file_alone(tmp_path: Path, ml_folder: Path) -> None:
    ws = Workspace.at(tmp_path / "ws2")
    res = _by_asset(ingest(ws, IngestRequest(ml_folder / "u.data", "movielens")))
    assert list(res) == ["events", "reviews"]
    # no items asset yet, so no unknown-item check; the row-local rules still apply
    assert res["events"]["clean_rows"] == 6
    assert res["events"]["reasons"] == {
        "exact_duplicate": 1,
        "malformed_row": 1,
        "out_of_range_rating": 1,
        "unparseable_ts": 1,
    }


def test_movielens_rejects_folder_without_its_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"u\.data"):
        ingest(Workspace.at(tmp_path / "ws"), IngestRequest(tmp_path / "empty", "movielens"))


# -- Home Depot --------------------------------------------------------------------------------

_DEFIANT = b"Defiant 180\xe5\xa1 White Outdoor Light"  # Mac Roman bytes of UTF-8 read as cp1252
_DEERE = b'"John Deere Men\xe2\x80\x99s T-Shirt, Large"'.replace(
    b"\xe2\x80\x99", "â€™".encode("mac_roman")
)
_TRAIN = (
    b"\n".join(
        [
            b"id,product_uid,product_title,search_term,relevance",
            b"2,100001,Simpson Strong-Tie 12-Gauge Angle,angle bracket,3.0",
            b"3,100001,Simpson Strong-Tie 12-Gauge Angle,l bracket,2.5",
            b"9,100002," + _DEFIANT + b",motion light,3.0",
            b"10,100003," + _DEERE + b",Angle Bracket ,2.0",
            b"11,100003," + _DEERE + b",ge 8206232 bulb 1000-019-492,1.67",
            b"12,100004,Phone Holder,call 555-123-4567,1.0",
            b"13,100002," + _DEFIANT + b",motion light,2.33",
            b"13,100002," + _DEFIANT + b",motion light,2.33",
            b"14,100005,Bad Grade Hammer,hammer,4.5",
            b"15,100006,,empty title,2.0",
            b"16,100007,Broken",
        ]
    )
    + b"\n"
)


def _qid(term: str) -> str:
    return "q" + hashlib.md5(term.strip().lower().encode()).hexdigest()[:16]


@pytest.fixture
def hd_loaded(tmp_path: Path) -> tuple[Workspace, dict[str, dict[str, Any]]]:
    archive = tmp_path / "train.csv.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("train.csv", _TRAIN)
    ws = Workspace.at(tmp_path / "ws")
    return ws, _by_asset(ingest(ws, IngestRequest(archive, "home-depot")))


def test_home_depot_counts_and_reasons(hd_loaded: tuple[Workspace, dict[str, Any]]) -> None:
    _, res = hd_loaded
    assert list(res) == ["items", "queries", "judgments"]
    assert {
        a: (r["input_rows"], r["clean_rows"], r["quarantined_rows"], r["duplicate_rows"])
        for a, r in res.items()
    } == {"items": (11, 5, 2, 4), "queries": (11, 7, 1, 3), "judgments": (11, 7, 2, 2)}
    assert res["items"]["reasons"] == {
        "superseded": 3,
        "exact_duplicate": 1,
        "malformed_row": 1,
        "missing_title": 1,
    }
    assert res["queries"]["reasons"] == {"superseded": 2, "exact_duplicate": 1, "malformed_row": 1}
    assert res["judgments"]["reasons"] == {
        "exact_duplicate": 1,
        "malformed_row": 1,
        "out_of_range_relevance": 1,
        "superseded": 1,
    }


def test_home_depot_items_repair_titles(hd_loaded: tuple[Workspace, dict[str, Any]]) -> None:
    ws, _ = hd_loaded
    titles = dict(_rows(ws, "SELECT item_id, title FROM items"))
    assert titles == {
        "100001": "Simpson Strong-Tie 12-Gauge Angle",
        "100002": "Defiant 180° White Outdoor Light",
        "100003": "John Deere Men’s T-Shirt, Large",
        "100004": "Phone Holder",
        "100005": "Bad Grade Hammer",
    }


def test_home_depot_queries_and_judgments(hd_loaded: tuple[Workspace, dict[str, Any]]) -> None:
    ws, _ = hd_loaded
    queries = dict(_rows(ws, "SELECT query_id, query FROM queries"))
    assert queries[_qid("angle bracket")] == "Angle Bracket"  # same id; the latest text wins
    assert queries[_qid("ge 8206232 bulb 1000-019-492")] == "ge 8206232 bulb 1000-019-492"
    assert queries[_qid("call 555-123-4567")] == "call [PHONE]"
    assert len(queries) == 7
    judged = {(q, i): r for q, i, r in _rows(ws, "SELECT * FROM judgments")}
    assert judged[(_qid("motion light"), "100002")] == 2.33  # the later judgment wins
    assert judged[(_qid("angle bracket"), "100001")] == 3.0
    assert judged[(_qid("Angle Bracket "), "100003")] == 2.0
    assert all(1.0 <= r <= 3.0 for r in judged.values())
    with Warehouse(ws, read_only=True) as wh:
        version = wh.latest("queries")
        assert version is not None
        assert version.quality["pii_masked"] == {"email": 0, "card": 0, "phone": 1}


def test_home_depot_accepts_the_plain_csv_and_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "hd"
    folder.mkdir()
    (folder / "train.csv").write_bytes(_TRAIN)
    res = _by_asset(ingest(Workspace.at(tmp_path / "ws"), IngestRequest(folder, "home-depot")))
    assert res["judgments"]["clean_rows"] == 7


def test_home_depot_rejects_other_csv(tmp_path: Path) -> None:
    other = tmp_path / "train.csv"
    other.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="product_uid"):
        ingest(Workspace.at(tmp_path / "ws"), IngestRequest(other, "home-depot"))


def test_sql_helpers(duckdb_con: Any) -> None:
    sql = f"SELECT {query_id_sql('t')}, {repair_mojibake_sql('t')} FROM (SELECT ? AS t)"
    assert duckdb_con.execute(sql, ["  Deck Screws "]).fetchone()[0] == _qid("deck screws")
    assert duckdb_con.execute(sql, ["   "]).fetchone()[0] is None
    text = "30Â° ï»¿nail Â\u00a0gun â€“ 90Ë_"
    assert duckdb_con.execute(sql, [text]).fetchone()[1] == "30° nail  gun – 90°"
