"""Large loads keep their staged and cleaned tables in a DuckDB file: same results."""

from __future__ import annotations

import shutil
from typing import TYPE_CHECKING

import pyarrow as pa
import pytest
from structlog.testing import capture_logs

from shopkeeper.config import ShopkeeperSettings
from shopkeeper.testing import PlantedEvents, SyntheticEventsConfig, generate_events
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest
from shopkeeper.warehouse._loader import processing_connection

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("mode", "source_bytes", "database"),
    [
        ("never", 1 << 40, "memory"),
        ("always", 0, "work"),
        ("auto", 40 << 20, "work"),  # more than half of the 64 MB limit
        ("auto", 20 << 20, "memory"),
    ],
)
def test_tables_go_where_the_setting_says(
    workspace: Workspace, mode: str, source_bytes: int, database: str
) -> None:
    settings = ShopkeeperSettings(memory_limit="64MB", work_on_disk=mode)  # type: ignore[arg-type]
    con = processing_connection(workspace, settings, "load1", source_bytes)
    try:
        con.execute("CREATE TABLE staged AS SELECT range AS i FROM range(1000)")
        con.execute("CREATE TEMP TABLE side AS SELECT 1 AS x")
        rows = con.execute(
            "SELECT table_name, database_name FROM duckdb_tables() ORDER BY 1"
        ).fetchall()
    finally:
        con.close()
    assert rows == [("side", "temp"), ("staged", database)]
    work = workspace.tmp_dir / "load1" / "work.duckdb"
    assert work.exists() == (database == "work")


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> PlantedEvents:
    path = tmp_path_factory.mktemp("planted") / "events.csv"
    return generate_events(path, SyntheticEventsConfig.small(seed=3))


def _load(
    home: Path, planted: PlantedEvents, mode: str, keys: Path | None
) -> tuple[pa.Table, pa.Table]:
    """Ingest `planted` into a new workspace; its clean rows and quarantine, sorted."""
    ws = Workspace.at(home)
    if keys is not None:  # the same pseudonym key: the same stored user ids
        shutil.copytree(keys, home / "keys")
    settings = ShopkeeperSettings(work_on_disk=mode)  # type: ignore[arg-type]
    with capture_logs() as logs:
        (result,) = ingest(ws, IngestRequest(planted.path, "generic", "events"), settings)
    on_disk = [e for e in logs if e["event"] == "tables on disk"]
    assert len(on_disk) == (mode == "always")
    assert result["reasons"] == planted.reasons
    assert result["clean_rows"] == planted.clean_rows
    assert result["duplicate_rows"] == planted.duplicate_rows
    with Warehouse(ws, read_only=True) as wh:
        clean = wh.con.sql("SELECT * FROM events ORDER BY ALL").to_arrow_table()
        quarantined = wh.con.sql(
            "SELECT reason, column_name, source_line FROM quarantine ORDER BY ALL"
        ).to_arrow_table()
    return clean, quarantined


def test_a_load_on_disk_stores_what_one_in_memory_does(
    tmp_path: Path, planted: PlantedEvents
) -> None:
    mem_clean, mem_q = _load(tmp_path / "mem", planted, "never", None)
    disk_clean, disk_q = _load(tmp_path / "disk", planted, "always", tmp_path / "mem" / "keys")
    assert disk_clean.equals(mem_clean)
    assert disk_q.equals(mem_q)
    assert mem_q.num_rows == planted.quarantined_rows
    assert mem_clean.num_rows == planted.clean_rows
    assert list(Workspace.at(tmp_path / "disk").tmp_dir.glob("*/work.duckdb")) == []  # removed
