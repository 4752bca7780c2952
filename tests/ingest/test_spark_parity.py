"""The Spark engine writes what the DuckDB engine writes: rows, quarantine and accounting.

Each source is ingested twice, into two workspaces sharing one pseudonymization key:
once with `engine="duckdb"`, once with `engine="spark"` (one `local[2]` SparkSession for
the module). Clean tables are compared row for row after ordering, quarantines row for
row (reason, column, line, raw), and the catalog's counts and reasons exactly.
Sealed values (users' attributes) are compared decrypted: their ciphertexts use fresh
nonces.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import duckdb
import pytest

from shopkeeper.clean import is_token
from shopkeeper.testing import generate_events
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_spec("pyspark") is None, reason="needs the spark extra"),
    pytest.mark.skipif(shutil.which("java") is None, reason="needs a Java runtime"),
]

SAMPLE = Path(__file__).parents[2] / "src/shopkeeper/samples/online-retail-2010-12.csv.gz"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
COUNTS = ("input_rows", "clean_rows", "quarantined_rows", "duplicate_rows", "reasons", "rows")


@pytest.fixture(scope="module")
def spark():
    from shopkeeper.clean._spark import start_spark

    session = start_spark("local[2]", "1g", 2)
    yield session
    session.stop()


def _ingest_both(root: Path, req: IngestRequest) -> dict[str, tuple[Workspace, list[Any]]]:
    out: dict[str, tuple[Workspace, list[Any]]] = {}
    for engine in ("duckdb", "spark"):
        ws = Workspace(root / engine)
        if engine == "spark":  # the same pseudonyms: the DuckDB workspace's key
            ws.keys.path.parent.mkdir(parents=True, mode=0o700)
            shutil.copy(out["duckdb"][0].keys.path, ws.keys.path)
            ws.keys.path.chmod(0o600)
        results = ingest(ws, IngestRequest(req.path, req.adapter, req.kind, engine=engine), now=NOW)
        out[engine] = (ws, results)
    return out


def _open(ws: Workspace, value: Any) -> Any:
    """A value with sealed parts decrypted (whole tokens, or tokens inside a JSON object)."""
    if not isinstance(value, str):
        return value
    if is_token(value):
        return ws.field_cipher.decrypt(value)
    if value.startswith("{"):
        obj = json.loads(value)
        opened = {k: _open(ws, v) for k, v in obj.items()}
        return json.dumps(opened, sort_keys=True)
    return value


def _rows(ws: Workspace, asset: str, role: str) -> list[tuple[Any, ...]]:
    with Warehouse(ws, read_only=True) as wh:
        version = wh.latest(asset)
        assert version is not None
        files = [str(p) for p in wh.files(asset, version.version, role)]
    if not files:
        return []
    cols = "* EXCLUDE (asset, version, source_file)" if role == "quarantine" else "*"
    con = duckdb.connect()
    rows = con.execute(f"SELECT {cols} FROM read_parquet(?)", [files]).fetchall()
    con.close()
    opened = [tuple(_open(ws, v) for v in row) for row in rows]
    return sorted(opened, key=repr)


def _assert_same(both: dict[str, tuple[Workspace, list[Any]]]) -> list[dict[str, Any]]:
    (ws_d, res_d), (ws_s, res_s) = both["duckdb"], both["spark"]
    assert [r["asset"] for r in res_s] == [r["asset"] for r in res_d]
    for d, s in zip(res_d, res_s, strict=True):
        assert {k: s[k] for k in COUNTS} == {k: d[k] for k in COUNTS}, d["asset"]
        assert s["input_rows"] == s["clean_rows"] + s["quarantined_rows"] + s["duplicate_rows"]
        for role in ("data", "quarantine"):
            rows_d, rows_s = _rows(ws_d, d["asset"], role), _rows(ws_s, d["asset"], role)
            assert len(rows_s) == len(rows_d), (d["asset"], role)
            assert rows_s == rows_d, (d["asset"], role)
    with Warehouse(ws_s, read_only=True) as wh:
        assert {v.params["engine"] for v in wh.latest_versions()} == {"spark"}
    return res_d


def test_online_retail_parity(spark, tmp_path):
    res = _assert_same(_ingest_both(tmp_path, IngestRequest(SAMPLE, "online-retail")))
    by_asset = {r["asset"]: r for r in res}
    assert set(by_asset) == {"items", "users", "events"}
    # The sample exercises latest-wins, exact duplicates, product codes, prices and
    # the unknown-item check against the items just written.
    assert by_asset["items"]["reasons"]["superseded"] > 0
    assert by_asset["events"]["reasons"]["price_outlier"] >= 1


def test_synthetic_bad_rows_parity(spark, tmp_path):
    path = tmp_path / "events.csv"
    planted = generate_events(path, rows=30_000, seed=3, bots_per_million=100).to_dict()
    res = _assert_same(_ingest_both(tmp_path, IngestRequest(path, kind="events")))
    (events,) = res
    assert events["reasons"] == planted["reasons"]
    assert planted["reasons"]["bot_user"] > 0
    for key in ("input_rows", "clean_rows", "quarantined_rows", "duplicate_rows"):
        assert events[key] == planted[key]
