"""Text standardization SQL: null markers, NFKC, HTML, whitespace, ids and event types."""

from __future__ import annotations

import re

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopkeeper.clean import norm_id, norm_text
from shopkeeper.clean._compat_chars import COMPAT_CLASS, FULLWIDTH_FROM, compat_class
from shopkeeper.clean._pii import _SQL_TRIM
from shopkeeper.clean._text import (
    NULL_MARKERS,
    has_replacement_char,
    is_null_or_marker,
    nfkc_sql,
    norm_event_type,
    null_if_marker,
)

_FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def _eval(con: duckdb.DuckDBPyConnection, sql_of: object, value: str | None) -> object:
    """Evaluate `sql_of("x")` with `x` bound to `value` as VARCHAR."""
    assert callable(sql_of)
    row = con.execute(f"SELECT {sql_of('x')} FROM (SELECT ?::VARCHAR AS x)", [value]).fetchone()
    assert row is not None
    return row[0]


# -- null markers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [*NULL_MARKERS, "  ", "NULL", " Null ", "NaN", "N/A", "NONE", "NaT", "\\N", "  nan  "],
)
def test_null_markers_become_null(duckdb_con, value) -> None:
    assert _eval(duckdb_con, null_if_marker, value) is None
    assert _eval(duckdb_con, norm_text, value) is None
    assert _eval(duckdb_con, norm_id, value) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "0"),
        ("  x  ", "x"),
        ("nil", "nil"),
        ("none of them", "none of them"),
        ("nano", "nano"),
        ("n/a/b", "n/a/b"),
        ("-", "-"),
    ],
)
def test_values_that_are_not_markers_are_trimmed_and_kept(duckdb_con, value, expected) -> None:
    assert _eval(duckdb_con, null_if_marker, value) == expected


# Characters around the fast paths: marker letters in both cases, the byte-range edges
# of the first-character test (`!`, `M`-`O`, `[`-`]`, `m`-`o`, `~`), ASCII and Unicode
# spaces, a tab, accented and full-width letters.
_MARKERISH = st.text(
    alphabet="nNaAlLuUoOeEtT/\\!MO[]mo~x7 \t\u00a0\u2009\u3000\u00e9\uff2e",
    max_size=8,
)


@_FIXTURE_OK
@given(raw=_MARKERISH)
def test_null_if_marker_is_trim_then_marker_check(duckdb_con, raw) -> None:
    """The first-character and trim-only-if-needed shortcuts change no result."""
    trimmed = raw.strip(_SQL_TRIM)
    expected = None if trimmed.lower() in NULL_MARKERS else trimmed
    assert _eval(duckdb_con, null_if_marker, raw) == expected
    assert _eval(duckdb_con, is_null_or_marker, raw) is (expected is None)


def test_null_stays_null(duckdb_con) -> None:
    for fn in (null_if_marker, norm_text, norm_id):
        assert _eval(duckdb_con, fn, None) is None


# -- norm_text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # NFKC: full-width forms, ligatures, compatibility digits and spaces
        ("ＡＢＣ１２３", "ABC123"),
        ("ﬁne ﬂour", "fine flour"),
        ("①②", "12"),
        ("Ｔｅａ\u3000Ｐｏｔ", "Tea Pot"),
        ("e\u0301", "\u00e9"),
        ("ＮＵＬＬ", None),
        # HTML tags stripped, entities decoded
        ("<p>Hello <b>world</b></p>", "Hello world"),
        ('<a href="x.html" class="y">link</a>', "link"),
        ("Fish &amp; Chips", "Fish & Chips"),
        ("5 &gt; 3", "5 > 3"),
        ("&quot;quoted&quot;", '"quoted"'),
        ("Tom&#39;s &apos;mug&apos;", "Tom's 'mug'"),
        ("a&nbsp;b", "a b"),
        ("&amp;lt;", "&lt;"),
        ("<br/><br/>", None),
        # whitespace collapsed and trimmed
        ("  a \t\n  b\r\n c  ", "a b c"),
        ("a\u00a0\u00a0b", "a b"),
        ("<li>one</li>\n<li>two</li>", "one two"),
    ],
)
def test_norm_text(duckdb_con, raw, expected) -> None:
    assert _eval(duckdb_con, norm_text, raw) == expected


def test_nfkc_udf_handles_nulls(duckdb_con) -> None:
    rows = duckdb_con.execute("SELECT nfkc(x) FROM (VALUES ('ﬁ'), (NULL), ('Ａ')) t(x)").fetchall()
    assert rows == [("fi",), (None,), ("A",)]


def test_compat_class_is_what_the_normalizer_says() -> None:
    # Fails when pyarrow's Unicode tables change: regenerate COMPAT_CLASS with compat_class().
    assert compat_class() == COMPAT_CLASS


_COMPAT_PIECES = st.sampled_from(
    [
        *FULLWIDTH_FROM[::7],
        "\u00a0",
        "\ufb01",
        "\u2163",
        "\u00bd",
        "\u3000",
        "\u2460",
        "\uff76\uff9e",
        "\u0301",
        "e",
        "\u00e9",
        "\u212b",
        "\u1e9b\u0323",
        "\U0001d400",
        " ",
        "a",
        "1",
    ]
)


