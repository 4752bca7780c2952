"""The command-line contract: JSON shapes, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shopkeeper.ingest.adapters._online_retail import NON_PRODUCT_CODES
from tests.conftest import SAMPLES


def run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would, in a subprocess."""
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from shopkeeper.cli import main; main()",
            "--home",
            str(home),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("cli") / "ws"
    out = run(
        home,
        "ingest",
        str(SAMPLES / "online-retail-2010-12.csv.gz"),
        "--adapter",
        "online-retail",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    return home


def test_ingest_json_contract(demo_home: Path) -> None:
    out = run(
        demo_home,
        "--json",
        "ingest",
        str(SAMPLES / "online-retail-2010-12.csv.gz"),
        "--adapter",
        "online-retail",
    )
    assert out.returncode == 0, out.stderr
    results = json.loads(out.stdout)
    assert [r["asset"] for r in results] == ["items", "users", "events"]
    for r in results:
        assert set(r) >= {
            "asset",
            "version",
            "input_rows",
            "clean_rows",
            "quarantined_rows",
            "duplicate_rows",
            "reasons",
        }
        assert r["input_rows"] == r["clean_rows"] + r["quarantined_rows"] + r["duplicate_rows"]
        assert r["input_rows"] == 42481
        assert r["status"] == "unchanged"


def test_catalog_quality_lineage_sql(demo_home: Path) -> None:
    catalog = json.loads(run(demo_home, "catalog", "--json").stdout)
    assert {c["asset"] for c in catalog} == {"items", "users", "events"}
    quality = json.loads(run(demo_home, "quality", "events", "--json").stdout)
    assert quality["load"]["input_rows"] == 42481
    assert quality["reasons"]["missing_user_id"] > 0
    assert quality["source_nulls"]["CustomerID"] > 0
    lineage = json.loads(run(demo_home, "lineage", "events", "--json").stdout)
    assert lineage["root"] == "asset:events@v1"
    assert any(n.startswith("file:") for n in lineage["nodes"])
    rows = json.loads(run(demo_home, "sql", "SELECT count(*) AS n FROM events", "--json").stdout)
    assert rows == [{"n": next(c["rows"] for c in catalog if c["asset"] == "events")}]
    q = json.loads(
        run(
            demo_home,
            "quarantine",
            "events",
            "--reason",
            "non_product_code",
            "--limit",
            "2",
            "--json",
        ).stdout
    )
    assert len(q) == 2
    assert q[0]["source_line"] > 1
    assert json.loads(q[0]["raw"])["StockCode"] in NON_PRODUCT_CODES


def test_exit_codes_and_messages(demo_home: Path, tmp_path: Path) -> None:
    write = run(demo_home, "sql", "DELETE FROM events")
    assert write.returncode == 2
    assert "read-only" in write.stderr
    assert "Traceback" not in write.stderr
    missing = run(demo_home, "ingest", str(tmp_path / "nope.csv"), "--kind", "events")
    assert missing.returncode == 2
    assert "nope.csv" in missing.stderr
    assert "no such file" in missing.stderr
    mapping = tmp_path / "m.yaml"
    mapping.write_text("columns:\n  user_id: [unclosed\n", encoding="utf-8")
    src = tmp_path / "events.csv"
    src.write_text("user_id,item_id,event_type,ts\nu,i,view,2024-01-01\n", encoding="utf-8")
    bad_map = run(demo_home, "ingest", str(src), "--mapping", str(mapping))
    assert bad_map.returncode == 2
    assert "m.yaml" in bad_map.stderr
    assert "line" in bad_map.stderr
    no_col = run(demo_home, "ingest", str(src), "--kind", "items")
    assert no_col.returncode == 2
    assert "title" in no_col.stderr
    unknown = run(demo_home, "quality", "orders")
    assert unknown.returncode == 2
    assert "known:" in unknown.stderr
    usage = run(demo_home, "ingest")
    assert usage.returncode == 2
    verbose = run(demo_home, "-v", "sql", "DROP TABLE meta.versions")
    assert verbose.returncode == 2
    assert "Traceback" in verbose.stderr


def test_pseudonym_lookup_matches_stored_ids(demo_home: Path) -> None:
    pseudo = json.loads(run(demo_home, "privacy", "pseudonym", "17850", "--json").stdout)
    rows = json.loads(
        run(
            demo_home,
            "sql",
            f"SELECT count(*) AS n FROM events WHERE user_id = '{pseudo['user_id']}'",
            "--json",
        ).stdout
    )
    assert rows[0]["n"] > 0


@pytest.mark.slow
def test_demo_runs_and_summarizes(tmp_path: Path) -> None:
    out = run(tmp_path / "demo", "demo", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    versions = {a["asset"]: a["version"] for a in summary["assets"]}
    expected = {"events": 2, "items": 2, "users": 2, "item_embeddings": 1, "item_index": 1}
    assert {a: versions.get(a) for a in expected} == expected
    assert summary["highlights"]["top_items"]
    features = summary["features"]
    # every distinct item text through the real MiniLM (some stock codes share a title)
    assert features["items"] >= features["encoded"] > 2500
    assert features["reused"] == 0
    assert features["model_id"].startswith("sentence-transformers/all-MiniLM-L6-v2@")
    top = summary["highlights"]["top_items"][0]
    similar = summary["similar"][top["item_id"]]
    assert similar["title"] == "WHITE HANGING HEART T-LIGHT HOLDER"
    assert "HEART T-LIGHT HOLDER" in similar["similar"][0]["title"]
    service = summary["service"]  # the demo ends by starting the server and calling it
    assert service["before"]["fallback"] == "popularity"
    assert service["event"]["accepted"] == 1
    assert service["after"]["fallback"] is None
    assert service["after"]["history_length"] == 1
    assert service["search"]["items"]
    compression = summary["recommendations"]["evaluation"].get("compression")
    if compression is not None:  # sasrec evaluated: its compressed copies are measured too
        assert [v["variant"] for v in compression["variants"]] == ["full", "int8", "prune50"]
    human = run(tmp_path / "demo", "demo")
    assert human.returncode == 0
    assert "Already ingested" in human.stdout
    assert "0 texts encoded" in human.stdout
    assert "Similar items by text embedding" in human.stdout
    assert "Try the service" in human.stdout


def test_export_writes_a_delta_table_and_refuses_a_foreign_folder(
    demo_home: Path, tmp_path: Path
) -> None:
    pytest.importorskip("deltalake")
    out = run(demo_home, "export", "events", "--out", str(tmp_path / "events"), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["format"] == "delta"
    assert result["written"][0]["version"] == 1
    assert (tmp_path / "events" / "_delta_log").is_dir()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not a table")
    bad = run(demo_home, "export", "events", "--out", str(tmp_path / "mine"))
    assert bad.returncode != 0
    assert "not empty and holds no Delta table" in bad.stderr
