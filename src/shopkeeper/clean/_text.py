"""SQL for text standardization: NFKC, HTML, whitespace and literal null markers.

The SQL is plain (lower, trim, regexp_replace, CASE) so SQLGlot transpiles it to
Spark; NFKC is a vectorized Arrow UDF named `nfkc` that each engine registers, called
only for text that needs it (`nfkc_sql`).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from duckdb import func

from shopkeeper.clean._compat_chars import COMPAT_CLASS, FULLWIDTH_FROM, FULLWIDTH_TO

NULL_MARKERS = ("", "nan", "null", "none", "n/a", "\\n", "nat")
"""Values that mean missing, compared after trim and lower-casing."""
_TRIMMED = "[ \\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{202f}\\x{205f}\\x{3000}]*"
"""What trim() removes (the Unicode space separators), as a regex."""
_MARKERS_RE = "(nan|null|none|n/a|\\\\n|nat)"
NULL_MARKER_RE = f"(?i){_TRIMMED}{_MARKERS_RE}?{_TRIMMED}"
"""A value that is only a null marker (or nothing), with surrounding whitespace."""

_ENTITIES = (
    ("&nbsp;", " "),
    ("&lt;", "<"),
    ("&gt;", ">"),
    ("&quot;", '"'),
    ("&#39;", "'"),
    ("&apos;", "'"),
    ("&amp;", "&"),
)


def _nfkc(values: pa.Array) -> pa.Array:
    return pc.utf8_normalize(values, form="NFKC")


def register_text_functions(con: duckdb.DuckDBPyConnection) -> None:
    """Register the `nfkc` UDF on a connection (Arrow in, Arrow out, no per-row Python)."""
    con.create_function(
        "nfkc",
        _nfkc,
        ["VARCHAR"],
        "VARCHAR",
        type=func.ARROW,
        null_handling=func.SPECIAL,
        side_effects=False,
    )


def cannot_be_marker(expr: str) -> str:
    """True when the text starts with a character no null marker starts with.

    A marker (after optional spaces) starts with `n`, `N`, a backslash, a space or a
    non-ASCII space, or is empty; any other printable ASCII first character rules it
    out. Byte-order comparisons of the string's inlined prefix cost far less than the
    regex, which then runs only on the few values left (inside a CASE, whose later
    branches see only the rows earlier ones did not take).

    >>> import duckdb
    >>> con = duckdb.connect()
    >>> [con.execute(f"SELECT {cannot_be_marker('$1')}", [v]).fetchone()[0]
    ...  for v in ["17850", "view", "nan", "NULL", "", " x", "\\n", "\u3000", "o"]]
    [True, True, False, False, False, False, False, False, True]
    """
    return (
        f"(({expr} >= '!' AND {expr} < 'N') OR ({expr} >= 'O' AND {expr} < '\\') "
        f"OR ({expr} >= ']' AND {expr} < 'n') OR ({expr} >= 'o' AND {expr} < chr(127)))"
    )


def is_null_or_marker(expr: str) -> str:
    """True when the value is NULL or only a null marker (with spaces around it).

    >>> import duckdb
    >>> con = duckdb.connect()
    >>> [con.execute(f"SELECT {is_null_or_marker('$1')}", [v]).fetchone()[0]
    ...  for v in [None, " NaN ", "n/a", "none", "nano", "7", ""]]
    [True, True, True, True, False, False, True]
    """
    return (
        f"CASE WHEN {expr} IS NULL THEN true WHEN {cannot_be_marker(expr)} THEN false "
        f"ELSE regexp_full_match({expr}, '{NULL_MARKER_RE}') END"
    )


def null_if_marker(expr: str) -> str:
    """NULL when the trimmed, lower-cased value is a null marker.

    One anchored regex matches a marker in any case with the spaces around it. Values
    whose first character no marker starts with skip the regex (`cannot_be_marker`),
    and are trimmed only where trimming can change them (`_trim_end`): together
    less than half the cost on typical columns.

    >>> null_if_marker("x").startswith("CASE WHEN ((x >= '!'")
    True
    """
    return (
        f"CASE WHEN {cannot_be_marker(expr)} THEN {_trim_end(expr)} "
        f"WHEN regexp_full_match({expr}, '{NULL_MARKER_RE}') THEN NULL ELSE trim({expr}) END"
    )


def _trim_end(expr: str) -> str:
    """`trim(expr)` for text known not to start with a space: only where it can change it.

    trim() copies every value; a text without a trailing ASCII space and without any
    non-ASCII character (byte length = character length) is returned as it is. Halves
    the cost of `null_if_marker` on typical columns.
    """
    return (
        f"CASE WHEN NOT ends_with({expr}, ' ') AND strlen({expr}) = length({expr}) "
        f"THEN {expr} ELSE trim({expr}) END"
    )


def norm_id(expr: str) -> str:
    """An identifier: trimmed, null markers removed, `17850.0` read as `17850`."""
    x = null_if_marker(f"CAST({expr} AS VARCHAR)")
    stripped = f"regexp_replace({x}, '^(-?[0-9]+)\\.0+$', '\\1')"
    return f"CASE WHEN contains({x}, '.') THEN {stripped} ELSE {x} END"


def nfkc_sql(expr: str) -> str:
    """NFKC of a text, calling the `nfkc` UDF only where NFC and a translation can't do.

    Text without compatibility characters other than fullwidth ASCII and the no-break
    space (`_compat_chars`) is translated and NFC-normalized by DuckDB's built-ins: a
    third of the cost on the benchmark's queries, where every 2,048-row vector holds a
    few fullwidth letters and so paid a UDF call.

    >>> import duckdb
    >>> con = duckdb.connect()
    >>> register_text_functions(con)
    >>> [con.execute(f"SELECT {nfkc_sql('$1')}", [v]).fetchone()[0]
    ...  for v in ["\uff34\uff45st\u00a0x", "\ufb01ne \u2163", "e\u0301", "plain"]]
    ['Test x', 'fine IV', '\xe9', 'plain']
    """
    src = FULLWIDTH_FROM.replace("'", "''")
    dst = FULLWIDTH_TO.replace("'", "''")
    return (
        f"CASE WHEN regexp_matches({expr}, '[{COMPAT_CLASS}]') THEN nfkc({expr}) "
        f"ELSE nfc_normalize(translate({expr}, '{src}', '{dst}')) END"
    )


def norm_text(expr: str) -> str:
    """Free text: NFKC, HTML tags stripped, entities decoded, whitespace collapsed.

    Plain printable ASCII with single spaces and no markup skips the work: the
    common case costs one regex test.
    """
    x = null_if_marker(f"CAST({expr} AS VARCHAR)")
    s = nfkc_sql(x)
    s = f"regexp_replace({s}, '<[^>]*>', ' ', 'g')"
    for entity, char in _ENTITIES:
        s = f"replace({s}, '{entity}', '{char.replace(chr(39), chr(39) * 2)}')"
    s = f"trim(regexp_replace({s}, '\\s+', ' ', 'g'))"
    # `s` is trimmed already; naming it once (not in a CASE test and again in its
    # branch) keeps DuckDB from evaluating the whole chain twice.
    full = f"nullif(regexp_replace({s}, '(?i)^{_MARKERS_RE}$', ''), '')"
    return f"CASE WHEN regexp_matches({x}, '[^ -~]|[<&]|\\s\\s') THEN {full} ELSE {x} END"


def norm_event_type(expr: str, values: dict[str, str] | None) -> str:
    """Lower case, spaces and dashes as `_`, then the mapping's value map."""
    return event_type_sql(f"lower({null_if_marker(f'CAST({expr} AS VARCHAR)')})", values)


def event_type_sql(lowered: str, values: dict[str, str] | None) -> str:
    """Spaces and dashes as `_`, then the value map, over already lower-cased text."""
    spaced = f"regexp_replace({lowered}, '[ -]+', '_', 'g')"
    base = f"CASE WHEN regexp_matches({lowered}, '[ -]') THEN {spaced} ELSE {lowered} END"
    if not values:
        return base
    whens = " ".join(
        f"WHEN '{k.replace(chr(39), chr(39) * 2)}' THEN '{v.replace(chr(39), chr(39) * 2)}'"
        for k, v in values.items()
    )
    return f"CASE {lowered} {whens} ELSE {base} END"


def has_replacement_char(expr: str) -> str:
    """True when text holds U+FFFD, the mark of a broken encoding."""
    return f"contains({expr}, '\ufffd')"
