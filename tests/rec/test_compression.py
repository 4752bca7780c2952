"""SASRec's compressed copies measured beside it: the report's compression section."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from shopkeeper.errors import ConfigError
from shopkeeper.rec import (
    REPORT_ASSET,
    CompressibleScorer,
    EvalConfig,
    evaluate_scorer,
    make_split,
    parse_compression,
    parse_compressions,
    read_interactions,
    read_report,
    run_evaluation,
    targets_of,
)
from shopkeeper.rec._compression import _torch_threads
from shopkeeper.rec._protocol import eval_users
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest
from tests.cli.test_cli import run
from tests.conftest import SAMPLES

if TYPE_CHECKING:
    from shopkeeper.rec import RecScorer

TINY: dict[str, Any] = {
    "dim": 16,
    "heads": 2,
    "layers": 1,
    "max_len": 8,
    "max_epochs": 2,
    "batch_size": 64,
}
"""A SASRec that fits the sample in a few seconds (the figures need not be good)."""
PROTOCOL = EvalConfig(max_users=120)


@pytest.fixture(scope="module")
def sample_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = Workspace.at(tmp_path_factory.mktemp("rec-compression") / "ws")
    ingest(ws, IngestRequest(SAMPLES / "online-retail-2010-12.csv.gz", "online-retail"))
    return ws


@pytest.fixture(scope="module")
def fitted(sample_ws: Workspace) -> dict[str, RecScorer[Any]]:
    """Receives the fitted scorers of `report`."""
    return {}


@pytest.fixture(scope="module")
def report(sample_ws: Workspace, fitted: dict[str, RecScorer[Any]]) -> dict[str, Any]:
    return run_evaluation(
        sample_ws,
        ["popularity", "sasrec"],
        PROTOCOL,
        model_configs={"sasrec": TINY},
        fitted=fitted,
        compress=["int8", "prune50"],
    )


def test_variant_names() -> None:
    assert parse_compression("int8") == {"quantize": "int8"}
    assert parse_compression("prune30") == {"prune": 0.3}
    assert parse_compression("prune50+int8") == {"prune": 0.5, "quantize": "int8"}
    assert parse_compression("noprior+int8") == {"prior": False, "quantize": "int8"}
    for bad in ("int4", "prune0", "prune100", "prune", "fp16", ""):
        with pytest.raises(ConfigError, match="unknown compression"):
            parse_compression(bad)
    assert parse_compressions("int8,prune50, int8") == ["int8", "prune50"]
    assert parse_compressions("none") == parse_compressions("") == []
    with pytest.raises(ConfigError):
        parse_compressions("int8,half")


def test_section_has_the_full_model_and_each_variant(report: dict[str, Any]) -> None:
    sec = report["compression"]
    assert sec["model"] == "sasrec"
    variants = {v["variant"]: v for v in sec["variants"]}
    assert list(variants) == ["full", "int8", "prune50"]
    full, int8, pruned = variants["full"], variants["int8"], variants["prune50"]
    sasrec = next(r for r in report["models"] if r["model"] == "sasrec")
    assert full["metrics"] == sasrec["metrics"]  # the full model is the evaluated one
    assert (int8["quantize"], int8["prune"]) == ("int8", 0.0)
    assert (pruned["quantize"], pruned["prune"]) == ("none", 0.5)
    n = report["data"]["evaluated_users"]
    assert n == PROTOCOL.max_users
    for v in variants.values():
        for seg, m in v["metrics"].items():
            assert m["users"] == full["metrics"][seg]["users"]  # the same users
            for k, val in m.items():
                if "@" in k and "novelty" not in k:
                    assert 0.0 <= val <= 1.0, (v["variant"], seg, k)
        assert v["metrics"]["all"]["users"] == n
        assert {"NDCG@10", "HR@10", "NDCG@20"} <= set(v["change"])
        ms = v["latency_ms"]
        assert ms["batch"] > 0
        assert ms["single_user"] > 0
        assert ms["per_user"] == pytest.approx(ms["batch"] / sec["latency"]["batch_users"], 0.01)
        assert set(v["latency_change"]) == {"batch", "per_user", "single_user"}
    assert all(x in (0.0, None) for x in full["change"].values())
    assert full["latency_change"]["per_user"] == 0.0
    lat = sec["latency"]
    assert (lat["repeats"], lat["statistic"], lat["batch_users"]) == (5, "median", n)
    assert lat["threads"] == 1  # as a serving worker scores, and steadier on a busy machine


def test_timing_threads_are_restored() -> None:
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    with _torch_threads(1) as used:
        assert used == torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with _torch_threads(None) as used:
        assert used == before


def test_variants_are_the_compressed_models_evaluated(
    sample_ws: Workspace, report: dict[str, Any], fitted: dict[str, RecScorer[Any]]
) -> None:
    variants = {v["variant"]: v for v in report["compression"]["variants"]}
    full_w, int8_w, pruned_w = (variants[k]["weights"] for k in ("full", "int8", "prune50"))
    assert full_w["nonzero_linear_weights"] == full_w["linear_weights"]
    assert pruned_w["nonzero_linear_weights"] == pytest.approx(full_w["linear_weights"] / 2, 0.01)
    assert pruned_w["nonzero_parameters"] < full_w["nonzero_parameters"]
    assert full_w["parameters"] == pruned_w["parameters"] == int8_w["parameters"]
    assert int8_w["size_bytes"] < full_w["size_bytes"]  # int8 linear layers take less room
    # Evaluating the pruned copy again under the same protocol gives the section's figures.
    base = fitted["sasrec"]
    assert isinstance(base, CompressibleScorer)
    with Warehouse(sample_ws, read_only=True) as wh:
        inter = read_interactions(wh, PROTOCOL.event_types, seed=PROTOCOL.seed)
    split = make_split(inter, PROTOCOL)
    targets = targets_of(split, PROTOCOL)
    users = eval_users(targets, PROTOCOL)
    pruned = base.compressed(prune=0.5)
    again = evaluate_scorer(pruned, split, PROTOCOL, users, targets)
    for seg, m in again.items():
        assert m == pytest.approx(variants["prune50"]["metrics"][seg])
    hist = split.train.rows(users[:20])
    assert not np.allclose(pruned.score(hist), base.score(hist))


def test_section_is_stored_in_json_markdown_and_the_table(
    sample_ws: Workspace, report: dict[str, Any]
) -> None:
    stored = read_report(sample_ws, report["version"])
    assert stored["compression"] == json.loads(json.dumps(report["compression"]))
    ndcg = {v["variant"]: v["metrics"]["all"]["NDCG@10"] for v in stored["compression"]["variants"]}
    with Warehouse(sample_ws, read_only=True) as wh:
        version = wh.version(REPORT_ASSET, report["version"])
        rows = wh.con.execute(
            f"SELECT model, value FROM {REPORT_ASSET}_v{report['version']} "
            "WHERE segment = 'all' AND metric = 'NDCG@10' ORDER BY model"
        ).fetchall()
        md = next(
            p for p in wh.files(REPORT_ASSET, report["version"], "artifact") if p.suffix == ".md"
        )
    assert version.params["compression"] == {"model": "sasrec", "variants": ["int8", "prune50"]}
    values = dict(rows)
    assert set(values) == {"popularity", "sasrec", "sasrec:int8", "sasrec:prune50"}
    assert values["sasrec:int8"] == pytest.approx(ndcg["int8"])
    assert values["sasrec:prune50"] == pytest.approx(ndcg["prune50"])
    text = md.read_text()
    assert "## compression (sasrec)" in text
    assert "| prune50 |" in text
    assert "| int8 |" in text


def test_no_section_without_sasrec_or_variants(sample_ws: Workspace) -> None:
    plain = run_evaluation(sample_ws, ["popularity"], PROTOCOL, compress=["int8"], save=False)
    assert "compression" not in plain
    with pytest.raises(ConfigError, match="unknown compression"):
        run_evaluation(sample_ws, ["popularity"], PROTOCOL, compress=["int4"], save=False)


def test_cli_measures_the_default_variants(sample_ws: Workspace) -> None:
    bad = run(sample_ws.home, "evaluate", "rec", "--model", "popularity", "--compress", "int4")
    assert bad.returncode == 2
    assert "--compress" in bad.stderr
    out = run(
        sample_ws.home,
        *("evaluate", "rec", "--model", "sasrec", "--max-users", "40", "--time-budget", "0.02"),
    )
    assert out.returncode == 0, out.stderr
    assert "sasrec compressed" in out.stdout
    assert "prune50" in out.stdout
    stored = read_report(sample_ws)
    assert [v["variant"] for v in stored["compression"]["variants"]] == ["full", "int8", "prune50"]
