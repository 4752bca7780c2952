"""`shopkeeper features build` and `shopkeeper similar`: JSON shapes and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import run
from tests.features.catalog import item_rows, write_items


@pytest.fixture(scope="module")
def items_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("features-cli")
    items = write_items(root / "items.csv", item_rows(60))
    out = run(root / "ws", "ingest", str(items), "--kind", "items", "--json")
    assert out.returncode == 0, out.stderr
    return root / "ws"


def test_build_then_similar(items_home: Path, tiny_model_dir: Path) -> None:
    out = run(items_home, "similar", "SKU00001", "--json")
    assert out.returncode == 2
    assert "features build" in out.stderr
    out = run(items_home, "features", "build", "--model", str(tiny_model_dir), "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert {"items", "encoded", "reused", "model_id", "seconds"} <= set(summary)
    assert (summary["items"], summary["encoded"], summary["reused"]) == (60, 60, 0)
    assert summary["model_id"].startswith("tiny-model@")
    assert summary["index"]["type"] == "flat"
    again = json.loads(
        run(items_home, "--json", "features", "build", "--model", str(tiny_model_dir)).stdout
    )
    assert (again["status"], again["encoded"], again["reused"]) == ("unchanged", 0, 60)

    out = run(items_home, "similar", "SKU00001", "--k", "4", "--json")
    assert out.returncode == 0, out.stderr
    hits = json.loads(out.stdout)
    assert len(hits) == 4
    assert all(set(h) == {"item_id", "score"} for h in hits)
    assert "SKU00001" not in {h["item_id"] for h in hits}
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    human = run(items_home, "similar", "SKU00001", "--k", "2")
    assert human.returncode == 0
    assert hits[0]["item_id"] in human.stdout
    assert "blue shirt model 1" in human.stdout  # the title of SKU00001

    out = run(items_home, "similar", "NO-SUCH-ITEM")
    assert out.returncode == 2
    assert "not in the index" in out.stderr


def test_config_file_and_usage_errors(
    items_home: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    cfg = tmp_path / "features.yaml"
    cfg.write_text(
        f"text: {{template: ['{{title}}']}}\nencoder: {{model_path: '{tiny_model_dir}'}}\n"
    )
    out = run(
        items_home,
        "features",
        "build",
        "--config",
        str(cfg),
        "--backend",
        "torch",
        "--precision",
        "fp32",
    )
    assert out.returncode == 0, out.stderr
    assert "60 texts encoded" in out.stdout  # a new template: every text is new
    bad = tmp_path / "bad.yaml"
    bad.write_text("text: {template: ['{colour}']}\n")
    out = run(items_home, "features", "build", "--config", str(bad))
    assert out.returncode == 2
    assert "unknown field" in out.stderr
    out = run(items_home, "features", "build", "--precision", "int4")
    assert out.returncode == 2
