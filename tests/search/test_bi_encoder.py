"""The fine-tuned bi-encoder: contrastive training on judgments, the `search_encoder` asset
(model tree and catalogue vectors), dense and hybrid retrieval with it, evaluation on the
trained split only, the choice of `auto`, and the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shopkeeper.errors import ConfigError, NotFoundError
from shopkeeper.search import Searcher, SearchEvalConfig, evaluate_search, open_lexical
from shopkeeper.search._train_bi_encoder import BiEncoderConfig, train_bi_encoder
from shopkeeper.search._train_ranker import catalogue_texts, open_base
from shopkeeper.search._tuned_dense import TUNED_ASSET, open_tuned_dense, tuned_params
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest, lineage_graph
from tests.cli.test_cli import run
from tests.search.catalog import write_catalogue

# Seed 0 on the 8 tiny queries: q5-q8 train, q1, q3, q4 validation, q2 test.
SPLIT = SearchEvalConfig(validation_fraction=0.25, test_fraction=0.25)
TORCH_FP32 = {"backend": "torch", "precision": "fp32"}
TRAIN = {"led bulb": "L1", "drill bits": "D3", "wood stain": "P3", "white paint": "P1"}


def _cfg(model: Path | None, **kw: object) -> BiEncoderConfig:
    base = {"model_path": model, "depth": 10, "batch_size": 4, "eval_every": 2}
    return BiEncoderConfig.model_validate({"encoder": TORCH_FP32, **base, **kw})


def test_training_stores_the_model_tree_and_the_catalogue_vectors(
    search_workspace: Workspace, tiny_model_dir: Path, tmp_path: Path
) -> None:
    cfg = _cfg(tiny_model_dir, epochs=2, patience=0)
    out = train_bi_encoder(search_workspace, cfg, None, SPLIT)
    assert (out["asset"], out["version"], out["base"]) == (TUNED_ASSET, 1, "bm25")
    assert (out["train_queries"], out["validation_queries"]) == (4, 3)
    # q5-q8 each have one item of grade >= 2: one example per query and epoch.
    assert (out["example_queries"], out["relevant_pairs"]) == (4, 4)
    assert out["steps"] == out["steps_planned"] == 2
    assert [h["step"] for h in out["history"]] == [0, 1, 2]
    assert out["fusion"]["method"] in ("rrf", "linear")
    with Warehouse(search_workspace, read_only=True) as wh:
        v = wh.version(TUNED_ASSET)
        assert v.params["split"] == {"seed": 0, "validation_fraction": 0.25, "test_fraction": 0.25}
        assert wh.con.execute(f"SELECT count(*) FROM {TUNED_ASSET}").fetchall() == [(12,)]
        files = wh.files(TUNED_ASSET, v.version, "artifact")
        edges = {(e["from"], e["relation"]) for e in lineage_graph(wh, TUNED_ASSET)["edges"]}
    model_dir = next(p for p in files if p.name == "index.faiss").parent / "model"
    assert (model_dir / "modules.json").is_file()
    assert any(p.parent != model_dir for p in files if model_dir in p.parents)  # a tree
    assert {("asset:queries@v1", "trained_on"), ("asset:judgments@v1", "trained_on")} <= edges
    # A later ingest sweeps unreferenced version folders: the nested model must survive.
    more = tmp_path / "more.csv"
    more.write_text("item_id,title\nX1,Extension Cord 25 ft.\n", encoding="utf-8")
    ingest(search_workspace, IngestRequest(more, kind="items"))
    assert (model_dir / "modules.json").is_file()
    # The stored vectors are the stored model's own encoding of the item texts.
    lexical = open_lexical(search_workspace)
    dense = open_tuned_dense(search_workspace, lexical.item_ids)
    assert dense.name == "dense-tuned"
    ids = dense.ann.item_ids
    again = dense.encode(catalogue_texts(search_workspace, ids))
    np.testing.assert_allclose(np.sum(again * dense.vectors, axis=1), 1.0, atol=1e-4)


def test_fine_tuning_the_real_model_pulls_train_queries_to_their_items(
    search_workspace: Workspace,
) -> None:
    """all-MiniLM-L6-v2 fine-tuned on the four train queries: each one's relevant item
    gains on the other items of the catalogue."""
    lexical = open_lexical(search_workspace)
    ids = lexical.item_ids
    texts = catalogue_texts(search_workspace, ids)
    cfg = _cfg(
        None,
        epochs=12,
        learning_rate=1e-4,
        warmup=0.0,
        keep_best=False,
        patience=0,
        eval_every=1000,
    )

    def margins(encode: object) -> np.ndarray:
        q = encode(list(TRAIN))  # type: ignore[operator]
        items = encode(texts)  # type: ignore[operator]
        sims = q @ items.T
        mine = np.array([ids.index(i) for i in TRAIN.values()])
        best = sims[np.arange(len(mine)), mine]
        sims[np.arange(len(mine)), mine] = -np.inf
        return np.asarray(best - sims.max(axis=1))

    from shopkeeper.features import EncoderConfig, ItemEncoder

    before = margins(ItemEncoder(EncoderConfig.model_validate(TORCH_FP32)).encode)
    out = train_bi_encoder(search_workspace, cfg, None, SPLIT)
    assert out["steps"] == 12  # one 4-query batch per epoch
    after = margins(open_tuned_dense(search_workspace, ids).encode)
    assert after.mean() > before.mean() + 0.05, (before, after)
    assert (after > before).sum() >= 3


def test_evaluation_and_search_with_the_tuned_encoder(
    search_workspace: Workspace, tiny_model_dir: Path
) -> None:
    with pytest.raises(NotFoundError, match="bi-encoder"):
        Searcher.open(search_workspace, "dense-tuned")
    out = train_bi_encoder(search_workspace, _cfg(tiny_model_dir, epochs=1), None, SPLIT)
    report = evaluate_search(search_workspace, ["bm25", "dense-tuned", "hybrid-tuned"], SPLIT)
    names = [m["model"] for m in report["models"]]
    assert names[:2] == ["bm25", "dense-tuned"]
    assert names[2].startswith("hybrid-tuned-")
    assert report["fusion_tuned"]["chosen"]["method"] in ("rrf", "linear")
    for m in report["models"]:
        assert 0 <= m["full"]["nDCG@10"] <= 1
    with pytest.raises(ConfigError, match="its own training queries"):
        evaluate_search(search_workspace, ["dense-tuned"], SPLIT.model_copy(update={"seed": 1}))
    helped = out["validation_ndcg"] > out["validation_ndcg_base"]
    auto = Searcher.open(search_workspace)
    assert auto.name.startswith("hybrid-tuned-") if helped else auto.name == "bm25"
    hybrid = Searcher.open(search_workspace, "hybrid-tuned")
    assert hybrid.name == f"hybrid-tuned-{tuned_params(search_workspace)['fusion']['method']}"
    dense = Searcher.open(search_workspace, "dense-tuned")
    hits = dense.search(["toilet seat"], k=12)[0]
    assert len(hits) == 12
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


def test_a_time_budget_stops_with_the_best_weights(
    search_workspace: Workspace, tiny_model_dir: Path
) -> None:
    out = train_bi_encoder(search_workspace, _cfg(tiny_model_dir, epochs=50), 1e-6, SPLIT)
    assert out["stopped"] == "time budget"
    assert out["steps"] == 1 < out["steps_planned"]
    assert out["best_step"] in (0, 1)
    assert tuned_params(search_workspace)["stopped"] == "time budget"


def test_cli_train_search_bi_encoder_and_search_with_it(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    home = tmp_path / "ws"
    for kind, path in write_catalogue(tmp_path / "data").items():
        assert run(home, "ingest", str(path), "--kind", kind).returncode == 0
    cfg = tmp_path / "bi.yaml"
    cfg.write_text(
        f"model_path: {tiny_model_dir}\ndepth: 10\nbatch_size: 4\nepochs: 1\n"
        "encoder: {backend: torch, precision: fp32}\n",
        encoding="utf-8",
    )
    out = run(home, "train", "search", "--model", "bi-encoder", "--config", str(cfg), "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert (summary["asset"], summary["model"]) == (TUNED_ASSET, "bi-encoder")
    found = run(home, "search", "toilet seat", "--model", "dense-tuned", "--k", "3", "--json")
    assert found.returncode == 0, found.stderr
    assert len(json.loads(found.stdout)) == 3
    text = run(home, "train", "search", "--model", "bi-encoder", "--config", str(cfg))
    assert text.returncode == 0, text.stderr
    assert f"{TUNED_ASSET} v2: bi-encoder" in text.stdout


@pytest.mark.parametrize(("epochs", "helped"), [(1, False), (6, True)])
def test_the_service_serves_the_tuned_hybrid_only_when_it_beat_the_base(
    search_workspace: Workspace, tiny_model_dir: Path, epochs: int, helped: bool
) -> None:
    """What `serve` answers /search with is what `search` picks without a ranker: the
    tuned hybrid when it won on validation (and its version is then live), else BM25."""
    from shopkeeper.serve._snapshot import open_snapshot, snapshot_key

    cfg = _cfg(tiny_model_dir, epochs=epochs, learning_rate=1e-3)
    out = train_bi_encoder(search_workspace, cfg, None, SPLIT)
    # one epoch at this rate leaves validation where it was; six lift it (seeded)
    assert (out["validation_ndcg"] > out["validation_ndcg_base"]) is helped
    key = snapshot_key(search_workspace, erased=0)
    assert key[TUNED_ASSET] == (1 if helped else 0)
    snap = open_snapshot(search_workspace, key, threads=1)
    assert snap.searcher is not None
    expected = Searcher.open(search_workspace)
    name = snap.searcher.name
    assert name == expected.name
    assert name.startswith("hybrid-tuned-") if helped else name == "bm25"
    got, want = snap.searcher.search(["led bulb"], k=3)[0], expected.search(["led bulb"], 3)[0]
    assert [h["item_id"] for h in got] == [h["item_id"] for h in want]


def test_the_ranker_trains_over_the_tuned_hybrid_when_it_won(
    search_workspace: Workspace, tiny_model_dir: Path
) -> None:
    """`train search` after a winning bi-encoder reranks the tuned hybrid: it records the
    encoder version (lineage too), and reopening it reranks that same first stage."""
    from shopkeeper.search._ranker_asset import RANKER_ASSET, open_reranked, stored_params
    from shopkeeper.search._train_ranker import RankerConfig, train_ranker
    from shopkeeper.search._tuned_dense import tuned_hybrid

    bi = _cfg(tiny_model_dir, epochs=6, learning_rate=1e-3)  # wins validation (see above)
    train_bi_encoder(search_workspace, bi, None, SPLIT)
    cfg = RankerConfig(model_path=tiny_model_dir, depth=10, negatives=2, batch_size=4, epochs=1)
    out = train_ranker(search_workspace, cfg, None, SPLIT)
    base = tuned_hybrid(search_workspace, open_lexical(search_workspace))
    assert out["base"] == base.name
    assert base.name.startswith("hybrid-tuned-")
    with Warehouse(search_workspace, read_only=True) as wh:
        params = wh.version(RANKER_ASSET).params
        edges = {(e["from"], e["relation"]) for e in lineage_graph(wh, RANKER_ASSET)["edges"]}
    assert params["tuned_encoder"] == 1
    assert (f"asset:{TUNED_ASSET}@v1", "candidates_from") in edges
    assert not any(e.startswith("asset:item_embeddings") for e, _ in edges)
    lexical = open_lexical(search_workspace)
    reranked = open_reranked(search_workspace, lexical)
    assert reranked.name == f"{base.name}+ce-int8"
    ranker = Searcher.open(search_workspace, "ranker")
    assert ranker.name == reranked.name
    # The reranked top 10 is a reordering of the tuned hybrid's top 10 candidates.
    first = {h["item_id"] for h in Searcher(base).search(["drill"], k=10)[0]}
    again = {h["item_id"] for h in ranker.search(["drill"], k=10)[0]}
    assert again == first
    # A new bi-encoder still mines its negatives from the pre-trained first stage.
    assert open_base(search_workspace, "auto", tuned=False).name == "bm25"  # no item vectors
    with pytest.raises(ConfigError, match="unknown base 'hybrid-tuned'"):
        open_base(search_workspace, "hybrid-tuned", tuned=False)
    # Asked for BM25, the ranker reranks BM25 and names no encoder.
    other = RankerConfig(model_path=tiny_model_dir, depth=10, epochs=1, base="bm25")
    assert train_ranker(search_workspace, other, None, SPLIT)["base"] == "bm25"
    assert stored_params(search_workspace)["tuned_encoder"] is None
