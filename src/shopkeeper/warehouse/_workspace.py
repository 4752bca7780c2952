"""The workspace folder: where the catalog, the Parquet versions and the keys live."""

from __future__ import annotations

import fcntl
import shutil
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shopkeeper.clean import FieldCipher, KeyStore
from shopkeeper.errors import WarehouseError

if TYPE_CHECKING:
    from collections.abc import Iterator


@dataclass(frozen=True)
class Workspace:
    """Paths inside a workspace folder."""

    home: Path

    @classmethod
    def at(cls, home: str | Path) -> Workspace:
        """The workspace at `home` (made absolute; not created)."""
        return cls(Path(home).expanduser().resolve())

    @property
    def catalog_path(self) -> Path:
        """The DuckDB file holding the catalog."""
        return self.home / "catalog.duckdb"

    @property
    def assets_dir(self) -> Path:
        """Immutable Parquet versions of clean assets."""
        return self.home / "assets"

    @property
    def quarantine_dir(self) -> Path:
        """Immutable Parquet files of quarantined rows."""
        return self.home / "quarantine"

    @property
    def tmp_dir(self) -> Path:
        """Scratch space: staged copies, spills, versions being written."""
        return self.home / "tmp"

    @property
    def keys(self) -> KeyStore:
        """The pseudonymization key chain (file mode 0600)."""
        return KeyStore(self.home / "keys" / "pseudonym.key")

    @property
    def field_cipher(self) -> FieldCipher:
        """The AES-GCM key ring sealing sensitive fields at rest (file mode 0600)."""
        return FieldCipher(self.home / "keys" / "field.key")

    def exists(self) -> bool:
        """Whether a catalog has been created here."""
        return self.catalog_path.exists()

    def create(self) -> None:
        """Create the folders (idempotent)."""
        for d in (self.home, self.assets_dir, self.quarantine_dir, self.tmp_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o700)

    @contextmanager
    def write_lock(self) -> Iterator[None]:
        """Hold the workspace's exclusive writer lock (one writer at a time)."""
        self.create()
        with (self.home / ".lock").open("a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError as exc:
                raise WarehouseError(
                    f"another Shopkeeper process is writing to {self.home}; try again later"
                ) from exc
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def relative(self, path: Path) -> str:
        """`path` relative to the workspace, as stored in the catalog."""
        return str(path.resolve().relative_to(self.home))

    def absolute(self, rel: str) -> Path:
        """A catalog path made absolute."""
        return self.home / rel

    def sweep(self, referenced: set[str]) -> int:
        """Remove version folders no catalog entry references (left by a crash).

        Call only while holding the write lock.
        """
        removed = 0
        for root in (self.assets_dir, self.quarantine_dir):
            for d in root.glob("*/*"):
                if d.is_dir() and self.relative(d) not in referenced:
                    shutil.rmtree(d, ignore_errors=True)
                    removed += 1
        for d in self.tmp_dir.glob("*"):
            shutil.rmtree(d, ignore_errors=True) if d.is_dir() else d.unlink(missing_ok=True)
        return removed
