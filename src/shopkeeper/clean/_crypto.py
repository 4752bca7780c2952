"""Field-level encryption at rest: AES-256-GCM with a rotatable key ring in the workspace.

A token is `enc:v1:<key id>:<base64url(nonce || ciphertext+tag)>`. The key id names the
key that sealed it, so tokens sealed before a rotation still open after it; new tokens
use the newest key. The ring is one JSON file, mode 0600, written atomically.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shopkeeper.errors import WarehouseError

if TYPE_CHECKING:
    from pathlib import Path

TOKEN_PREFIX = "enc:v1:"
_NONCE = 12


def is_token(value: str | None) -> bool:
    """Whether `value` is a sealed token.

    >>> is_token("enc:v1:k1:AAAA"), is_token("plain")
    (True, False)
    """
    return value is not None and value.startswith(TOKEN_PREFIX)


class FieldCipher:
    """Seals and opens field values with the keys of one ring file.

    Args:
        path: The ring file (created with a first key by `load(create=True)`).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: dict[str, bytes] = {}
        self._current = ""
        self._lock = threading.Lock()

    def load(self, create: bool = True) -> FieldCipher:
        """Read the ring, creating it with one random key when absent.

        Raises:
            WarehouseError: no ring and `create` is false, or the file is readable by others.
        """
        if not self.path.exists():
            if not create:
                raise WarehouseError(f"no field encryption key at {self.path}")
            self._write({"k1": secrets.token_bytes(32)}, "k1", exclusive=True)
        mode = self.path.stat().st_mode & 0o777
        if mode & 0o077:
            raise WarehouseError(
                f"{self.path} is readable by others (mode {mode:o}); run chmod 600 on it"
            )
        data = json.loads(self.path.read_text(encoding="utf-8"))
        self._keys = {k: bytes.fromhex(v) for k, v in data["keys"].items()}
        self._current = str(data["current"])
        return self

    @property
    def key_id(self) -> str:
        """The id of the key new tokens are sealed with."""
        return self._current

    def rotate(self) -> str:
        """Add a new key and make it current (old keys stay to open old tokens)."""
        self.load()
        new_id = f"k{len(self._keys) + 1}"
        self._write({**self._keys, new_id: secrets.token_bytes(32)}, new_id)
        self.load()
        return new_id

    def encrypt(self, plaintext: str) -> str:
        """Seal one value under the current key (a fresh random nonce each time).

        >>> import pathlib, tempfile
        >>> c = FieldCipher(pathlib.Path(tempfile.mkdtemp()) / "field.key").load()
        >>> token = c.encrypt("zip 12345")
        >>> token.startswith("enc:v1:k1:"), c.decrypt(token)
        (True, 'zip 12345')
        """
        if not self._current:
            with self._lock:  # DuckDB calls the sealing UDF from several threads at once
                if not self._current:
                    self.load()
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(self._keys[self._current]).encrypt(
            nonce, plaintext.encode(), self._current.encode()
        )
        body = base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")
        return f"{TOKEN_PREFIX}{self._current}:{body}"

    def decrypt(self, token: str) -> str:
        """Open one token.

        Raises:
            WarehouseError: not a token, an unknown key id, or a tampered value.
        """
        if not self._keys:
            self.load(create=False)
        if not is_token(token):
            raise WarehouseError("not an encrypted field value")
        key_id, _, body = token[len(TOKEN_PREFIX) :].partition(":")
        if key_id not in self._keys:
            raise WarehouseError(f"field value sealed with unknown key {key_id!r}")
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        try:
            plain = AESGCM(self._keys[key_id]).decrypt(raw[:_NONCE], raw[_NONCE:], key_id.encode())
        except InvalidTag as exc:
            raise WarehouseError("field value failed authentication (tampered?)") from exc
        return plain.decode()

    def _write(self, keys: dict[str, bytes], current: str, exclusive: bool = False) -> None:
        """Write the ring atomically; `exclusive` creates it only if no one else has.

        A first key written by two processes at once must not leave two different rings
        (tokens sealed under the loser would never open again), so creation links the
        private temporary file into place, which fails when the ring already exists.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.parent.chmod(0o700)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(
                {
                    "algorithm": "AES-256-GCM",
                    "current": current,
                    "keys": {k: v.hex() for k, v in keys.items()},
                },
                f,
            )
            f.flush()
            os.fsync(f.fileno())
        if not exclusive:
            tmp.replace(self.path)
            return
        try:
            os.link(tmp, self.path)
        except FileExistsError:
            pass  # another writer created the ring first; load() reads theirs
        finally:
            tmp.unlink()
