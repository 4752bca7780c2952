"""users.attributes is sealed at rest: no plaintext in any file, round trip, rotation, tamper."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from shopkeeper.errors import WarehouseError
from shopkeeper.warehouse import (
    IngestRequest,
    Warehouse,
    Workspace,
    forget_user,
    ingest,
    read_user_attributes,
    rotate_field_key,
    rotate_pseudonym_key,
)

SECRETS = ("SECRETZIP90210", "SECRETZIP10001", "SECRETCOLOURteal", "SECRETZIPNOBODY")
USERS = (
    "user_id,created_at,zip_code,favourite\n"
    f"u1,2024-01-01,{SECRETS[0]},{SECRETS[2]}\n"
    f"u2,2024-01-02,{SECRETS[1]},\n"
    f",2024-01-03,{SECRETS[3]},red\n"  # quarantined: no user id
    f"u3,2024-01-04,{SECRETS[1]},a,b,c\n"  # quarantined: malformed line
    "u4,2024-01-05,,\n"
)


@pytest.fixture
def sealed(workspace: Workspace, tmp_path: Path) -> Workspace:
    src = tmp_path / "users.csv"
    src.write_text(USERS, encoding="utf-8")
    (result,) = ingest(workspace, IngestRequest(src, kind="users"))
    assert result["quarantined_rows"] == 2
    return workspace


def _attributes(ws: Workspace, view: str) -> list[str]:
    with Warehouse(ws, read_only=True) as wh:
        _, rows = wh.query(f"SELECT attributes FROM {view} WHERE attributes IS NOT NULL")
    return [r[0] for r in rows]


def test_no_plaintext_in_any_stored_byte_or_value(sealed: Workspace) -> None:
    con = duckdb.connect()
    values = [
        r[0]
        for f in sorted(sealed.home.rglob("*.parquet"))
        for r in con.execute(f"SELECT to_json(t) FROM read_parquet('{f}') t").fetchall()
    ]
    con.close()
    text = "\n".join(values)
    for secret in SECRETS:
        assert secret not in text
        for f in sealed.home.rglob("*"):
            if f.is_file() and f.name != "field.key":
                assert secret.encode() not in f.read_bytes(), f
    with Warehouse(sealed, read_only=True) as wh:
        v = wh.version("users")
        _, q = wh.query("SELECT reason, raw FROM quarantine ORDER BY source_line")
    assert all(t.startswith("enc:v1:k1:") for t in _attributes(sealed, "users"))
    assert v.pii["attributes"] == "quasi_identifier"
    assert v.params["encrypted"] == {
        "columns": ["attributes"],
        "algorithm": "AES-256-GCM",
        "key_id": "k1",
    }
    assert v.quality["columns"]["attributes"] == {"nulls": 0, "null_rate": 0.0, "encrypted": True}
    missing = json.loads(q[0][1])  # the quarantine keeps the row, its values sealed
    assert missing["zip_code"].startswith("enc:v1:")
    assert q[1][0] == "malformed_row"
    assert q[1][1].startswith("enc:v1:")
    cipher = sealed.field_cipher.load(create=False)
    assert SECRETS[3] == cipher.decrypt(missing["zip_code"])
    assert SECRETS[1] in cipher.decrypt(q[1][1])


def test_read_user_attributes_decrypts(sealed: Workspace) -> None:
    got = read_user_attributes(sealed, ["u1", " u2 ", "u4", "nobody"])
    assert got == {
        "u1": {"zip_code": SECRETS[0], "favourite": SECRETS[2]},
        " u2 ": {"zip_code": SECRETS[1], "favourite": None},
        "u4": {"zip_code": None, "favourite": None},
        "nobody": None,
    }


def test_rotation_reseals_latest_and_keeps_old_readable(sealed: Workspace, tmp_path: Path) -> None:
    before = read_user_attributes(sealed, ["u1", "u2"])
    (out,) = rotate_field_key(sealed)
    assert (out["asset"], out["version"], out["rows"]) == ("users", 2, 3)
    with Warehouse(sealed, read_only=True) as wh:
        v2 = wh.version("users")
        assert (v2.transform, v2.params["encrypted"]["key_id"]) == (
            "privacy:rotate-field-key",
            "k2",
        )
        assert wh.parents("users", 2) == [("users", 1, "previous")]
    assert all(t.startswith("enc:v1:k2:") for t in _attributes(sealed, "users_v2"))
    old = _attributes(sealed, "users_v1")
    assert all(t.startswith("enc:v1:k1:") for t in old)
    cipher = sealed.field_cipher.load(create=False)
    zips = {json.loads(cipher.decrypt(t))["zip_code"] for t in old}
    assert zips == {SECRETS[0], SECRETS[1], None}
    assert read_user_attributes(sealed, ["u1", "u2"]) == before
    # a later upsert seals new rows under k2 and carries the re-sealed ones
    more = tmp_path / "more.csv"
    more.write_text("user_id,created_at,zip_code\nu5,2024-02-01,SECRETZIPLATE\n", encoding="utf-8")
    ingest(sealed, IngestRequest(more, kind="users"))
    assert all(t.startswith("enc:v1:k2:") for t in _attributes(sealed, "users"))
    assert read_user_attributes(sealed, ["u5"])["u5"] == {"zip_code": "SECRETZIPLATE"}
    assert read_user_attributes(sealed, ["u1"]) == {"u1": before["u1"]}


def test_a_tampered_token_fails(sealed: Workspace) -> None:
    token = _attributes(sealed, "users")[0]
    cipher = sealed.field_cipher.load(create=False)
    head, body = token.rsplit(":", 1)
    flipped = body[:-5] + ("A" if body[-5] != "A" else "B") + body[-4:]
    with pytest.raises(WarehouseError, match="authentication"):
        cipher.decrypt(f"{head}:{flipped}")
    with pytest.raises(WarehouseError, match="unknown key"):
        cipher.decrypt(token.replace(":k1:", ":k9:"))


def test_forget_finds_a_sealed_quarantine_line(sealed: Workspace) -> None:
    out = forget_user(sealed, "u3", actor="test")
    assert out["rows_removed"] == {"quarantine:users": 1}
    with Warehouse(sealed, read_only=True) as wh:
        _, rows = wh.query("SELECT reason FROM quarantine")
    assert [r[0] for r in rows] == ["missing_user_id"]


def test_pseudonym_rotation_keeps_the_sealed_marker(sealed: Workspace) -> None:
    before = read_user_attributes(sealed, ["u1"])
    rotate_pseudonym_key(sealed)
    with Warehouse(sealed, read_only=True) as wh:
        assert wh.version("users").params["encrypted"]["key_id"] == "k1"
    assert read_user_attributes(sealed, ["u1"]) == before
