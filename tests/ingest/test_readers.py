"""Staging files into DuckDB: every format, malformed lines, and each record's `_line`."""

from __future__ import annotations

import gzip
import json
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopkeeper.errors import IngestError
from shopkeeper.ingest import ReadOptions, StagedTable, inspect_source, stage_source
from shopkeeper.ingest._readers import MALFORMED_SHARE_LIMIT


def _stage(
    con: duckdb.DuckDBPyConnection, path: Path, table: str = "s", **read: Any
) -> tuple[StagedTable, list[dict[str, Any]], list[tuple[Any, ...]]]:
    """Stage `path`; return the table, its rows (with `_line`) and its (line, reason) rejects."""
    src = inspect_source(path, read.get("encoding"))
    staged = stage_source(con, src, ReadOptions(**read), table, path.parent / "tmp")
    cur = con.execute(f"SELECT * FROM {staged.from_sql()} ORDER BY _ord")
    names = [d[0] for d in cur.description or []]
    rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    rejects = con.execute(f"SELECT line, reason FROM {staged.rejects} ORDER BY line").fetchall()
    return staged, rows, rejects


def _write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


# -- CSV ---------------------------------------------------------------------------------------


def test_csv_header_is_line_one(duckdb_con, tmp_path) -> None:
    p = _write(tmp_path / "e.csv", "a,b\n1,x\n2,y\n3,z\n")
    staged, rows, rejects = _stage(duckdb_con, p)
    assert staged.columns == ["a", "b"]
    assert (staged.header_lines, staged.rows, staged.rejected) == (1, 3, 0)
    assert staged.delimiter == ","
    assert [(r["a"], r["_line"]) for r in rows] == [("1", 2), ("2", 3), ("3", 4)]
    assert [r["_ord"] for r in rows] == [1, 2, 3]
    assert rejects == []


def test_csv_values_stay_text(duckdb_con, tmp_path) -> None:
    p = _write(tmp_path / "e.csv", 'id,price,when\n007,1.50,2024-01-01\n"8,9",,\n')
    _, rows, _ = _stage(duckdb_con, p)
    assert [(r["id"], r["price"], r["when"]) for r in rows] == [
        ("007", "1.50", "2024-01-01"),
        ("8,9", None, None),
    ]


def test_csv_without_header_uses_given_names(duckdb_con, tmp_path) -> None:
    p = _write(tmp_path / "u.data", "196\t242\t3\n186\t302\t3\n")
    staged, rows, _ = _stage(duckdb_con, p, column_names=["user", "item", "rating"])
    assert staged.columns == ["user", "item", "rating"]
    assert staged.header_lines == 0
    assert [(r["user"], r["_line"]) for r in rows] == [("196", 1), ("186", 2)]


def test_csv_header_false_counts_from_one(duckdb_con, tmp_path) -> None:
    p = _write(tmp_path / "e.csv", "a,b\n1,x\n")
    staged, rows, _ = _stage(duckdb_con, p, header=False)
    assert staged.header_lines == 0
    assert [(r["column0"], r["_line"]) for r in rows] == [("a", 1), ("1", 2)]


@pytest.mark.parametrize(
    ("name", "delim"),
    [
        ("e.csv", ";"),
        ("e.csv", "|"),
        ("e.csv", "\t"),
        ("e.tsv", "\t"),
        ("e.psv", "|"),
        ("e.txt", ";"),
    ],
)
def test_csv_delimiter_is_sniffed(duckdb_con, tmp_path, name, delim) -> None:
    text = (
        "\n".join(delim.join(r) for r in [("a", "b", "c"), ("1", "x y", "3"), ("4", "5,5", "6")])
        + "\n"
    )
    staged, rows, _ = _stage(duckdb_con, _write(tmp_path / name, text))
    assert staged.columns == ["a", "b", "c"]
    assert staged.delimiter == delim
    assert [(r["a"], r["b"], r["c"], r["_line"]) for r in rows] == [
        ("1", "x y", "3", 2),
        ("4", "5,5", "6", 3),
    ]


def test_csv_leading_blank_lines_count(duckdb_con, tmp_path) -> None:
    p = _write(tmp_path / "e.csv", "\n\na,b\n4,x\n5,y,z\n6,w\n")
    staged, rows, rejects = _stage(duckdb_con, p)
    assert staged.columns == ["a", "b"]
    assert rejects == [(5, "malformed_row")]
    assert [(r["a"], r["_line"]) for r in rows] == [("4", 4), ("6", 6)]


