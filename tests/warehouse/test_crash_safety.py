"""`kill -9` at any moment leaves the workspace at the previous version or the new one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest

from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest
from tests.conftest import SAMPLES

_SCRIPT = """
import sys
from pathlib import Path
from shopkeeper.warehouse import IngestRequest, Workspace, ingest
ingest(Workspace.at(sys.argv[1]), IngestRequest(Path(sys.argv[2]), "online-retail"))
"""


def _assert_consistent(ws: Workspace) -> dict[str, int]:
    """Every catalogued file exists and holds the rows the catalog says; return versions."""
    if not ws.exists():
        return {}
    with Warehouse(ws) as wh:
        latest = {v.asset: v.version for v in wh.latest_versions()}
        for v in wh.latest_versions():
            files = wh.files(v.asset, v.version)
            assert all(f.exists() for f in files), f"{v.asset} v{v.version} misses a file"
            con = duckdb.connect()
            n = con.execute(
                "SELECT count(*) FROM read_parquet(?)", [[str(f) for f in files]]
            ).fetchone()
            con.close()
            assert n is not None
            assert n[0] == v.row_count
            _, rows = wh.query(f"SELECT count(*) FROM {v.asset}")
            assert rows[0][0] == v.row_count
    return latest


@pytest.mark.slow
@pytest.mark.integration
def test_kill_during_ingest_is_atomic(tmp_path: Path, rng: np.random.Generator) -> None:
    ws = Workspace.at(tmp_path / "ws")
    first, second = (
        SAMPLES / "online-retail-2010-12.csv.gz",
        SAMPLES / "online-retail-2011-01.csv.gz",
    )
    ingest(ws, IngestRequest(first, "online-retail"))
    before = _assert_consistent(ws)
    assert before == {"events": 1, "items": 1, "users": 1}
    outcomes = set()
    for delay in sorted(rng.uniform(0.3, 4.0, size=6)):
        proc = subprocess.Popen(
            [sys.executable, "-c", _SCRIPT, str(ws.home), str(second)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(float(delay))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        state = _assert_consistent(ws)
        assert state in (before, {"events": 2, "items": 2, "users": 2}), state
        outcomes.add(tuple(sorted(state.items())))
        if state != before:
            break
    # Whatever happened, a new run completes, and leaves no orphan folders behind.
    ingest(ws, IngestRequest(second, "online-retail"))
    assert _assert_consistent(ws) == {"events": 2, "items": 2, "users": 2}
    with Warehouse(ws) as wh:
        referenced = wh.referenced_dirs()
    on_disk = {
        ws.relative(d) for root in (ws.assets_dir, ws.quarantine_dir) for d in root.glob("*/*")
    }
    assert on_disk == referenced
    assert outcomes
