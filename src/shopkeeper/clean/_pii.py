"""Privacy at the door: keyed pseudonyms for user ids and masking of PII in free text.

User ids become HMAC-SHA256(key, id) computed inside DuckDB (sha256 over the
key pads), so no raw id leaves the staging step. Keys form a chain: rotating
adds a key and re-keys stored ids as HMAC(new, old pseudonym).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shopkeeper.errors import WarehouseError

if TYPE_CHECKING:
    from pathlib import Path

PSEUDONYM_HEX = 32
"""Pseudonyms keep 128 bits of the HMAC, as hex."""

EMAIL_RE = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"
CARD_RE = r"\b[0-9]{4}[ \-]?[0-9]{4}[ \-]?[0-9]{4}[ \-]?[0-9]{3,4}\b"
"""15 or 16 digits in groups of four: card numbers, not 12/13-digit UPC/EAN product codes."""
PHONE_RE = (
    r"(?:\+[0-9]{1,3}[ .\-]?)?\(?[0-9]{3}\)?[ .\-][0-9]{3}[ .\-][0-9]{4}\b"
    r"|\+[0-9]{1,3}[ .\-]?[0-9]{2,5}[ .\-]?[0-9]{3,4}[ .\-]?[0-9]{3,4}\b"
    r"|\+[0-9]{1,3}[ .\-]?[0-9](?:[ .\-]?[0-9]{2}){4}\b"
)
"""Separated phone numbers or `+` international ones; bare digit runs (model numbers) stay."""
PII_PATTERNS = (
    ("email", EMAIL_RE, "[EMAIL]"),
    ("card", CARD_RE, "[CARD]"),
    ("phone", PHONE_RE, "[PHONE]"),
)
"""Order matters: cards before phones, so a card number is not half-read as a phone."""


def mask_pii_sql(expr: str) -> str:
    """Replace e-mails, card numbers and phone numbers in `expr` with placeholders."""
    out = expr
    for _, pattern, placeholder in PII_PATTERNS:
        out = f"regexp_replace({out}, '{pattern}', '{placeholder}', 'g')"
    return out


_PII_COMPILED = tuple((re.compile(p), ph) for _, p, ph in PII_PATTERNS)


def mask_pii(text: str) -> str:
    """`mask_pii_sql` in Python, for one value arriving outside a load (a live event).

    >>> mask_pii("mail me at a.b@example.com or +44 20 7946 0958")
    'mail me at [EMAIL] or [PHONE]'
    """
    for pattern, placeholder in _PII_COMPILED:
        text = pattern.sub(placeholder, text)
    return text


def pii_flags_sql(masked: str, prefix: str) -> dict[str, str]:
    """One boolean column per PII kind: did masking put its placeholder into `masked`."""
    return {
        f"{prefix}_{kind}": f"coalesce(contains({masked}, '{placeholder}'), false)"
        for kind, _, placeholder in PII_PATTERNS
    }


_SQL_TRIM = "".join(map(chr, (0x20, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x202F, 0x205F, 0x3000)))
"""What DuckDB's trim() removes: the Unicode space separators (Zs), not tabs or newlines."""


def normalize_id(raw_id: str) -> str:
    """The id as cleaning stores it before hashing: trimmed, `17850.0` read as `17850`.

    >>> normalize_id(" 17850.0 ")
    '17850'
    """
    text = raw_id.strip(_SQL_TRIM)
    return re.sub(r"^(-?[0-9]+)\.0+\Z", r"\1", text)


def _pads(key: bytes) -> tuple[str, str]:
    k = key.ljust(64, b"\0") if len(key) <= 64 else hashlib.sha256(key).digest().ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in k).hex(), bytes(b ^ 0x5C for b in k).hex()


def hmac_sql(key: bytes, expr: str) -> str:
    """HMAC-SHA256(key, expr) as lower-case hex, in SQL (NULL stays NULL)."""
    ipad, opad = _pads(key)
    inner = f"unhex(sha256(unhex('{ipad}') || encode(CAST({expr} AS VARCHAR))))"
    return f"sha256(unhex('{opad}') || {inner})"


@dataclass(frozen=True)
class Pseudonymizer:
    """Maps raw user ids to stable pseudonyms under a chain of workspace keys."""

    keys: tuple[bytes, ...]

    def sql(self, expr: str) -> str:
        """SQL that pseudonymizes `expr` (already a normalized id)."""
        out = expr
        for key in self.keys:
            out = f"left({hmac_sql(key, out)}, {PSEUDONYM_HEX})"
        return out

    def pseudonymize(self, raw_id: str) -> str:
        """The pseudonym of one raw id, as stored in every table.

        >>> p = Pseudonymizer((b"k",))
        >>> p.pseudonymize("17850") == p.pseudonymize(" 17850.0 ")
        True
        """
        out = normalize_id(raw_id)
        for key in self.keys:
            out = hmac.new(key, out.encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX]
        return out


class KeyStore:
    """The workspace's pseudonymization keys in one 0600 file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self, create: bool = True) -> Pseudonymizer:
        """Read the key chain, creating a first random key if there is none."""
        if not self.path.exists():
            if not create:
                raise WarehouseError(f"no pseudonymization key at {self.path}")
            self._write([secrets.token_bytes(32)], exclusive=True)
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:
            raise WarehouseError(
                f"{self.path} is readable by others (mode {mode:o}); run chmod 600 on it"
            )
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return Pseudonymizer(tuple(bytes.fromhex(k) for k in data["keys"]))

    @property
    def pending_path(self) -> Path:
        """A rotated chain waiting for its catalog commit."""
        return self.path.with_suffix(".pending")

    def stage_rotation(self, load_id: str) -> bytes:
        """Write the extended chain as pending (tagged with `load_id`); return the new key.

        The chain becomes current with `promote_pending` once the re-keyed versions
        are committed, so a crash in between never splits ids across two keys.
        """
        current = self.load()
        new = secrets.token_bytes(32)
        self._write([*current.keys, new], self.pending_path, load_id)
        return new

    def pending_load_id(self) -> str | None:
        """The load id of a pending rotation, if one was interrupted."""
        if not self.pending_path.exists():
            return None
        return str(json.loads(self.pending_path.read_text(encoding="utf-8")).get("load_id"))

    def promote_pending(self) -> None:
        """Make the pending chain current."""
        self.pending_path.replace(self.path)

    def discard_pending(self) -> None:
        """Forget a rotation whose catalog commit never happened."""
        self.pending_path.unlink(missing_ok=True)

    def _write(
        self,
        keys: list[bytes],
        path: Path | None = None,
        load_id: str | None = None,
        exclusive: bool = False,
    ) -> None:
        """Write a chain atomically; `exclusive` creates it only if no one else has.

        Two processes creating the first key at once must agree on one key (else the
        same user gets two pseudonyms), so creation links a private temporary file into
        place, which fails when the chain already exists.
        """
        target = path or self.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.parent.chmod(0o700)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(
                {"algorithm": "HMAC-SHA256", "keys": [k.hex() for k in keys], "load_id": load_id}, f
            )
            f.flush()
            os.fsync(f.fileno())
        if not exclusive:
            tmp.replace(target)
            return
        try:
            os.link(tmp, target)
        except FileExistsError:
            pass  # another writer created the chain first; load() reads theirs
        finally:
            tmp.unlink()