@pytest.mark.xfail(
    reason="DuckDB skips blank lines inside a CSV without reporting them, so "
    "later records get lines too small (known limitation)",
    strict=True,
)
def test_csv_blank_lines_inside_the_file_count(duckdb_con, tmp_path) -> None:
    p = _write(tmp_path / "e.csv", "a,b\n2,x\n\n4,y\n")
    _, rows, _ = _stage(duckdb_con, p)
    assert [(r["a"], r["_line"]) for r in rows] == [("2", 2), ("4", 4)]


def test_csv_explicit_delimiter(duckdb_con, tmp_path) -> None:
    p = _write(tmp_path / "e.csv", "a:b\n1:2\n")
    staged, rows, _ = _stage(duckdb_con, p, delimiter=":")
    assert staged.columns == ["a", "b"]
    assert rows[0]["b"] == "2"


def test_crlf_line_endings(duckdb_con, tmp_path) -> None:
    p = _write(tmp_path / "e.csv", "a,b\r\n1,x\r\n2,y,z\r\n3,w\r\n")
    _, rows, rejects = _stage(duckdb_con, p)
    assert [(r["a"], r["_line"]) for r in rows] == [("1", 2), ("3", 4)]
    assert rejects == [(3, "malformed_row")]


@pytest.mark.parametrize(
    ("encoding", "value"),
    [
        ("utf-8", "café “q”"),
        ("utf-8-sig", "café “q”"),
        ("latin-1", "café"),
        ("cp1252", "café “q” €"),
        ("utf-16", "café “q”"),
    ],
)
def test_csv_encodings(duckdb_con, tmp_path, encoding, value) -> None:
    p = _write(tmp_path / "e.csv", f"name,n\n{value},1\n".encode(encoding))
    staged, rows, _ = _stage(duckdb_con, p)
    assert staged.columns == ["name", "n"]
    assert [(r["name"], r["_line"]) for r in rows] == [(value, 2)]


def test_gzip_csv(duckdb_con, tmp_path) -> None:
    p = _write(tmp_path / "e.csv.gz", gzip.compress("a;b\n“1”;2\n".encode("cp1252")))
    staged, rows, _ = _stage(duckdb_con, p)
    assert staged.columns == ["a", "b"]
    assert [(r["a"], r["_line"]) for r in rows] == [("“1”", 2)]


def test_gzip_tsv(duckdb_con, tmp_path) -> None:
    p = _write(tmp_path / "e.tsv.gz", gzip.compress(b"a\tb\n1,5\t2\n"))
    staged, rows, _ = _stage(duckdb_con, p)
    assert staged.columns == ["a", "b"]
    assert rows[0]["a"] == "1,5"


def test_zip_csv(duckdb_con, tmp_path) -> None:
    p = tmp_path / "e.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("dir/events.csv", "a|b\n1|2\n3|4|5\n6|7\n".encode("latin-1"))
    staged, rows, rejects = _stage(duckdb_con, p)
    assert staged.source.member == "dir/events.csv"
    assert [(r["a"], r["_line"]) for r in rows] == [("1", 2), ("6", 4)]
    assert rejects == [(3, "malformed_row")]


def test_header_only_csv_is_an_ingest_error(duckdb_con, tmp_path) -> None:
    with pytest.raises(IngestError, match="no records"):
        _stage(duckdb_con, _write(tmp_path / "e.csv", "a,b,c\n"))


# -- malformed CSV lines ---------------------------------------------------------------------


def test_wrong_field_counts_are_malformed_rows_with_their_lines(duckdb_con, tmp_path) -> None:
    lines = [
        "id,name,n",
        "2,a,2",
        "3,b,3",
        "bad",
        "bad,bad",
        "6,f,6",
        "7,g,7",
        "8,h,8",
        "9,i,9,extra",
        "10,j,10",
        "11,k,11,x,y",
        "12,l,12",
    ]
    p = _write(tmp_path / "e.csv", "\n".join(lines) + "\n")
    staged, rows, rejects = _stage(duckdb_con, p)
    assert rejects == [
        (4, "malformed_row"),
        (5, "malformed_row"),
        (9, "malformed_row"),
        (11, "malformed_row"),
    ]
    assert (staged.rows, staged.rejected) == (7, 4)
    # each accepted row's id is its line number in the file
    assert [r["_line"] for r in rows] == [int(r["id"]) for r in rows]
    assert [r["_line"] for r in rows] == [2, 3, 6, 7, 8, 10, 12]
    detail = duckdb_con.execute(
        f"SELECT detail, raw FROM {staged.rejects} WHERE line = 9"
    ).fetchone()
    assert detail is not None
    assert "Expected Number of Columns" in detail[0]
    assert detail[1] == "9,i,9,extra"


