"""Versions, upserts, appends, idempotence and read-only SQL on a real workspace."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopkeeper.errors import IngestError, NotFoundError, ReadOnlyQueryError
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest, lineage_graph

EVENTS_1 = """user_id,item_id,event_type,ts,price
u1,i1,view,2024-01-01 10:00:00,
u1,i1,view,2024-01-01 10:00:00,
u2,i2,purchase,2024-01-01 11:00:00,5.0
,i3,view,2024-01-01 12:00:00,
"""
ITEMS_1 = """item_id,title,price
i1,Red mug,3.5
i2,Blue mug,4.0
i3,Green mug,4.5
"""
ITEMS_2 = """item_id,title,price
i2,Blue mug (large),4.5
i4,Teapot,12.0
"""


def _write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text, encoding="utf-8")
    return p


def test_upsert_keeps_history_and_latest_wins(tmp_path: Path, workspace: Workspace) -> None:
    ingest(workspace, IngestRequest(_write(tmp_path, "items1.csv", ITEMS_1), kind="items"))
    out = ingest(workspace, IngestRequest(_write(tmp_path, "items2.csv", ITEMS_2), kind="items"))
    assert out[0]["version"] == 2
    assert out[0]["rows"] == 4
    with Warehouse(workspace, read_only=True) as wh:
        _, rows = wh.query("SELECT item_id, title FROM items ORDER BY item_id")
        assert rows == [
            ("i1", "Red mug"),
            ("i2", "Blue mug (large)"),
            ("i3", "Green mug"),
            ("i4", "Teapot"),
        ]
        _, old = wh.query("SELECT title FROM items_v1 WHERE item_id = 'i2'")
        assert old == [("Blue mug",)]
        assert [v.version for v in wh.versions("items")] == [1, 2]
        graph = lineage_graph(wh, "items")
        assert {"from": "asset:items@v1", "to": "asset:items@v2", "relation": "previous"} in graph[
            "edges"
        ]


def test_events_append_and_accounting(tmp_path: Path, workspace: Workspace) -> None:
    ingest(workspace, IngestRequest(_write(tmp_path, "items.csv", ITEMS_1), kind="items"))
    first = ingest(workspace, IngestRequest(_write(tmp_path, "ev1.csv", EVENTS_1), kind="events"))[
        0
    ]
    assert first == first | {
        "input_rows": 4,
        "clean_rows": 2,
        "quarantined_rows": 1,
        "duplicate_rows": 1,
    }
    assert first["reasons"] == {"exact_duplicate": 1, "missing_user_id": 1}
    second = ingest(
        workspace,
        IngestRequest(
            _write(tmp_path, "ev2.csv", "user_id,item_id,event_type,ts\nu3,i2,click,2024-02-01\n"),
            kind="events",
        ),
    )[0]
    assert second["version"] == 2
    assert second["rows"] == 3
    with Warehouse(workspace, read_only=True) as wh:
        _, n = wh.query("SELECT count(*) FROM events")
        assert n == [(3,)]
        _, n1 = wh.query("SELECT count(*) FROM events_v1")
        assert n1 == [(2,)]
        v2 = wh.version("events")
        assert [p for _, p, r in wh.parents("events", 2) if r == "checked_against"] == [1]
        assert v2.quality["load"]["input_rows"] == 1


def test_same_content_is_a_noop(tmp_path: Path, workspace: Workspace) -> None:
    path = _write(tmp_path, "items.csv", ITEMS_1)
    first = ingest(workspace, IngestRequest(path, kind="items"))
    copy = _write(tmp_path, "same_items_renamed.csv", ITEMS_1)
    again = ingest(workspace, IngestRequest(copy, kind="items"))
    assert [r["status"] for r in again] == ["unchanged"]
    assert again[0]["version"] == first[0]["version"] == 1
    with Warehouse(workspace, read_only=True) as wh:
        assert len(wh.versions("items")) == 1


def test_unreadable_file_changes_nothing(tmp_path: Path, workspace: Workspace) -> None:
    ingest(workspace, IngestRequest(_write(tmp_path, "items.csv", ITEMS_1), kind="items"))
    bad = tmp_path / "items_bad.csv.gz"
    bad.write_bytes(b"this is not gzip at all")
    with pytest.raises(IngestError) as err:
        ingest(workspace, IngestRequest(bad, kind="items"))
    assert "items_bad.csv.gz" in str(err.value)
    with Warehouse(workspace, read_only=True) as wh:
        assert [v.version for v in wh.versions("items")] == [1]
    assert not any(workspace.tmp_dir.iterdir())


def test_sql_is_read_only(tmp_path: Path, workspace: Workspace) -> None:
    ingest(workspace, IngestRequest(_write(tmp_path, "items.csv", ITEMS_1), kind="items"))
    with Warehouse(workspace, read_only=True) as wh:
        for stmt in (
            "DELETE FROM items",
            "CREATE TABLE x AS SELECT 1",
            "INSERT INTO meta.versions SELECT * FROM meta.versions",
            f"COPY items TO '{tmp_path / 'x.csv'}'",
            "ATTACH 'x.db' AS x",
            "SELECT 1; DROP TABLE meta.versions",
        ):
            with pytest.raises(ReadOnlyQueryError):
                wh.query(stmt)
        names, rows = wh.query("SELECT count(*) AS n FROM items")
        assert names == ["n"]
        assert rows == [(3,)]
    assert not (tmp_path / "x.csv").exists()


def test_unknown_asset_lists_known(tmp_path: Path, workspace: Workspace) -> None:
    ingest(workspace, IngestRequest(_write(tmp_path, "items.csv", ITEMS_1), kind="items"))
    with (
        Warehouse(workspace, read_only=True) as wh,
        pytest.raises(NotFoundError, match="known: items"),
    ):
        wh.version("orders")


def test_catalog_records_schema_sources_and_pii(tmp_path: Path, workspace: Workspace) -> None:
    path = _write(tmp_path, "ev.csv", EVENTS_1)
    ingest(workspace, IngestRequest(path, kind="events"))
    with Warehouse(workspace, read_only=True) as wh:
        v = wh.version("events")
        assert v.pii["user_id"] == "pseudonymized"
        assert v.pii["query"] == "masked_free_text"
        assert [c["name"] for c in v.schema][:4] == ["user_id", "item_id", "event_type", "ts"]
        assert all(c["doc"] for c in v.schema)
        (src,) = wh.sources("events", 1)
        assert src["path"] == str(path)
        assert len(src["sha256"]) == 64
        assert v.quality["columns"]["price"]["nulls"] == 1
        assert v.quality["freshness"]["latest"].startswith("2024-01-01T11:00")


def test_quarantine_view_exists_when_nothing_was_rejected(
    tmp_path: Path, workspace: Workspace
) -> None:
    ingest(workspace, IngestRequest(_write(tmp_path, "items.csv", ITEMS_1), kind="items"))
    with Warehouse(workspace, read_only=True) as wh:
        names, rows = wh.query("SELECT * FROM quarantine")
    assert rows == []
    assert names == [
        "asset",
        "version",
        "reason",
        "column_name",
        "detail",
        "source_file",
        "source_line",
        "raw",
    ]
