"""Delta Lake export: every version a Delta commit, readable by a Delta reader, erasure honoured."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from shopkeeper.errors import ConfigError, NotFoundError
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, forget_user, ingest
from shopkeeper.warehouse._delta import export_delta
from tests.conftest import SAMPLES

deltalake = pytest.importorskip("deltalake")
USER = "17850"  # a customer of the December sample


def _ours(ws: Workspace, asset: str, version: int) -> pa.Table:
    with Warehouse(ws, read_only=True) as wh:
        return wh.con.sql(f"SELECT * FROM {asset}_v{version}").to_arrow_table()


def _sorted(t: pa.Table) -> pa.Table:
    """`t` in a canonical order: columns by name, rows by every column."""
    t = t.select(sorted(t.column_names))
    return t.sort_by([(c, "ascending") for c in t.column_names])


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """Events in two versions (December, then January appended), items upserted twice."""
    ws = Workspace.at(tmp_path / "ws")
    for month in ("2010-12", "2011-01"):
        ingest(
            ws, IngestRequest(SAMPLES / f"online-retail-{month}.csv.gz", adapter="online-retail")
        )
    return ws


def test_each_version_is_a_delta_commit_with_the_same_rows(ws: Workspace, tmp_path: Path) -> None:
    dest = tmp_path / "lake" / "events"
    out = export_delta(ws, "events", dest)
    assert [w["version"] for w in out["written"]] == [1, 2]
    assert [w["mode"] for w in out["written"]] == ["overwrite", "append"]  # v2 extends v1
    table = deltalake.DeltaTable(str(dest))
    assert table.version() == 1
    for delta_version, ours in ((0, 1), (1, 2)):
        table.load_as_version(delta_version)
        theirs = table.to_pyarrow_table()
        expected = _ours(ws, "events", ours)
        assert theirs.num_rows == expected.num_rows > 0
        assert _sorted(theirs).equals(_sorted(expected.cast(theirs.schema)))
    assert out["rows"] == _ours(ws, "events", 2).num_rows

    again = export_delta(ws, "events", dest)  # nothing new: no commit
    assert again["written"] == []
    assert again["delta_version"] == 1

    items = export_delta(ws, "items", tmp_path / "lake" / "items")
    assert items["written"][-1]["version"] == 2
    latest = deltalake.DeltaTable(str(tmp_path / "lake" / "items")).to_pyarrow_table()
    assert latest.num_rows == _ours(ws, "items", 2).num_rows


def test_an_erased_user_leaves_the_delta_files_too(ws: Workspace, tmp_path: Path) -> None:
    dest = tmp_path / "lake" / "events"
    export_delta(ws, "events", dest)
    with Warehouse(ws, read_only=True) as wh:
        before = wh.con.execute("SELECT count(*) FROM events").fetchone()
    forget_user(ws, USER, actor="test")
    with Warehouse(ws, read_only=True) as wh:
        after = wh.con.execute("SELECT count(*) FROM events").fetchone()
    assert before is not None
    assert after is not None
    assert after[0] < before[0]

    out = export_delta(ws, "events", dest)
    assert out["rewritten_after_erasure"]
    assert out["stale_versions"] == [1, 2]
    table = deltalake.DeltaTable(str(dest))
    assert table.to_pyarrow_table().num_rows == after[0]
    # no Parquet file left under the table holds the erased rows: the old ones were vacuumed
    files_on_disk = {p.name for p in dest.glob("*.parquet")}
    assert files_on_disk == {Path(f).name for f in table.file_uris()}
    total = sum(pa.parquet.read_metadata(p).num_rows for p in dest.glob("*.parquet"))
    assert total == after[0]


def test_bad_targets_are_refused(ws: Workspace, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError):
        export_delta(ws, "no_such_asset", tmp_path / "x")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        export_delta(ws, "events", busy)
    foreign = tmp_path / "foreign"
    deltalake.write_deltalake(str(foreign), pa.table({"a": [1]}))
    with pytest.raises(ConfigError, match="did not write"):
        export_delta(ws, "events", foreign)