def test_invalid_utf8_is_an_encoding_reject(duckdb_con, tmp_path) -> None:
    p = _write(tmp_path / "e.csv", b"id,name\n2,ok\n3,bad \xff\xfe here\n4,ok\n")
    staged, rows, rejects = _stage(duckdb_con, p, encoding="utf-8")
    assert rejects == [(3, "invalid_encoding")]
    assert [(r["id"], r["_line"]) for r in rows] == [("2", 2), ("4", 4)]
    assert staged.rejected == 1


_BAD = {"too_many": "{n},x,{n},extra", "too_few": "{n}", "far_too_many": "{n},a,b,c,d,e"}


@settings(max_examples=40, deadline=None)
@given(
    n_good=st.integers(min_value=1, max_value=25),
    bad=st.lists(
        st.tuples(st.integers(min_value=0, max_value=30), st.sampled_from(sorted(_BAD))),
        max_size=10,
    ),
    header=st.booleans(),
)
def test_lines_stay_right_wherever_the_bad_lines_are(n_good, bad, header) -> None:
    """Accepted rows carry their own line number in `id`: `_line` must equal it."""
    body: list[str | None] = [None] * n_good
    for pos, kind in sorted(bad, reverse=True):
        # DuckDB takes the column count of a headerless file from its first line
        body.insert(max(min(pos, len(body)), 0 if header else 1), kind)
    first = 2 if header else 1
    lines = ["id,name,n"] if header else []
    bad_lines = []
    for offset, item in enumerate(body):
        n = first + offset
        if item is None:
            lines.append(f"{n},name{n},{n}")
        else:
            lines.append(_BAD[item].format(n=n))
            bad_lines.append(n)
    read: dict[str, Any] = {"delimiter": ","}
    if header:
        read["header"] = True
    else:
        read["column_names"] = ["id", "name", "n"]
    with tempfile.TemporaryDirectory() as tmp:
        p = _write(Path(tmp) / "e.csv", "\n".join(lines) + "\n")
        con = duckdb.connect()
        try:
            staged, rows, rejects = _stage(con, p, **read)
        finally:
            con.close()
    assert rejects == [(line, "malformed_row") for line in bad_lines]
    assert [r["_line"] for r in rows] == [int(r["id"]) for r in rows]
    assert staged.rows + staged.rejected == len(body)


def test_mostly_malformed_file_is_refused(duckdb_con, tmp_path) -> None:
    lines = ["a,b,c"] + ["1;2;3"] * 12 + ["1,2,3"] * 3
    p = _write(tmp_path / "e.csv", "\n".join(lines) + "\n")
    with pytest.raises(IngestError, match="malformed") as info:
        _stage(duckdb_con, p, delimiter=",", header=True)
    assert info.value.line == 2
    assert info.value.path == str(p)


def test_a_few_malformed_lines_are_tolerated(duckdb_con, tmp_path) -> None:
    # more than half malformed, but no more than 10: quarantined, not refused
    lines = ["a,b,c", "1,2,3"] + ["x"] * 9
    staged, rows, _ = _stage(
        duckdb_con, _write(tmp_path / "e.csv", "\n".join(lines)), delimiter=",", header=True
    )
    assert staged.rejected == 9 > MALFORMED_SHARE_LIMIT * 10
    assert len(rows) == 1


# -- JSON and JSON lines ---------------------------------------------------------------------


def test_json_array(duckdb_con, tmp_path) -> None:
    data = [{"id": "a", "price": 1.5, "tags": ["x", "y"]}, {"id": "b", "price": 2}]
    staged, rows, rejects = _stage(duckdb_con, _write(tmp_path / "items.json", json.dumps(data)))
    assert staged.columns == ["id", "price", "tags"]
    assert [(r["id"], r["price"], r["_line"]) for r in rows] == [("a", 1.5, 1), ("b", 2.0, 2)]
    assert rows[0]["tags"] == '["x","y"]'  # nested values are staged as JSON text
    assert rejects == []


