"""Every exception and warning Shopkeeper raises.

Hierarchy::

    ShopkeeperError
    ├── ConfigError                  bad settings, mapping or command-line input (exit 2)
    ├── IngestError                  a source that cannot be read at all (exit 2)
    ├── DataContractError            one row or column breaks the canonical contract
    │   └── DataContractErrors       many of them, collected in lazy mode
    ├── WarehouseError               the workspace or its catalog is unusable (exit 3)
    │   └── ReadOnlyQueryError       a write sent to the read-only SQL surface (exit 2)
    ├── NotFoundError (+ KeyError)   an asset, version or user that does not exist
    ├── ModelNotTrainedError
    ├── OverloadedError              the service is at capacity (HTTP 429, retry later)
    └── PluginNotFoundError (+ NotFoundError)
    DataWarning (UserWarning)        a recoverable data problem
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collections.abc import Sequence


class ShopkeeperError(Exception):
    """Root of every Shopkeeper error."""

    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 3


class ConfigError(ShopkeeperError):
    """Invalid configuration, mapping file or command-line input."""

    http_status = 422
    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None) -> None:
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class IngestError(ShopkeeperError):
    """A source file that cannot be read at all; nothing was written."""

    http_status = 422
    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: str | None = None,
        line: int | None = None,
        column: str | None = None,
    ) -> None:
        self.path, self.line, self.column = path, line, column
        where = ":".join(str(p) for p in (path, line) if p is not None)
        col = f" (column {column})" if column else ""
        super().__init__(f"{where}{col}: {message}" if where else message)


@dataclass(frozen=True)
class FailureRow:
    """One failing row: where it came from and what it held."""

    source_file: str | None
    source_line: int | None
    values: dict[str, Any] = field(default_factory=dict)


class DataContractError(ShopkeeperError):
    """A column breaks the canonical data contract."""

    http_status = 422
    exit_code = 3

    def __init__(
        self, column: str, reason: str, rows: Sequence[FailureRow] = (), message: str = ""
    ) -> None:
        self.column, self.reason, self.rows = column, reason, tuple(rows)
        super().__init__(message or f"column {column!r}: {reason} ({len(self.rows)} rows shown)")


class DataContractErrors(ShopkeeperError):
    """Several contract failures collected before raising."""

    http_status = 422
    exit_code = 3

    def __init__(self, errors: Sequence[DataContractError]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


class WarehouseError(ShopkeeperError):
    """The workspace or its catalog cannot be used."""


class ReadOnlyQueryError(WarehouseError):
    """A statement that would write was sent to the read-only SQL surface."""

    http_status = 403
    exit_code = 2


class NotFoundError(ShopkeeperError, KeyError):
    """An asset, version, key or user that does not exist."""

    http_status = 404
    exit_code = 2

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "not found"


class ModelNotTrainedError(ShopkeeperError):
    """A model was asked to score before it was fitted."""

    http_status = 409


class OverloadedError(ShopkeeperError):
    """The service has more work queued than it can finish in time; retry later."""

    http_status = 429


class PluginNotFoundError(NotFoundError):
    """An unknown plugin name; the message lists the known names."""

    def __init__(
        self, kind: str, name: str, known: Sequence[str], extra: str | None = None
    ) -> None:
        hint = f"; install with pip install 'shopkeeper[{extra}]'" if extra else ""
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(sorted(known))}{hint}")


class DataWarning(UserWarning):
    """A recoverable data problem (a rule skipped, a value coerced)."""