@_FIXTURE_OK
@given(text=st.one_of(st.text(max_size=30), st.lists(_COMPAT_PIECES, max_size=10).map("".join)))
def test_nfkc_sql_is_nfkc(duckdb_con, text) -> None:
    # The fast path (translate + NFC) and the UDF together give exactly pyarrow's NFKC.
    expected = pc.utf8_normalize(pa.array([text]), "NFKC")[0].as_py()
    assert _eval(duckdb_con, nfkc_sql, text) == expected


_HTML_FRAGMENTS = st.sampled_from(
    [
        "<b>",
        "</b>",
        "<p class='x'>",
        "<br/>",
        "&nbsp;",
        "&quot;",
        "&#39;",
        "&apos;",
        " ",
        "\t",
        "\n",
        "  ",
        "ﬁ",
        "Ａ",
        "\u3000",
        "①",
        "null",
        "N/A",
        "e\u0301",
        "<",
        ">",
        "&",
    ]
)
_TEXT = st.one_of(
    st.text(max_size=40),
    st.lists(st.one_of(_HTML_FRAGMENTS, st.text(alphabet="ab é1", max_size=4)), max_size=12).map(
        "".join
    ),
)


@_FIXTURE_OK
@given(text=_TEXT)
def test_norm_text_is_idempotent(duckdb_con, text) -> None:
    once = _eval(duckdb_con, norm_text, text)
    assert once is None or isinstance(once, str)
    twice = _eval(duckdb_con, norm_text, once)
    assert twice == once


@_FIXTURE_OK
@given(text=_TEXT)
def test_norm_text_output_is_trimmed_and_single_spaced(duckdb_con, text) -> None:
    out = _eval(duckdb_con, norm_text, text)
    if out is not None:
        assert isinstance(out, str)
        assert out == out.strip(" ")
        assert not re.search(r"[ \t\n\r\f]{2}|[\t\n\r\f]", out)
        assert out.lower() not in NULL_MARKERS


# -- norm_id ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("17850.0", "17850"),
        (" 17850.00 ", "17850"),
        ("-3.0", "-3"),
        ("0.0", "0"),
        ("0017.0", "0017"),
        ("17850", "17850"),
        ("17850.5", "17850.5"),
        ("12.30", "12.30"),
        ("1e3", "1e3"),
        ("A17850.0", "A17850.0"),
        ("17850.0x", "17850.0x"),
        (".0", ".0"),
        ("1.", "1."),
        ("SKU-1.0", "SKU-1.0"),
        ("85123A", "85123A"),
    ],
)
def test_norm_id(duckdb_con, raw, expected) -> None:
    assert _eval(duckdb_con, norm_id, raw) == expected


def test_norm_id_reads_numeric_columns(duckdb_con) -> None:
    row = duckdb_con.execute(
        f"SELECT {norm_id('d')}, {norm_id('i')} FROM (SELECT 17850.0::DOUBLE AS d, 42 AS i)"
    ).fetchone()
    assert row == ("17850", "42")


@_FIXTURE_OK
@given(n=st.integers(min_value=-(10**12), max_value=10**12), zeros=st.integers(1, 4))
def test_norm_id_drops_a_zero_fraction(duckdb_con, n, zeros) -> None:
    assert _eval(duckdb_con, norm_id, f"{n}.{'0' * zeros}") == str(n)


_ID = st.text(alphabet="0123456789abcXYZ.-_/ ", min_size=1, max_size=12)


@_FIXTURE_OK
@given(raw=_ID)
def test_norm_id_leaves_other_ids_alone(duckdb_con, raw) -> None:
    trimmed = raw.strip(" ")
    if trimmed.lower() in NULL_MARKERS:
        assert _eval(duckdb_con, norm_id, raw) is None
        return
    expected = re.sub(r"^(-?[0-9]+)\.0+\Z", r"\1", trimmed)
    out = _eval(duckdb_con, norm_id, raw)
    assert out == expected
    assert _eval(duckdb_con, norm_id, out) == out


# -- event types and encoding ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("View", "view"),
        (" ADD TO CART ", "add_to_cart"),
        ("add-to-cart", "add_to_cart"),
        ("remove  from - cart", "remove_from_cart"),
        ("null", None),
    ],
)
def test_norm_event_type_without_value_map(duckdb_con, raw, expected) -> None:
    assert _eval(duckdb_con, lambda x: norm_event_type(x, None), raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("PV", "view"),
        (" pv ", "view"),
        ("Buy", "purchase"),
        ("it's", "it''s ok"),
        ("Add to cart", "add_to_cart"),
    ],
)
def test_norm_event_type_applies_the_value_map_case_insensitively(
    duckdb_con, raw, expected
) -> None:
    values = {"pv": "view", "buy": "purchase", "it's": "it''s ok"}
    assert _eval(duckdb_con, lambda x: norm_event_type(x, values), raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [("ok", False), ("bro\ufffdken", True)])
def test_has_replacement_char(duckdb_con, raw, expected) -> None:
    assert _eval(duckdb_con, has_replacement_char, raw) is expected