def test_json_array_with_mixed_types_is_staged_as_plain_text(duckdb_con, tmp_path) -> None:
    data = [
        {"id": 17, "price": "3.5", "meta": {"k": [1, "a, b"]}, "flag": None},
        {"id": "B-2", "price": 4, "meta": "plain", "flag": True},
    ]
    _, rows, _ = _stage(duckdb_con, _write(tmp_path / "items.json", json.dumps(data)))
    assert [(r["id"], r["price"], r["meta"], r["flag"]) for r in rows] == [
        ("17", "3.5", '{"k":[1,"a, b"]}', None),
        ("B-2", "4", "plain", True),
    ]


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252", "utf-16"])
def test_json_array_in_other_encodings(duckdb_con, tmp_path, encoding) -> None:
    text = json.dumps([{"title": "café"}], ensure_ascii=False)
    _, rows, _ = _stage(duckdb_con, _write(tmp_path / "items.json", text.encode(encoding)))
    assert rows[0]["title"] == "café"


def test_json_lines_named_dot_json(duckdb_con, tmp_path) -> None:
    p = _write(tmp_path / "reviews.json", '{"id": "a"}\n{"id": \n{"id": "c"}\n')
    _, rows, rejects = _stage(duckdb_con, p)
    assert [(r["id"], r["_line"]) for r in rows] == [("a", 1), ("c", 3)]
    assert rejects == [(2, "malformed_row")]


def test_gzip_json_array(duckdb_con, tmp_path) -> None:
    p = _write(tmp_path / "items.json.gz", gzip.compress(b'[{"id": 1}, {"id": 2}]'))
    _, rows, _ = _stage(duckdb_con, p)
    assert [r["id"] for r in rows] == [1, 2]


def test_jsonl_with_broken_lines(duckdb_con, tmp_path) -> None:
    text = (
        '{"id": "a", "n": 1}\n'
        '{"id": "b", "n": \n'
        "\n"
        '{"id": "c", "extra": {"k": [1, 2]}}\n'
        "[1, 2]\n"
        '"just a string"\n'
        "   \n"
        '{"n": 7, "id": "g"}\n'
    )
    staged, rows, rejects = _stage(duckdb_con, _write(tmp_path / "events.jsonl", text))
    assert staged.columns == ["id", "n", "extra"]
    assert [(r["id"], r["_line"]) for r in rows] == [("a", 1), ("c", 4), ("g", 8)]
    assert rows[1]["extra"] == '{"k":[1,2]}'
    assert rows[2]["n"] == "7"
    assert rejects == [(2, "malformed_row"), (5, "malformed_row"), (6, "malformed_row")]
    assert (staged.rows, staged.rejected) == (3, 3)  # blank lines are not records


def test_jsonl_leading_spaces_and_keys_seen_only_there(duckdb_con, tmp_path) -> None:
    text = '{"id": "a"}\n  {"id": "b", "late": 1}\n'
    staged, rows, _ = _stage(duckdb_con, _write(tmp_path / "e.jsonl", text))
    assert staged.columns == ["id", "late"]
    assert [(r["id"], r["late"], r["_line"]) for r in rows] == [("a", None, 1), ("b", "1", 2)]


def test_jsonl_keys_named_like_internal_columns(duckdb_con, tmp_path) -> None:
    # the stage orders by line number: a key called `n`, `r` or `l` must not take its place
    text = "".join(
        f'{{"id": "{i}", "n": {9 - i}, "r": {9 - i}, "l": "z{i}"}}\n' for i in range(1, 6)
    )
    staged, rows, _ = _stage(duckdb_con, _write(tmp_path / "e.jsonl", "{broken\n" + text))
    assert staged.columns == ["id", "n", "r", "l"]
    assert [(r["id"], r["l"], r["_line"]) for r in rows] == [
        (str(i), f"z{i}", i + 1) for i in range(1, 6)
    ]


def test_jsonl_leading_blank_lines_count(duckdb_con, tmp_path) -> None:
    _, rows, _ = _stage(duckdb_con, _write(tmp_path / "e.jsonl", '\n\n{"id": 3}\n'))
    assert [(r["id"], r["_line"]) for r in rows] == [("3", 3)]


def test_jsonl_bad_encoding_keeps_later_lines_right(duckdb_con, tmp_path) -> None:
    text = b'{"id": 1}\n{"id": "\xff"}\n{"id": 3}\n{"id": 4,\n\n{"id": 6}\n'
    _, rows, rejects = _stage(duckdb_con, _write(tmp_path / "e.jsonl", text), encoding="utf-8")
    assert rejects == [(2, "invalid_encoding"), (4, "malformed_row")]
    assert [(r["id"], r["_line"]) for r in rows] == [("1", 1), ("3", 3), ("6", 6)]


