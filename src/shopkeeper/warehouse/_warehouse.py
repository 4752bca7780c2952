"""The Warehouse: owns the catalog's DuckDB connection and exposes assets as views."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb

from shopkeeper.errors import NotFoundError, ReadOnlyQueryError, WarehouseError
from shopkeeper.ingest import quote_ident, sql_literal
from shopkeeper.warehouse._sql import load_sql

if TYPE_CHECKING:
    from datetime import datetime
    from types import TracebackType

    from shopkeeper.warehouse._workspace import Workspace

CATALOG_SCHEMA_VERSION = 1
_LOCK_RETRY_SECONDS = 15.0
_READ_STATEMENTS = {"SELECT", "EXPLAIN"}


@dataclass(frozen=True)
class AssetVersion:
    """One catalog entry."""

    asset: str
    version: int
    kind: str
    created_at: datetime
    load_id: str
    transform: str
    params: dict[str, Any]
    row_count: int
    schema: list[dict[str, Any]]
    pii: dict[str, str]
    input_rows: int
    clean_rows: int
    quarantined_rows: int
    duplicate_rows: int
    reasons: dict[str, int]
    quality: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """The catalog line of this version, JSON-ready."""
        return {
            "asset": self.asset,
            "kind": self.kind,
            "version": self.version,
            "rows": self.row_count,
            "quarantined_rows": self.quarantined_rows,
            "created_at": self.created_at.isoformat(),
            "transform": self.transform,
            "quality_status": self.quality.get("status", "unknown"),
            "freshness": self.quality.get("freshness"),
        }


def _version_of(row: tuple[Any, ...], names: list[str]) -> AssetVersion:
    d = dict(zip(names, row, strict=True))
    for k in ("params", "schema", "pii", "reasons", "quality"):
        d[k] = json.loads(d[k]) if isinstance(d[k], str) else d[k]
    return AssetVersion(**d)


class Warehouse:
    """Context manager over the workspace catalog.

    Read-only connections see every asset's latest version as a view named after
    the asset (`events`, `items`, …), each version as `<asset>_v<N>`, and all
    quarantined rows as `quarantine`.
    """

    def __init__(self, workspace: Workspace, read_only: bool = False) -> None:
        self.workspace = workspace
        self.read_only = read_only
        self._con: duckdb.DuckDBPyConnection | None = None

    def __enter__(self) -> Warehouse:
        ws = self.workspace
        if self.read_only and not ws.exists():
            raise NotFoundError(
                f"no Shopkeeper workspace at {ws.home}; run `shopkeeper ingest` "
                "first (or pass --home)"
            )
        if not self.read_only:
            ws.create()
        deadline = time.monotonic() + _LOCK_RETRY_SECONDS
        while True:
            try:
                self._con = duckdb.connect(str(ws.catalog_path), read_only=self.read_only)
                self._con.execute("SET TimeZone = 'UTC'")
                # DuckDB draws a progress bar on stdout for queries slower than 2 s;
                # stdout carries --json.
                self._con.execute("SET enable_progress_bar = false")
                break
            except (duckdb.IOException, duckdb.ConnectionException) as exc:
                # Another process holds the write lock, or this process has the file open
                # in the other mode (a reader thread while a writer runs, as in the
                # service): both are short-lived, so wait for them.
                msg = str(exc).lower()
                busy = "lock" in msg or "different configuration" in msg
                if not busy or time.monotonic() > deadline:
                    raise WarehouseError(f"cannot open the catalog: {exc}") from exc
                time.sleep(0.05)
        if not self.read_only:
            self._ensure_schema()
        self._create_views()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The catalog connection (only inside `with`)."""
        if self._con is None:
            raise WarehouseError("the warehouse is not open; use `with Warehouse(...)`")
        return self._con

    def _ensure_schema(self) -> None:
        self.con.execute(load_sql("catalog"))
        row = self.con.execute("SELECT max(version) FROM meta.schema_info").fetchone()
        if row is None or row[0] is None:
            self.con.execute("INSERT INTO meta.schema_info VALUES (?)", [CATALOG_SCHEMA_VERSION])
        elif row[0] > CATALOG_SCHEMA_VERSION:
            raise WarehouseError(
                f"catalog schema v{row[0]} is newer than this Shopkeeper "
                f"(v{CATALOG_SCHEMA_VERSION}); upgrade Shopkeeper"
            )

    def _has_catalog(self) -> bool:
        row = self.con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'meta' "
            "AND table_name = 'versions'"
        ).fetchone()
        return bool(row and row[0])

    def _create_views(self) -> None:
        if not self._has_catalog():
            return
        files = self.con.execute(
            "SELECT asset, version, role, list(path ORDER BY path) FROM meta.files "
            "GROUP BY ALL ORDER BY asset, version"
        ).fetchall()
        latest: dict[str, int] = {}
        quarantine: list[str] = []
        for asset, version, role, paths in files:
            abs_paths = [str(self.workspace.absolute(p)) for p in paths]
            if role == "quarantine":
                quarantine.extend(abs_paths)
                continue
            if role != "data":  # e.g. an ANN index file: not Parquet, no view
                continue
            self._view(f"{asset}_v{version}", abs_paths)
            latest[asset] = max(latest.get(asset, 0), version)
        for asset, version in latest.items():
            self.con.execute(
                f"CREATE OR REPLACE TEMP VIEW {quote_ident(asset)} AS "
                f"SELECT * FROM {quote_ident(f'{asset}_v{version}')}"
            )
            self.con.execute(
                f"CREATE OR REPLACE TEMP VIEW {quote_ident('clean_' + asset)} AS "
                f"SELECT * FROM {quote_ident(asset)}"
            )
        if quarantine:
            self._view("quarantine", quarantine)
        else:  # nothing rejected yet: the view still exists, with its columns and no rows
            self.con.execute(
                "CREATE OR REPLACE TEMP VIEW quarantine AS SELECT NULL::VARCHAR AS asset, "
                "NULL::INTEGER AS version, NULL::VARCHAR AS reason, NULL::VARCHAR AS column_name, "
                "NULL::VARCHAR AS detail, NULL::VARCHAR AS source_file, "
                "NULL::BIGINT AS source_line, NULL::VARCHAR AS raw WHERE false"
            )

    def _view(self, name: str, paths: list[str]) -> None:
        plist = ", ".join(sql_literal(p) for p in paths)
        self.con.execute(
            f"CREATE OR REPLACE TEMP VIEW {quote_ident(name)} AS "
            f"SELECT * FROM read_parquet([{plist}], union_by_name = true)"
        )

    # -- catalog reads -------------------------------------------------------------------

    def latest_versions(self) -> list[AssetVersion]:
        """The latest version of every asset, by name."""
        if not self._has_catalog():
            return []
        cur = self.con.execute(load_sql("latest_versions"))
        names = [d[0] for d in cur.description or []]
        return [_version_of(r, names) for r in cur.fetchall()]

    def versions(self, asset: str) -> list[AssetVersion]:
        """Every version of `asset`, oldest first.

        Raises:
            NotFoundError: no such asset.
        """
        if not self._has_catalog():
            raise NotFoundError(f"no asset {asset!r}; the catalog is empty")
        cur = self.con.execute(
            "SELECT * FROM meta.versions WHERE asset = ? ORDER BY version", [asset]
        )
        names = [d[0] for d in cur.description or []]
        rows = [_version_of(r, names) for r in cur.fetchall()]
        if not rows:
            known = [v.asset for v in self.latest_versions()]
            raise NotFoundError(f"no asset {asset!r}; known: {', '.join(known) or 'none'}")
        return rows

    def version(self, asset: str, version: int | None = None) -> AssetVersion:
        """One version of `asset` (the latest by default)."""
        versions = self.versions(asset)
        if version is None:
            return versions[-1]
        for v in versions:
            if v.version == version:
                return v
        raise NotFoundError(
            f"{asset} has no version {version}; it has {[v.version for v in versions]}"
        )

    def latest(self, asset: str) -> AssetVersion | None:
        """The latest version of `asset`, or None."""
        try:
            return self.version(asset)
        except NotFoundError:
            return None

    def files(self, asset: str, version: int, role: str = "data") -> list[Path]:
        """Absolute Parquet paths of one version."""
        rows = self.con.execute(
            "SELECT path FROM meta.files WHERE asset = ? AND version = ? AND role = ? "
            "ORDER BY path",
            [asset, version, role],
        ).fetchall()
        return [self.workspace.absolute(r[0]) for r in rows]

    def sources(self, asset: str, version: int) -> list[dict[str, Any]]:
        """Source files read by one version."""
        cur = self.con.execute(
            "SELECT path, sha256, bytes FROM meta.sources WHERE asset = ? AND version = ? "
            "ORDER BY path",
            [asset, version],
        )
        return [{"path": p, "sha256": h, "bytes": b} for p, h, b in cur.fetchall()]

    def parents(self, asset: str, version: int) -> list[tuple[str, int, str]]:
        """(parent asset, parent version, relation) of one version."""
        return [
            (a, v, r)
            for a, v, r in self.con.execute(
                "SELECT parent_asset, parent_version, relation FROM meta.parents "
                "WHERE asset = ? AND version = ? ORDER BY ALL",
                [asset, version],
            ).fetchall()
        ]

    def referenced_dirs(self) -> set[str]:
        """Version folders the catalog references (relative paths).

        A file is `<assets|quarantine>/<asset>/<version folder>/...`, possibly deeper (a
        model folder kept as a tree), so its version folder is its first three parts.
        """
        if not self._has_catalog():
            return set()
        return {
            str(Path(*Path(r[0]).parts[:3]))
            for r in self.con.execute("SELECT DISTINCT path FROM meta.files").fetchall()
        }

    def find_load(self, fingerprint: str) -> list[dict[str, Any]] | None:
        """The result of an earlier load with the same inputs, if any."""
        if not self._has_catalog():
            return None
        row = self.con.execute(
            "SELECT result FROM meta.loads WHERE fingerprint = ? ORDER BY created_at DESC LIMIT 1",
            [fingerprint],
        ).fetchone()
        return None if row is None else list(json.loads(row[0]))

    # -- data access ---------------------------------------------------------------------

    def query(self, sql: str, limit: int | None = None) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Run one read-only statement; return column names and rows.

        Raises:
            ReadOnlyQueryError: the statement is not a SELECT (or EXPLAIN).
        """
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as exc:
            raise ReadOnlyQueryError(f"cannot parse the query: {exc}") from exc
        if len(statements) != 1:
            raise ReadOnlyQueryError(f"send exactly one statement (got {len(statements)})")
        kind = statements[0].type.name
        if kind not in _READ_STATEMENTS:
            raise ReadOnlyQueryError(
                f"`shopkeeper sql` is read-only: a {kind} statement is refused; assets change "
                "only through ingest and transforms, which version them"
            )
        try:
            cur = self.con.execute(sql)
            names = [d[0] for d in cur.description or []]
            rows = cur.fetchmany(limit) if limit else cur.fetchall()
        except duckdb.Error as exc:
            msg = str(exc).strip().splitlines()[0]
            if "read-only" in msg.lower() or "read only" in msg.lower():
                raise ReadOnlyQueryError(f"`shopkeeper sql` is read-only: {msg}") from exc
            raise ReadOnlyQueryError(f"query failed: {msg}") from exc
        return names, rows
