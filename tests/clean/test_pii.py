"""Pseudonyms (HMAC in SQL == Python hmac), the key chain and store, and PII masking."""

from __future__ import annotations

import hashlib
import hmac
import json
import stat
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopkeeper.clean import KeyStore, Pseudonymizer, hmac_sql, mask_pii_sql, norm_id
from shopkeeper.clean._pii import PSEUDONYM_HEX, normalize_id, pii_flags_sql
from shopkeeper.clean._text import NULL_MARKERS
from shopkeeper.errors import WarehouseError

_FIXTURE_OK = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])


def _sql(con, expr: str, value: str | None) -> object:
    row = con.execute(f"SELECT {expr} FROM (SELECT ?::VARCHAR AS x)", [value]).fetchone()
    assert row is not None
    return row[0]


def _py_hmac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


# DuckDB VARCHAR cannot hold NUL; everything else in Unicode is fair game.
_UNICODE = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=80)


_ZS = "".join(c for c in map(chr, range(0x3001)) if unicodedata.category(c) == "Zs")
_PADDING = st.sampled_from(["", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2009"])


# -- HMAC in SQL ---------------------------------------------------------------------------


@_FIXTURE_OK
@given(key=st.binary(max_size=150), text=_UNICODE)
def test_sql_hmac_equals_python_hmac(duckdb_con, key, text) -> None:
    assert _sql(duckdb_con, hmac_sql(key, "x"), text) == _py_hmac(key, text)


@pytest.mark.parametrize("key_len", [0, 1, 32, 63, 64, 65, 128, 200])
def test_sql_hmac_at_key_length_boundaries(duckdb_con, key_len) -> None:
    key = bytes(range(256))[:key_len] if key_len <= 256 else b""
    for text in ("", "17850", "café", "日本語", "\U0001f600"):
        assert _sql(duckdb_con, hmac_sql(key, "x"), text) == _py_hmac(key, text)


def test_sql_hmac_of_null_is_null(duckdb_con) -> None:
    assert _sql(duckdb_con, hmac_sql(b"k", "x"), None) is None


# -- Pseudonymizer and its key chain -----------------------------------------------------


def test_pseudonym_is_truncated_hmac_hex() -> None:
    p = Pseudonymizer((b"key",))
    out = p.pseudonymize("17850")
    assert out == _py_hmac(b"key", "17850")[:PSEUDONYM_HEX]
    assert len(out) == PSEUDONYM_HEX == 32
    assert int(out, 16) >= 0


def test_key_chain_applies_keys_in_order() -> None:
    k1, k2 = b"first", b"second"
    inner = _py_hmac(k1, "u1")[:PSEUDONYM_HEX]
    chained = Pseudonymizer((k1, k2)).pseudonymize("u1")
    assert chained == _py_hmac(k2, inner)[:PSEUDONYM_HEX]
    # rotation re-keys stored pseudonyms: HMAC(new, old pseudonym)
    assert chained == _py_hmac(k2, Pseudonymizer((k1,)).pseudonymize("u1"))[:PSEUDONYM_HEX]
    assert chained != Pseudonymizer((k2, k1)).pseudonymize("u1")


def test_different_keys_give_different_pseudonyms() -> None:
    assert Pseudonymizer((b"a",)).pseudonymize("u1") != Pseudonymizer((b"b",)).pseudonymize("u1")
    assert Pseudonymizer((b"a",)).pseudonymize("u1") != Pseudonymizer((b"a",)).pseudonymize("u2")


@_FIXTURE_OK
@given(
    keys=st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=3),
    raw=st.builds(
        lambda pre, core, post: pre + core + post,
        _PADDING,
        st.one_of(
            _UNICODE,
            st.integers(-(10**9), 10**9).map(lambda n: f"{n}.0"),
            st.sampled_from(NULL_MARKERS),
        ),
        _PADDING,
    ),
)
def test_sql_pseudonyms_equal_python_pseudonyms(duckdb_con, keys, raw) -> None:
    """What cleaning stores (SQL over the raw value) is what `pseudonymize` computes."""
    p = Pseudonymizer(tuple(keys))
    sql = _sql(duckdb_con, p.sql(norm_id("x")), raw)
    if raw.strip(_ZS).lower() in NULL_MARKERS:
        assert sql is None
    else:
        assert sql == p.pseudonymize(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" 17850.0 ", "17850"),
        ("17850.000", "17850"),
        ("-4.0", "-4"),
        ("17850.5", "17850.5"),
        ("17850.0\n", "17850.0\n"),
        ("\t17850", "\t17850"),
        ("A1.0", "A1.0"),
        ("\u00a017850.0\u3000", "17850"),
    ],
)
def test_normalize_id_matches_the_sql_normalization(duckdb_con, raw, expected) -> None:
    assert normalize_id(raw) == expected
    assert _sql(duckdb_con, norm_id("x"), raw) == expected


# -- KeyStore --------------------------------------------------------------------------------