def test_blank_lines_do_not_count_as_malformed(duckdb_con, tmp_path) -> None:
    text = '{"id": 1}\n' + "\n" * 20 + '{"id": 22}\n' + "\n" * 5
    staged, rows, rejects = _stage(duckdb_con, _write(tmp_path / "e.jsonl", text))
    assert (staged.rows, staged.rejected) == (2, 0)
    assert rejects == []
    assert [(r["id"], r["_line"]) for r in rows] == [("1", 1), ("22", 22)]


_JSONL_BAD = {
    "broken": '{{"id": {n},',
    "array": "[{n}]",
    "blank": "",
    "spaces": "   ",
    "scalar": "{n}",
}


@settings(max_examples=30, deadline=None)
@given(
    n_good=st.integers(min_value=1, max_value=20),
    bad=st.lists(
        st.tuples(st.integers(min_value=0, max_value=25), st.sampled_from(sorted(_JSONL_BAD))),
        max_size=10,
    ),
)
def test_jsonl_lines_stay_right_wherever_the_bad_lines_are(n_good, bad) -> None:
    body: list[str | None] = [None] * n_good
    for pos, kind in sorted(bad, reverse=True):
        body.insert(min(pos, len(body)), kind)
    lines, malformed = [], []
    for n, item in enumerate(body, start=1):
        lines.append(f'{{"id": {n}}}' if item is None else _JSONL_BAD[item].format(n=n))
        if item is not None and item not in ("blank", "spaces"):
            malformed.append(n)
    with tempfile.TemporaryDirectory() as tmp:
        con = duckdb.connect()
        try:
            staged, rows, rejects = _stage(
                con, _write(Path(tmp) / "e.jsonl", "\n".join(lines) + "\n")
            )
        finally:
            con.close()
    assert rejects == [(n, "malformed_row") for n in malformed]
    assert [r["_line"] for r in rows] == [int(r["id"]) for r in rows]
    assert (staged.rows, staged.rejected) == (n_good, len(malformed))


def test_jsonl_in_latin1_and_gzip(duckdb_con, tmp_path) -> None:
    text = '{"title": "café"}\n{"title": "naïve"}\n'
    p = _write(tmp_path / "e.jsonl.gz", gzip.compress(text.encode("latin-1")))
    _, rows, _ = _stage(duckdb_con, p)
    assert [(r["title"], r["_line"]) for r in rows] == [("café", 1), ("naïve", 2)]


def test_jsonl_without_objects_is_refused(duckdb_con, tmp_path) -> None:
    with pytest.raises(IngestError):
        _stage(duckdb_con, _write(tmp_path / "e.jsonl", "[1]\n[2]\n"))


def test_mostly_broken_jsonl_is_refused(duckdb_con, tmp_path) -> None:
    text = '{"a": 1}\n' + '{"a": \n' * 12
    with pytest.raises(IngestError, match="12 of 13 records are malformed"):
        _stage(duckdb_con, _write(tmp_path / "e.jsonl", text))


# -- Parquet ---------------------------------------------------------------------------------


def test_parquet(duckdb_con, tmp_path) -> None:
    table = pa.table(
        {
            "id": ["a", "b", "c"],
            "price": [1.5, None, 3.0],
            "ts": pa.array([datetime(2024, 1, 1, 10, tzinfo=UTC)] * 3, pa.timestamp("us", "UTC")),
        }
    )
    p = tmp_path / "items.parquet"
    pq.write_table(table, p)
    staged, rows, rejects = _stage(duckdb_con, p)
    assert staged.columns == ["id", "price", "ts"]
    assert [(r["id"], r["price"], r["_line"]) for r in rows] == [
        ("a", 1.5, 1),
        ("b", None, 2),
        ("c", 3.0, 3),
    ]
    assert rejects == []


def test_parquet_lists_and_structs_are_staged_as_json_text(duckdb_con, tmp_path) -> None:
    table = pa.table({"id": ["a"], "tags": [["red", "kitchen, home"]], "dims": [{"w": 1.5}]})
    p = tmp_path / "items.parquet"
    pq.write_table(table, p)
    _, rows, _ = _stage(duckdb_con, p)
    assert (rows[0]["tags"], rows[0]["dims"]) == ('["red","kitchen, home"]', '{"w":1.5}')


def test_broken_parquet_is_an_ingest_error(duckdb_con, tmp_path) -> None:
    with pytest.raises(IngestError, match="cannot read as parquet"):
        _stage(duckdb_con, _write(tmp_path / "items.parquet", b"PAR1 this is not parquet"))
