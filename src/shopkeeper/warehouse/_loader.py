"""Ingest: stage sources, clean them, write new asset versions, commit atomically.

Atomicity: new Parquet files are written under `tmp/`, renamed into their version
folders, and become visible only when one DuckDB transaction records them in the
catalog. A crash before that commit leaves unreferenced folders, which the next
writer sweeps away; a crash after it leaves the complete new versions.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

import duckdb

from shopkeeper import __version__
from shopkeeper.clean import (
    Pseudonymizer,
    classify,
    is_null_or_marker,
    register_text_functions,
)
from shopkeeper.config import ShopkeeperSettings, load_yaml_config
from shopkeeper.errors import ConfigError, IngestError
from shopkeeper.ingest import (
    AdapterContext,
    AssetPlan,
    MappingConfig,
    get_adapter,
    hashes_reused,
    payload_bytes,
    quote_ident,
    sha256_file,
    sql_literal,
)
from shopkeeper.logging import Stopwatch, get_logger, progress
from shopkeeper.schema import ASSET_KINDS, AssetKind, arrow_schema, columns
from shopkeeper.warehouse._durable import fsync_path
from shopkeeper.warehouse._fields import encryption_params, register_sealing
from shopkeeper.warehouse._privacy import recover_pending_rotation
from shopkeeper.warehouse._quality import build_quality
from shopkeeper.warehouse._warehouse import Warehouse
from shopkeeper.warehouse._writer import WrittenVersion, counts_add_up, write_version

if TYPE_CHECKING:
    from pathlib import Path

    from shopkeeper.clean import CleanedLoad
    from shopkeeper.ingest._readers import StagedTable
    from shopkeeper.warehouse._spark_engine import SparkCleaner
    from shopkeeper.warehouse._workspace import Workspace

Engine = Literal["duckdb", "spark"]
ENGINES: tuple[Engine, ...] = ("duckdb", "spark")
"""Where cleaning runs; both run the same SQL and write the same versions."""

_log = get_logger(__name__)


@dataclass(frozen=True)
class IngestRequest:
    """One `shopkeeper ingest` call."""

    path: Path
    adapter: str = "generic"
    kind: AssetKind | None = None
    mapping_path: Path | None = None
    engine: Engine = "duckdb"
    """Where cleaning runs: in-process DuckDB, or Spark (the `spark` extra and Java)."""


def processing_connection(
    ws: Workspace, settings: ShopkeeperSettings, load_id: str, source_bytes: int = 0
) -> duckdb.DuckDBPyConnection:
    """A DuckDB with a memory cap that spills to the workspace's tmp folder.

    Its default database, where the staged and cleaned tables go, is in memory, or for
    a large source (`work_on_disk`) a DuckDB file in the load's tmp folder: there those
    tables are stored compressed (a 20M-row staged file: 508 MB against 1.9 GB) and
    read back through the buffer pool, instead of spilling uncompressed under the cap.
    """
    spill = ws.tmp_dir / load_id / "spill"
    spill.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "memory_limit": settings.memory_limit,
        "temp_directory": str(spill),
        "preserve_insertion_order": True,
        # Hand freed memory back to the OS sooner (defaults 128MB / 512MB): the
        # allocator's cache sits outside memory_limit. 20M events under 1GB peaked at
        # 1.50-1.54 GB RSS without these, 1.33-1.41 GB with them, at the same speed.
        "allocator_flush_threshold": "32MB",
        "allocator_bulk_deallocation_flush_threshold": "128MB",
    }
    if settings.threads:
        config["threads"] = settings.threads
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET TimeZone = 'UTC'")
    register_text_functions(con)
    if work_on_disk(settings.work_on_disk, source_bytes, _memory_limit_bytes(con)):
        work = ws.tmp_dir / load_id / "work.duckdb"
        con.execute(f"ATTACH {sql_literal(str(work))} AS work")
        con.execute("USE work")
        _log.info("tables on disk", source_mb=round(source_bytes / 1e6), file=str(work))
    return con


_UNITS = {"bytes": 0, "KiB": 10, "MiB": 20, "GiB": 30, "TiB": 40, "PiB": 50, "EiB": 60}
"""Binary units as DuckDB prints sizes, as powers of two."""


def _memory_limit_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """The connection's memory limit, read back (DuckDB reports it as e.g. `953.6 MiB`).

    A form this does not know counts as no limit (then nothing is put on disk).
    """
    ((text,),) = con.execute("SELECT current_setting('memory_limit')").fetchall()
    try:
        number, unit = str(text).split()
        return int(float(number) * (1 << _UNITS[unit]))
    except (ValueError, KeyError):
        return 1 << 62


def work_on_disk(mode: str, source_bytes: int, memory_limit: int) -> bool:
    """Whether a load keeps its tables in a DuckDB file (see `processing_connection`).

    `auto`: when the source's text is more than half the memory limit. Measured
    in-process on `benchmarks/ingest.py` files, as text / limit: 5M rows at 0.34 (1 GB)
    and at 0.45 (768 MB) were 1 and 3 s faster in memory (of 16-18 s), at 0.60 (576 MB)
    even; 10M at 0.69 5 s faster on disk (42 -> 36 s), 20M at 1.39 93 -> 71-73 s.

    >>> work_on_disk("auto", 600 << 20, 1 << 30), work_on_disk("auto", 300 << 20, 1 << 30)
    (True, False)
    >>> work_on_disk("never", 1 << 40, 1 << 30), work_on_disk("always", 0, 1 << 30)
    (False, True)
    """
    if mode == "auto":
        return source_bytes > memory_limit // 2
    return mode == "always"


def fingerprint(req: IngestRequest, mapping: MappingConfig | None) -> str:
    """Hash of what determines a load's result: adapter, kind, mapping and file contents."""
    p = req.path
    if p.is_dir():
        contents = sorted((f.name, sha256_file(f)) for f in p.iterdir() if f.is_file())
    elif p.is_file():
        contents = [(p.name, sha256_file(p))]
    else:
        raise IngestError("no such file or folder", path=str(p))
    blob = json.dumps(
        {
            "adapter": req.adapter,
            "kind": req.kind,
            "contents": [c[1] for c in contents],
            "mapping": mapping.model_dump(mode="json") if mapping else None,
            "schema": 1,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def _source_nulls(con: duckdb.DuckDBPyConnection, stage: StagedTable) -> dict[str, int]:
    """Values per source column that are missing or a null marker, as cleaning reads them."""
    # count_if over a CASE: its cheap first-character test keeps most values from the
    # regex (a FILTER clause evaluated the whole test on every row: 3x slower).
    parts = [
        f"count_if({is_null_or_marker(f'CAST({quote_ident(c)} AS VARCHAR)')})"
        for c in stage.columns
    ]
    row = con.execute(f"SELECT {', '.join(parts)} FROM {stage.table}").fetchone() or ()
    return {c: int(n) for c, n in zip(stage.columns, row, strict=True)}


def _schema_json(kind: AssetKind) -> list[dict[str, Any]]:
    return [
        {
            "name": f.name,
            "type": str(f.type),
            "nullable": f.nullable,
            "doc": f.metadata[b"doc"].decode(),
            "pii": f.metadata[b"pii"].decode(),
        }
        for f in arrow_schema(kind)
    ]


class _Load:
    """State of one ingest while it runs."""

    def __init__(self, ws: Workspace, settings: ShopkeeperSettings, now: datetime) -> None:
        self.ws, self.settings, self.now = ws, settings, now
        self.load_id = uuid.uuid4().hex[:12]
        self.tmp = ws.tmp_dir / self.load_id
        self.cipher = ws.field_cipher
        """Seals sensitive columns (`_fields`); its key ring loads on first use."""
        self._source_nulls: dict[str, dict[str, int]] = {}
        """Null counts per staged table: adapters plan several assets from one file."""
        self.spark: SparkCleaner | None = None
        """Cleans on Spark when the request asks for that engine."""

    def run(
        self,
        req: IngestRequest,
        mapping: MappingConfig | None,
        fp: str,
        latest: dict[str, tuple[int, list[str]]],
        pseudo: Pseudonymizer,
    ) -> list[dict[str, Any]]:
        con = processing_connection(self.ws, self.settings, self.load_id, payload_bytes(req.path))
        register_sealing(con, self.cipher)
        stack = ExitStack()
        try:
            if req.engine == "spark":
                from shopkeeper.warehouse._spark_engine import SparkCleaner, spark_session

                session = stack.enter_context(spark_session(self.settings))
                self.spark = SparkCleaner(con, session, self.tmp / "spark")
                stack.callback(self.spark.close)
            ctx = AdapterContext(con, self.tmp / "staged")
            with progress("Reading sources", total=None) as pb:
                plans = get_adapter(req.adapter).plan(ctx, req.path, req.kind, mapping)
                pb.update(1)
            written: list[tuple[AssetPlan, WrittenVersion, list[tuple[str, int, str]]]] = []
            items_source: tuple[str, int] | None = None
            if "items" in latest:
                items_source = (self._relation(latest["items"][1]), latest["items"][0])
            with progress("Cleaning", total=len(plans)) as pb:
                for i, plan in enumerate(plans):
                    pb.update(0, description=f"Cleaning {plan.asset}")
                    wv, parents = self._one(con, plan, i, latest, pseudo, items_source)
                    written.append((plan, wv, parents))
                    if plan.kind == "items":
                        files = [str(p) for p in wv.data_files]
                        items_source = (
                            f"read_parquet([{', '.join(map(sql_literal, files))}])",
                            wv.version,
                        )
                    pb.update(1)
            results = self._commit(req, fp, ctx, written)
        finally:
            stack.close()
            con.close()
            shutil.rmtree(self.tmp, ignore_errors=True)
        return results

    def _relation(self, rel_files: list[str]) -> str:
        paths = [str(self.ws.absolute(p)) for p in rel_files]
        return (
            f"read_parquet([{', '.join(map(sql_literal, paths))}])"
            if paths
            else "(SELECT NULL::VARCHAR AS item_id WHERE false)"
        )

    def _one(
        self,
        con: duckdb.DuckDBPyConnection,
        plan: AssetPlan,
        i: int,
        latest: dict[str, tuple[int, list[str]]],
        pseudo: Pseudonymizer,
        items_source: tuple[str, int] | None,
    ) -> tuple[WrittenVersion, list[Any]]:
        timer = Stopwatch()
        prev_version, prev_files = latest.get(plan.asset, (0, []))
        version = prev_version + 1
        check_items = items_source if plan.depends_on_items else None
        load = self._classify(
            con, plan, pseudo, check_items[0] if check_items else None, f"classified_{i}"
        )
        t_classify = timer.seconds
        out_dir = self.tmp / "out" / plan.asset
        wv = write_version(con, plan, load, pseudo, version, prev_files, self.ws.home, out_dir)
        t_write = timer.seconds - t_classify
        if not counts_add_up(wv.counts):
            raise IngestError(f"internal accounting error for {plan.asset}: {wv.counts}")
        parents: list[tuple[str, int, str]] = []
        if prev_version:
            parents.append((plan.asset, prev_version, "previous"))
        if check_items and plan.asset != "items":
            parents.append(("items", check_items[1], "checked_against"))
        all_files = [str(p) for p in wv.data_files] + [
            str(self.ws.absolute(p)) for p in wv.inherited_files
        ]
        quality = build_quality(
            con,
            plan.kind,
            all_files,
            wv.counts,
            wv.reasons,
            wv.pii,
            self._nulls_of(con, plan.stage),
            self.now,
        )
        wv.row_count = int(quality["rows"])
        wv.quality = quality
        load.release(con)
        _log.info(
            "cleaned",
            asset=plan.asset,
            version=version,
            elapsed=str(timer),
            classify_s=round(t_classify, 2),
            write_s=round(t_write, 2),
            **wv.counts,
        )
        return wv, parents

    def _classify(
        self,
        con: duckdb.DuckDBPyConnection,
        plan: AssetPlan,
        pseudo: Pseudonymizer,
        items_source: str | None,
        table: str,
    ) -> CleanedLoad:
        if self.spark is not None:
            return self.spark.classify(plan, pseudo, self.now, items_source, table)
        return classify(con, plan, pseudo, self.now, items_source, table)

    def _nulls_of(self, con: duckdb.DuckDBPyConnection, stage: StagedTable) -> dict[str, int]:
        if stage.table not in self._source_nulls:
            self._source_nulls[stage.table] = _source_nulls(con, stage)
        return self._source_nulls[stage.table]

    def _commit(
        self,
        req: IngestRequest,
        fp: str,
        ctx: AdapterContext,
        written: list[tuple[AssetPlan, WrittenVersion, list[Any]]],
    ) -> list[dict[str, Any]]:
        moves: list[tuple[Path, Path]] = []
        file_rows: list[tuple[str, int, str, str, int]] = []
        results: list[dict[str, Any]] = []
        for plan, wv, _ in written:
            vdir = f"v{wv.version:06d}-{self.load_id}"
            for role, files, root in (
                ("data", wv.data_files, self.ws.assets_dir),
                (
                    "quarantine",
                    [wv.quarantine_file] if wv.quarantine_file else [],
                    self.ws.quarantine_dir,
                ),
            ):
                for f in files:
                    assert f is not None
                    dest = root / plan.asset / vdir / f.name
                    moves.append((f, dest))
                    rows = wv.file_rows.get(str(f), wv.quarantine_rows)
                    file_rows.append(
                        (
                            plan.asset,
                            wv.version,
                            role,
                            self.ws.relative(dest.parent) + "/" + f.name,
                            rows,
                        )
                    )
            file_rows.extend(
                (plan.asset, wv.version, "data", rel, -1) for rel in wv.inherited_files
            )
            results.append(
                {
                    "asset": plan.asset,
                    "version": wv.version,
                    **wv.counts,
                    "reasons": wv.reasons,
                    "rows": wv.row_count,
                    "status": "written",
                }
            )
        for src, dest in moves:
            dest.parent.mkdir(parents=True, exist_ok=True)
            src.replace(dest)
            fsync_path(dest.parent)
        with Warehouse(self.ws) as wh:
            con = wh.con
            con.execute("BEGIN TRANSACTION")
            try:
                for plan, wv, parents in written:
                    self._insert_version(con, req, plan, wv, parents, ctx)
                for asset, version, role, path, rows in file_rows:
                    if rows < 0:
                        prow = con.execute(
                            "SELECT rows FROM meta.files WHERE path = ? LIMIT 1", [path]
                        ).fetchone()
                        rows = int(prow[0]) if prow else 0
                    con.execute(
                        "INSERT INTO meta.files VALUES (?, ?, ?, ?, ?)",
                        [asset, version, role, path, rows],
                    )
                con.execute(
                    "INSERT INTO meta.loads VALUES (?, ?, ?, ?, ?)",
                    [self.load_id, fp, req.adapter, self.now, json.dumps(results)],
                )
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return results

    def _insert_version(
        self,
        con: duckdb.DuckDBPyConnection,
        req: IngestRequest,
        plan: AssetPlan,
        wv: WrittenVersion,
        parents: list[Any],
        ctx: AdapterContext,
    ) -> None:
        pii = {c.name: c.pii for c in columns(plan.kind)}
        params = {
            **plan.params,
            **encryption_params(plan.kind, self.cipher),
            "adapter": req.adapter,
            "engine": req.engine,
            "shopkeeper": __version__,
        }
        con.execute(
            "INSERT INTO meta.versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                plan.asset,
                wv.version,
                plan.kind,
                self.now,
                self.load_id,
                plan.transform,
                json.dumps(params, default=str),
                wv.row_count,
                json.dumps(_schema_json(plan.kind)),
                json.dumps(pii),
                wv.counts["input_rows"],
                wv.counts["clean_rows"],
                wv.counts["quarantined_rows"],
                wv.counts["duplicate_rows"],
                json.dumps(wv.reasons),
                json.dumps(wv.quality, default=str),
            ],
        )
        src = plan.stage.source
        con.execute(
            "INSERT INTO meta.sources VALUES (?, ?, ?, ?, ?)",
            [plan.asset, wv.version, src.display, src.sha256, src.size],
        )
        for pa_, pv, rel in parents:
            con.execute(
                "INSERT INTO meta.parents VALUES (?, ?, ?, ?, ?)",
                [plan.asset, wv.version, pa_, pv, rel],
            )


def ingest(
    workspace: Workspace,
    req: IngestRequest,
    settings: ShopkeeperSettings | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Ingest one source into new asset versions; see the module docstring.

    Returns:
        One dict per asset: asset, version, input/clean/quarantined/duplicate rows,
        reasons, rows (in the new version) and status (`written` or `unchanged`).

    Raises:
        ConfigError: bad mapping, adapter, kind or engine, or no Java for the Spark
            engine (nothing written).
        IngestError: the source cannot be read (nothing written).
        ImportError: the Spark engine without PySpark (`pip install "shopkeeper[spark]"`).
    """
    settings = settings or ShopkeeperSettings()
    if req.kind is not None and req.kind not in ASSET_KINDS:
        raise ConfigError(f"unknown kind {req.kind!r}; known: {list(ASSET_KINDS)}")
    if req.engine not in ENGINES:
        raise ConfigError(f"unknown engine {req.engine!r}; known: {list(ENGINES)}")
    if req.engine == "spark":
        from shopkeeper.clean._spark import require_spark

        require_spark()
    mapping = load_yaml_config(req.mapping_path, MappingConfig) if req.mapping_path else None
    if not req.path.exists():
        raise IngestError("no such file or folder", path=str(req.path))
    get_adapter(req.adapter)
    with hashes_reused():
        return _ingest(workspace, req, mapping, settings, now)


def _ingest(
    workspace: Workspace,
    req: IngestRequest,
    mapping: MappingConfig | None,
    settings: ShopkeeperSettings,
    now: datetime | None,
) -> list[dict[str, Any]]:
    fp = fingerprint(req, mapping)
    with workspace.write_lock():
        with Warehouse(workspace) as wh:
            previous = wh.find_load(fp)
            if previous is not None:
                return [{**r, "status": "unchanged"} for r in previous]
            recover_pending_rotation(workspace, wh)
            workspace.sweep(wh.referenced_dirs())
            latest = {
                v.asset: (
                    v.version,
                    [str(p.relative_to(workspace.home)) for p in wh.files(v.asset, v.version)],
                )
                for v in wh.latest_versions()
            }
        pseudo = workspace.keys.load()
        load = _Load(workspace, settings, now or datetime.now(UTC))
        return load.run(req, mapping, fp, latest, pseudo)