def test_keystore_creates_a_0600_key_in_a_0700_folder(tmp_path) -> None:
    store = KeyStore(tmp_path / "keys" / "pseudonym.key")
    pseudo = store.load()
    assert len(pseudo.keys) == 1
    assert len(pseudo.keys[0]) == 32
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700
    data = json.loads(store.path.read_text(encoding="utf-8"))
    assert data["algorithm"] == "HMAC-SHA256"
    assert store.load() == pseudo  # stable across loads
    assert not list(store.path.parent.glob("*.tmp"))


def test_keystore_without_a_key_and_no_create_refuses(tmp_path) -> None:
    store = KeyStore(tmp_path / "keys" / "pseudonym.key")
    with pytest.raises(WarehouseError, match="no pseudonymization key"):
        store.load(create=False)
    assert not store.path.exists()


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o640, 0o660, 0o666])
def test_keystore_refuses_a_key_others_can_read(tmp_path, mode) -> None:
    store = KeyStore(tmp_path / "keys" / "pseudonym.key")
    store.load()
    store.path.chmod(mode)
    with pytest.raises(WarehouseError, match="chmod 600"):
        store.load()


def test_keystore_accepts_an_owner_only_key(tmp_path) -> None:
    store = KeyStore(tmp_path / "keys" / "pseudonym.key")
    first = store.load()
    store.path.chmod(0o400)
    assert store.load() == first


def test_key_rotation_is_staged_then_promoted(tmp_path) -> None:
    store = KeyStore(tmp_path / "keys" / "pseudonym.key")
    before = store.load()
    assert store.pending_load_id() is None
    new = store.stage_rotation("load42")
    assert store.pending_load_id() == "load42"
    assert store.load() == before  # not current until promoted
    assert stat.S_IMODE(store.pending_path.stat().st_mode) == 0o600
    store.promote_pending()
    after = store.load()
    assert after.keys == (*before.keys, new)
    assert store.pending_load_id() is None


def test_discarded_rotation_leaves_the_chain_alone(tmp_path) -> None:
    store = KeyStore(tmp_path / "keys" / "pseudonym.key")
    before = store.load()
    store.stage_rotation("x")
    store.discard_pending()
    assert store.pending_load_id() is None
    assert store.load() == before


# -- masking ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail john.doe+shop@example.co.uk now", "mail [EMAIL] now"),
        ("A@B.IO", "[EMAIL]"),
        ("card 4111 1111 1111 1111 ok", "card [CARD] ok"),
        ("4111-1111-1111-1111", "[CARD]"),
        ("4111111111111111", "[CARD]"),
        ("amex 3782 8224 6310 005", "amex [CARD]"),
        ("378282246310005", "[CARD]"),
        ("call 555-123-4567", "call [PHONE]"),
        ("(555) 123-4567", "[PHONE]"),
        ("555.123.4567", "[PHONE]"),
        ("+1 555 123 4567", "[PHONE]"),
        ("+44 20 7946 0958", "[PHONE]"),
        ("+14155552671", "[PHONE]"),
        ("+49 30 1234567", "[PHONE]"),
        ("+33 6 12 34 56 78", "[PHONE]"),
        ("a@b.com or 555-123-4567", "[EMAIL] or [PHONE]"),
    ],
)
def test_pii_is_masked(duckdb_con, text, expected) -> None:
    assert _sql(duckdb_con, mask_pii_sql("x"), text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "model 2501071504",
        "WHITE HANGING HEART T-LIGHT HOLDER 85123A",
        "UPC 036000291452",
        "EAN 4006381333931",
        "ISBN 9783161484100",
        "ISBN 978-3-16-148410-0",
        "price $1,234.56",
        "1.234.567,89 EUR",
        "£12.50 x 3",
        "2024-01-15 10:30:00",
        "2024-01-15T10:30:00+01:00",
        "15/01/2024",
        "12.03.2024",
        "order 1234-5678-9012",
        "SKU 12345678",
        "version 10.2.3456",
        "size 10 x 20 x 30 cm",
        "user@localhost",
    ],
)
def test_non_pii_numbers_are_kept(duckdb_con, text) -> None:
    assert _sql(duckdb_con, mask_pii_sql("x"), text) == text


def test_masking_keeps_null(duckdb_con) -> None:
    assert _sql(duckdb_con, mask_pii_sql("x"), None) is None


def test_pii_flags_report_each_kind(duckdb_con) -> None:
    # flags read the masked text: each kind's placeholder tells what was masked
    flags = pii_flags_sql("x", "_pii_q")
    assert set(flags) == {"_pii_q_email", "_pii_q_card", "_pii_q_phone"}
    select = ", ".join(f"{v} AS {k}" for k, v in flags.items())
    row = duckdb_con.execute(
        f"SELECT {select} FROM (SELECT {mask_pii_sql('?::VARCHAR')} AS x)",
        ["a@b.com and 555-123-4567"],
    ).fetchone()
    assert row == (True, False, True)
    row = duckdb_con.execute(f"SELECT {select} FROM (SELECT NULL::VARCHAR AS x)").fetchone()
    assert row == (False, False, False)
