"""The learned ranker: training on judgments, the asset, save/load, int8 agreement, the
rerank stage, evaluation on the trained split only, and the command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shopkeeper.errors import ConfigError
from shopkeeper.search import Searcher, SearchEvalConfig, evaluate_search, open_lexical
from shopkeeper.search._cross_encoder import CrossEncoder
from shopkeeper.search._late_ranker import LateCrossEncoder
from shopkeeper.search._ranker_asset import RANKER_ASSET, load_ranker, open_reranked
from shopkeeper.search._rerank import RerankedRetriever, fit_grade
from shopkeeper.search._train_ranker import RankerConfig, catalogue_texts, train_ranker
from shopkeeper.warehouse import Warehouse, Workspace, lineage_graph
from tests.cli.test_cli import run
from tests.search.catalog import JUDGMENTS, QUERIES, write_catalogue

# Seed 0 on the 8 tiny queries: q5-q8 train, q1, q3, q4 validation, q2 test.
SPLIT = SearchEvalConfig(validation_fraction=0.25, test_fraction=0.25)


def _cfg(model: Path, **kw: object) -> RankerConfig:
    base = {"model_path": model, "depth": 10, "negatives": 2, "batch_size": 4, "eval_every": 4}
    return RankerConfig.model_validate({**base, **kw})


ARCHITECTURES = pytest.mark.parametrize("architecture", ["full", "late"])


@ARCHITECTURES
def test_training_stores_a_versioned_ranker_with_lineage_and_history(
    search_workspace: Workspace, tiny_model_dir: Path, architecture: str
) -> None:
    cfg = _cfg(tiny_model_dir, epochs=2, patience=0, architecture=architecture)
    out = train_ranker(search_workspace, cfg, None, SPLIT)
    assert (out["asset"], out["version"], out["base"]) == (RANKER_ASSET, 1, "bm25")
    assert (out["train_queries"], out["validation_queries"]) == (4, 3)
    # q5-q8 have 6 judged pairs; each gets up to 2 unjudged pool items as negatives.
    assert out["judged_pairs"] == 6
    assert 0 < out["negative_pairs"] <= 8
    # full: batches of 4 pairs; late: listwise, up to 8 queries (all four) a step.
    per_epoch = -(-(6 + out["negative_pairs"]) // 4) if architecture == "full" else 1
    assert out["steps"] == out["steps_planned"] == 2 * per_epoch
    assert out["stopped"] == "epochs done"
    assert out["history"][0]["step"] == 0
    assert out["history"][-1]["step"] == out["steps"]
    with Warehouse(search_workspace, read_only=True) as wh:
        v = wh.version(RANKER_ASSET)
        assert v.params["split"] == {"seed": 0, "validation_fraction": 0.25, "test_fraction": 0.25}
        assert v.params["grades"] == {"min_grade": 1.0, "max_grade": 3.0}
        history = wh.con.sql(f"SELECT * FROM {RANKER_ASSET} ORDER BY step").fetchall()
        assert len(history) == len(out["history"])
        names = {p.name for p in wh.files(RANKER_ASSET, v.version, "artifact")}
        assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
        late = {"late.json", "late_top.safetensors", "item_states.npy", "item_states_index.npz"}
        assert (late <= names) == (architecture == "late")
        assert v.params["architecture"] == architecture
        graph = lineage_graph(wh, RANKER_ASSET)
    edges = {(e["from"], e["relation"]) for e in graph["edges"]}
    assert {("asset:queries@v1", "trained_on"), ("asset:judgments@v1", "trained_on")} <= edges
    assert ("asset:search_index@v1", "candidates_from") in edges


@ARCHITECTURES
def test_saved_ranker_loads_with_the_same_scores_and_int8_agrees(
    search_workspace: Workspace, tiny_model_dir: Path, architecture: str
) -> None:
    train_ranker(
        search_workspace, _cfg(tiny_model_dir, epochs=1, architecture=architecture), None, SPLIT
    )
    queries = ["toilet seat", "cordless drill", "paint roller", "garden hose"] * 3
    lexical = open_lexical(search_workspace)
    texts = catalogue_texts(search_workspace, lexical.item_ids)
    cand = [texts[i % len(texts)] for i in range(len(queries))]
    fp32 = load_ranker(search_workspace, precision="fp32").ranker
    again = load_ranker(search_workspace, precision="fp32").ranker
    np.testing.assert_array_equal(fp32.score(queries, cand), again.score(queries, cand))
    int8 = load_ranker(search_workspace).ranker  # the stored serving precision
    assert int8.precision == "int8"
    assert int8.weight_bytes() < fp32.weight_bytes()
    # The scores are per pair, whatever the batch: one by one equals all at once.
    a = fp32.score(queries, cand)
    one = np.array([fp32.score([q], [t])[0] for q, t in zip(queries, cand, strict=True)])
    np.testing.assert_allclose(one, a, rtol=1e-4, atol=1e-5)


@ARCHITECTURES
def test_fine_tuning_the_real_model_learns_the_judged_order(
    search_workspace: Workspace, architecture: str
) -> None:
    """all-MiniLM-L6-v2 under a new head, fine-tuned on the train queries: afterwards each
    train query's exact match scores above every unjudged item of its pool (the hard
    negatives it was trained on), and the int8 copy agrees with fp32."""
    cfg = RankerConfig.model_validate(
        {
            "architecture": architecture,
            "depth": 10,
            "negatives": 3,
            "batch_size": 4,
            "epochs": 10,
            "learning_rate": 1e-4,
            "keep_best": False,
            "warmup": 0.0,
            "patience": 0,
            "eval_every": 1000,
            "precision": "fp32",
        }
    )
    out = train_ranker(search_workspace, cfg, None, SPLIT)
    losses = [h["loss"] for h in out["history"] if h["loss"] is not None]
    assert losses[-1] < losses[0]
    stage = open_reranked(search_workspace, open_lexical(search_workspace))
    stage.blend = 0.0  # the cross-encoder alone
    exact = {"led bulb": "L1", "drill bits": "D3", "wood stain": "P3", "white paint": "P1"}
    queries = list(exact)
    rows = stage.base.retrieve(stage.base.encode(queries), 10).rows
    fp32 = stage.score(stage.encode(queries), rows)
    judged = {
        ("led bulb", "L1"),
        ("drill bits", "D3"),
        ("drill bits", "D1"),
        ("wood stain", "P3"),
        ("white paint", "P1"),
        ("white paint", "P2"),
    }
    checked = 0
    for i, q in enumerate(queries):
        ids = [stage.item_ids[r] for r in rows[i] if r >= 0]
        mine = fp32[i, ids.index(exact[q])]
        unjudged = [fp32[i, j] for j, item in enumerate(ids) if (q, item) not in judged]
        if unjudged:  # BM25 finds nothing else for some queries
            assert mine > max(unjudged), (q, ids)
            checked += 1
    assert checked >= 2
    int8 = RerankedRetriever(stage.base, stage.ranker.quantized(), stage.texts, 10)
    scores = int8.score(int8.encode(queries), rows)
    ok = np.isfinite(fp32)
    assert np.corrcoef(fp32[ok], scores[ok])[0, 1] > 0.95
    line, _, _ = _check_calibration(search_workspace)
    assert line["b"] != 0  # the tuned ranker's logits spread: a real slope


def test_the_late_rankers_query_rows_are_the_joint_layer_over_both_sequences(
    tiny_model_dir: Path,
) -> None:
    """Scoring computes only the query's rows of the joint layer; mean-pooled, they equal
    the whole layer run over the query's and the item's lower-layer states joined (segment
    embeddings added), then the head. Stored item states and states computed on the fly agree, and a
    pair scores the same alone or in a batch."""
    import torch

    ranker = LateCrossEncoder.pretrained(tiny_model_dir, seed=0)
    torch.nn.init.normal_(ranker.model.segment, std=0.5)  # a trained-looking segment split
    queries = ["toilet seat", "led bulb bright", "toilet seat"]
    texts = ["Elongated toilet seat in white", "LED bulb, 60 watt", "Cordless drill"]
    ranker.store_states(texts[:2])  # the drill's states are computed when scored
    got = ranker.score(queries, texts)
    q_states = ranker.query_states(queries)
    d_states = ranker.lower_states(texts, ranker.max_length)
    top = ranker.model
    for i in range(len(queries)):
        q = q_states.flat[q_states.offsets[i] : q_states.offsets[i] + q_states.lengths[i]]
        d = d_states.flat[d_states.offsets[i] : d_states.offsets[i] + d_states.lengths[i]]
        x = torch.cat(
            [
                torch.from_numpy(q.astype(np.float32)) + top.segment[0],
                torch.from_numpy(d.astype(np.float32)) + top.segment[1],
            ]
        )[None]
        with torch.inference_mode():
            out = top.layer(x)
            hidden = out[0] if isinstance(out, tuple) else out
            want = float(top.head(hidden[0, : len(q)].mean(0))[0])
        assert got[i] == pytest.approx(want, abs=1e-4)
    assert got[0] != got[2]  # the item matters
    bare = LateCrossEncoder(ranker.lower, top, ranker.tokenizer, ranker.max_length)
    np.testing.assert_allclose(bare.score(queries, texts), got, atol=1e-5)
    alone = [ranker.score([q], [t])[0] for q, t in zip(queries, texts, strict=True)]
    np.testing.assert_allclose(alone, got, atol=1e-5)
    assert ranker.score([], []).shape == (0,)


def test_the_rerank_stage_keeps_the_tail_sorted_and_the_filters(
    search_workspace: Workspace, tiny_model_dir: Path
) -> None:
    lexical = open_lexical(search_workspace)
    texts = catalogue_texts(search_workspace, lexical.item_ids)
    ce = CrossEncoder.pretrained(tiny_model_dir)
    stage = RerankedRetriever(lexical, ce, texts, depth=2, grades=(1.0, 3.0))
    enc = stage.encode(["toilet seat"])
    got = stage.retrieve(enc, 3)
    base = lexical.retrieve(lexical.encode(["toilet seat"]), 3)
    valid = got.rows[0] >= 0
    assert set(got.rows[0, :2]) == set(base.rows[0, :2])  # the head is the base's top 2
    assert got.rows[0, 2] == base.rows[0, 2]  # the tail keeps the base order
    scores = got.scores[0][valid]
    assert list(scores) == sorted(scores, reverse=True)
    mask = np.array([i.startswith("T2") for i in lexical.item_ids])
    only = stage.retrieve(enc, 3, mask)
    assert [lexical.item_ids[r] for r in only.rows[0] if r >= 0] == ["T2"]
    scored = stage.score(enc, np.array([[0, -1]]))
    assert np.isfinite(scored[0, 0])
    assert scored[0, 1] == -np.inf
    grades = stage.grade(np.array([-50.0, 0.0, 50.0], dtype=np.float32))
    np.testing.assert_allclose(grades, [1.0, 2.0, 3.0], atol=1e-6)
    with pytest.raises(ValueError, match="item texts"):
        RerankedRetriever(lexical, ce, texts[:-1])


@ARCHITECTURES
def test_evaluation_uses_the_trained_split_and_reports_rmse(
    search_workspace: Workspace, tiny_model_dir: Path, architecture: str
) -> None:
    cfg = _cfg(tiny_model_dir, epochs=1, architecture=architecture)
    train_ranker(search_workspace, cfg, None, SPLIT)
    report = evaluate_search(search_workspace, ["bm25", "ranker", "ranker-fp32"], SPLIT)
    by = {m["model"]: m for m in report["models"]}
    assert set(by) == {"bm25", "bm25+ce-int8", "bm25+ce-fp32"}
    for name in ("bm25+ce-int8", "bm25+ce-fp32"):
        assert 0 < by[name]["rmse"] < 2  # grades 1..3, predicted within them
        assert 0 <= by[name]["full"]["nDCG@10"] <= 1
    assert "rmse" not in by["bm25"]
    other = SPLIT.model_copy(update={"seed": 1})
    with pytest.raises(ConfigError, match="its own training queries"):
        evaluate_search(search_workspace, ["ranker"], other)


def test_a_time_budget_stops_with_the_best_weights(
    search_workspace: Workspace, tiny_model_dir: Path
) -> None:
    out = train_ranker(search_workspace, _cfg(tiny_model_dir, epochs=50), 1e-6, SPLIT)
    assert out["stopped"] == "time budget"
    assert out["steps"] == 1 < out["steps_planned"]
    assert out["best_step"] in (0, 1)
    assert load_ranker(search_workspace).version == out["version"]


def test_auto_search_uses_the_ranker_only_when_it_beat_its_first_stage(
    search_workspace: Workspace, tiny_model_dir: Path
) -> None:
    out = train_ranker(search_workspace, _cfg(tiny_model_dir, epochs=1), None, SPLIT)
    helped = out["validation_ndcg"] > out["validation_ndcg_base"]
    assert Searcher.open(search_workspace).name == ("bm25+ce-int8" if helped else "bm25")
    forced = Searcher.open(search_workspace, "ranker")
    assert forced.name == "bm25+ce-int8"
    hits = forced.search(["toilet seat"], k=3)[0]
    assert len(hits) == 3
    assert hits[0]["score"] >= hits[-1]["score"]


def test_cli_train_search_and_use_the_ranker(tmp_path: Path, tiny_model_dir: Path) -> None:
    home = tmp_path / "ws"
    for kind, path in write_catalogue(tmp_path / "data").items():
        assert run(home, "ingest", str(path), "--kind", kind).returncode == 0
    cfg = tmp_path / "ranker.yaml"
    cfg.write_text(
        f"model_path: {tiny_model_dir}\ndepth: 10\nbatch_size: 4\nepochs: 1\n", encoding="utf-8"
    )
    out = run(home, "train", "search", "--config", str(cfg), "--json")
    assert out.returncode == 0, out.stderr
    trained = json.loads(out.stdout)
    assert (trained["asset"], trained["model"]) == (RANKER_ASSET, "cross-encoder")
    human = run(home, "train", "search", "--config", str(cfg), "--time-budget", "0.001")
    assert human.returncode == 0, human.stderr
    text = " ".join(human.stdout.split())  # Rich wraps long lines
    assert "search_ranker v2" in text
    assert "(time budget)" in text
    hits = json.loads(run(home, "search", "toilet seat", "--model", "ranker", "--json").stdout)
    assert {h["item_id"] for h in hits} == {"T1", "T2", "T3"}  # what BM25 matches, reranked
    assert all(set(h) == {"item_id", "score"} for h in hits)
    report = json.loads(run(home, "evaluate", "search", "--model", "ranker", "--json").stdout)
    assert report["models"][0]["model"] == "bm25+ce-int8"
    assert "rmse" in report["models"][0]
    # Another split would put the ranker's training queries among the test queries.
    bad = run(home, "evaluate", "search", "--model", "ranker", "--seed", "1")
    assert bad.returncode != 0
    assert "training queries" in bad.stderr
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("depth: 0\n", encoding="utf-8")
    assert run(home, "train", "search", "--config", str(bad_cfg)).returncode == 2


def test_the_learning_rate_defaults_to_the_architectures() -> None:
    assert RankerConfig().architecture == "late"
    assert RankerConfig().learning_rate == 3e-4
    assert RankerConfig(architecture="full").learning_rate == 4e-5
    assert RankerConfig(architecture="full", learning_rate=1e-3).learning_rate == 1e-3
    assert RankerConfig.model_validate({"architecture": "full"}).learning_rate == 4e-5


def test_fit_grade_is_the_least_squares_line() -> None:
    rng = np.random.default_rng(0)
    x = rng.random(50)
    y = 1 + 2 * x + rng.normal(0, 0.1, 50)
    b, a = np.polyfit(x, y, 1)
    assert fit_grade(x, y) == pytest.approx((a, b), abs=1e-5)
    assert fit_grade(np.full(4, 0.3), np.array([1.0, 2.0, 3.0, 2.0])) == (2.0, 0.0)
    flat = 0.3 + np.array([0.0, 1e-5, 2e-5, 3e-5])  # no real spread: no slope either
    assert fit_grade(flat, np.array([1.0, 2.0, 3.0, 2.0])) == (2.0, 0.0)
    assert fit_grade(np.zeros(0), np.zeros(0)) == (0.0, 0.0)


def test_the_predicted_grade_is_a_line_fitted_on_the_validation_judgments(
    search_workspace: Workspace, tiny_model_dir: Path
) -> None:
    """Trained with negatives, the raw sigmoid runs low on judged pairs; the stored line
    is the least-squares fit on the validation queries' 7 judged pairs (q1, q3, q4), so
    there it predicts grades no worse than their mean does."""
    cfg = _cfg(tiny_model_dir, epochs=1, architecture="full")
    train_ranker(search_workspace, cfg, None, SPLIT)
    line, reranked, logits = _check_calibration(search_workspace)
    assert line["b"] == 0  # the tiny random ranker barely tells pairs apart: the mean
    lexical = reranked.base
    raw = 1 + 2 / (1 + np.exp(-logits.astype(np.float64)))
    uncalibrated = RerankedRetriever(lexical, reranked.ranker, reranked.texts, grades=(1.0, 3.0))
    np.testing.assert_allclose(uncalibrated.grade(logits), raw)


def _check_calibration(ws: Workspace) -> tuple[dict[str, Any], RerankedRetriever, Any]:
    """The stored grade line is `fit_grade` on the validation queries' 7 judged pairs
    (q1, q3, q4) and, there, no worse than their mean or the raw sigmoid span; the line,
    the fp32 rerank stage and those pairs' logits."""
    with Warehouse(ws, read_only=True) as wh:
        line = wh.version(RANKER_ASSET).params["calibration"]
    assert line["pairs"] == 7
    lexical = open_lexical(ws)
    ids = lexical.item_ids
    texts = dict(zip(ids, catalogue_texts(ws, ids), strict=True))
    pairs = [(q, i, g) for q, i, g in JUDGMENTS if q in ("q1", "q3", "q4")]
    query = dict(QUERIES)
    reranked = open_reranked(ws, lexical, precision="fp32")
    logits = reranked.ranker.score([query[q] for q, _, _ in pairs], [texts[i] for _, i, _ in pairs])
    grades = np.array([g for _, _, g in pairs])
    sig = 1 / (1 + np.exp(-logits.astype(np.float64)))
    assert (line["a"], line["b"]) == pytest.approx(fit_grade(sig, grades), abs=1e-4)
    predicted = reranked.grade(logits)
    np.testing.assert_allclose(predicted, np.clip(line["a"] + line["b"] * sig, 1, 3), atol=1e-6)
    err = float(np.sqrt(np.mean((predicted - grades) ** 2)))
    assert err <= float(np.sqrt(np.mean((grades - grades.mean()) ** 2))) + 1e-9
    assert err <= float(np.sqrt(np.mean((1 + 2 * sig - grades) ** 2))) + 1e-9
    return line, reranked, logits
