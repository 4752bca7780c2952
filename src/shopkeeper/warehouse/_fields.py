"""Field-level encryption at rest: which columns are sealed, sealing in DuckDB, reading back.

Columns listed in `ENCRYPTED_COLUMNS` hold `FieldCipher` tokens (AES-256-GCM) in every
Parquet file; their plaintext exists only inside the processing DuckDB while a load runs.
Ingest seals them with the `sk_seal` SQL function, a vectorized Arrow UDF (one Python
call per 2,048-row vector, one cipher call per non-null value). The catalog keeps the
column's PII tag (`quasi_identifier`) and marks the version as sealed in its params:
`{"encrypted": {"columns": [...], "algorithm": "AES-256-GCM", "key_id": "k1"}}`; the
quality report profiles a sealed column by nulls only (no lengths, no distinct counts).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
from duckdb.func import FunctionNullHandling, PythonUDFType

from shopkeeper.clean import is_token
from shopkeeper.ingest import sql_literal
from shopkeeper.warehouse._warehouse import Warehouse

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from shopkeeper.clean import FieldCipher
    from shopkeeper.warehouse._workspace import Workspace

ENCRYPTED_COLUMNS: dict[str, tuple[str, ...]] = {"users": ("attributes",)}
"""Canonical columns sealed at rest, per asset kind."""
SEAL_FUNCTION = "sk_seal"
"""The SQL function ingest wraps sealed columns in."""
ALGORITHM = "AES-256-GCM"


def encrypted_columns(kind: str) -> tuple[str, ...]:
    """The sealed columns of asset kind `kind`.

    >>> encrypted_columns("users"), encrypted_columns("events")
    (('attributes',), ())
    """
    return ENCRYPTED_COLUMNS.get(kind, ())


def encryption_params(kind: str, cipher: FieldCipher) -> dict[str, Any]:
    """The `encrypted` marker stored in a version's params (empty for unsealed kinds)."""
    cols = encrypted_columns(kind)
    if not cols:
        return {}
    if not cipher.key_id:
        cipher.load()
    return {"encrypted": {"columns": list(cols), "algorithm": ALGORITHM, "key_id": cipher.key_id}}


def map_strings(
    values: pa.Array | pa.ChunkedArray, fn: Callable[[str], str]
) -> pa.Array | pa.ChunkedArray:
    """Apply `fn` to every non-null string of an Arrow array (nulls stay null)."""
    if values.null_count == len(values):
        return values
    return pa.array([None if v is None else fn(v) for v in values.to_pylist()], pa.string())


def register_string_function(
    con: duckdb.DuckDBPyConnection, name: str, fn: Callable[[str], str]
) -> None:
    """Register SQL `name(text)`: `fn` over each non-null value, one call per Arrow vector.

    It is marked volatile, since sealing draws a random nonce per value.
    """

    def udf(values: pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
        return map_strings(values, fn)

    con.create_function(
        name,
        udf,
        [duckdb.sqltype("VARCHAR")],
        duckdb.sqltype("VARCHAR"),
        type=PythonUDFType.ARROW,
        null_handling=FunctionNullHandling.SPECIAL,
        side_effects=True,
    )


def register_sealing(con: duckdb.DuckDBPyConnection, cipher: FieldCipher) -> None:
    """Register `sk_seal(text)`: a new token per non-null value (the key loads on first use)."""
    register_string_function(con, SEAL_FUNCTION, cipher.encrypt)


def open_value(cipher: FieldCipher, value: str) -> str:
    """The plaintext of a stored value: a token is opened, older plaintext passes through."""
    return cipher.decrypt(value) if is_token(value) else value


def reseal(cipher: FieldCipher, value: str) -> str:
    """`value` sealed again under the cipher's current key (plaintext is sealed)."""
    return cipher.encrypt(open_value(cipher, value))


def _as_dict(text: str) -> dict[str, Any]:
    parsed = json.loads(text)
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def read_user_attributes(
    ws: Workspace, raw_user_ids: Iterable[str], asset: str = "users"
) -> dict[str, dict[str, Any] | None]:
    """Decrypt the `attributes` of users, by raw id, from the latest users version (admins).

    Args:
        ws: The workspace.
        raw_user_ids: User ids as the source gave them (pseudonymized here, never stored).
        asset: The users asset.

    Returns:
        raw id -> the attributes as a dict, or None for an unknown user or no attributes.

    Raises:
        WarehouseError: a missing key, or a value that fails authentication (tampered).
    """
    raw_ids = list(dict.fromkeys(raw_user_ids))
    out: dict[str, dict[str, Any] | None] = dict.fromkeys(raw_ids)
    if not raw_ids:
        return out
    pseudo = ws.keys.load(create=False)
    by_pseudonym = {pseudo.pseudonymize(r): r for r in raw_ids}
    with Warehouse(ws, read_only=True) as wh:
        v = wh.latest(asset)
        files = [str(p) for p in wh.files(asset, v.version)] if v else []
        if not files:
            return out
        rows = wh.con.execute(
            f"SELECT user_id, attributes FROM read_parquet([{', '.join(map(sql_literal, files))}]) "
            "WHERE user_id IN (SELECT unnest(?))",
            [list(by_pseudonym)],
        ).fetchall()
    cipher = ws.field_cipher
    for user_id, attributes in rows:
        if attributes is not None:
            out[by_pseudonym[user_id]] = _as_dict(open_value(cipher, attributes))
    return out
