"""Learning to rank: the pair features against a plain reference, training and the asset,
the reordering stage, the choice of the default model, evaluation and the command line."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from shopkeeper.errors import ConfigError
from shopkeeper.features import FeaturesConfig, ItemEncoder, build_features
from shopkeeper.search import Searcher, SearchEvalConfig, evaluate_search, open_lexical
from shopkeeper.search._digest import text_digests
from shopkeeper.search._fusion import HybridRetriever
from shopkeeper.search._ltr import LTR_ASSET, LtrRetriever, open_ltr
from shopkeeper.search._ltr_features import (
    FEATURES,
    PairFeatures,
    _analysis,
    _gram_hasher,
    _load_bags,
    numbers,
)
from shopkeeper.search._open import open_dense
from shopkeeper.search._train_ltr import LtrConfig, train_ltr
from shopkeeper.search._train_ranker import catalogue_texts
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest, lineage_graph
from tests.cli.test_cli import run
from tests.search.catalog import write_catalogue

# Seed 0 on the 8 tiny queries: q5-q8 train, q1, q3, q4 validation, q2 test.
SPLIT = SearchEvalConfig(validation_fraction=0.25, test_fraction=0.25)
TINY = LtrConfig(depth=10, min_pairs_per_leaf=1, trees=20, early_stopping=20)


def _reference(features: PairFeatures, texts: list[str], query: str, row: int) -> list[float]:
    """The text features of one pair, computed the plain way."""
    index = features.index
    words = index.query_terms([query])[0]
    terms = index.term_ids([words])[0]
    q_pairs = set(itertools.pairwise(words))
    item_words = index.analyzer.analyze([texts[row]])[0]
    t_pairs = set(itertools.pairwise(item_words))
    q_numbers, t_numbers = set(numbers(query)), set(numbers(texts[row]))
    held = set(index.weights[:, row].nonzero()[0].tolist())
    df = np.maximum(np.diff(index.weights.tocsr().indptr), 1)
    idf = np.log((index.n_items + 1) / df)
    unique = set(terms)
    matched = unique & held
    analyzer = _gram_hasher().build_analyzer()
    q_grams, t_grams = set(analyzer(query)), set(analyzer(texts[row]))
    shared = len(q_grams & t_grams)
    return [
        len(unique),
        len(matched),
        len(matched) / len(unique) if unique else 0.0,
        sum(idf[t] for t in matched) / sum(idf[t] for t in unique) if unique else 0.0,
        float(bool(terms) and terms[0] in held),
        float(bool(terms) and terms[-1] in held),
        len(held),
        shared / len(q_grams) if q_grams else 0.0,
        shared / len(q_grams | t_grams),
        len(q_pairs & t_pairs) / len(q_pairs) if q_pairs else 0.0,
        len(q_numbers),
        len(q_numbers & t_numbers) / len(q_numbers) if q_numbers else 0.0,
        float(bool(q_numbers - t_numbers) and bool(t_numbers)),
    ]


def _text(features: PairFeatures, queries: list[str], rows: np.ndarray) -> np.ndarray:
    """The text features of each query (spelling corrected) with its rows."""
    return features.lexical(queries, features.index.query_terms(queries), rows)


def test_pair_features_equal_the_plain_computation(search_workspace: Workspace) -> None:
    lexical = open_lexical(search_workspace)
    texts = catalogue_texts(search_workspace, lexical.item_ids)
    features = PairFeatures(lexical.index, texts)
    queries = ["toilet seat white", "cordles drill", "hose", "zzz", "hammer drill 1-1/2 in 20"]
    n = lexical.index.n_items
    rows = np.array([[0, 3, n - 1], [3, -1, 4], [9, 10, 1], [2, -1, -1], [3, 4, 5]], dtype=np.int64)
    got = _text(features, queries, rows)
    assert got.shape == (5, 3, 13)
    assert len(FEATURES) == 2 + got.shape[2]
    for i, q in enumerate(queries):
        for c, r in enumerate(rows[i]):
            if r < 0:
                assert np.isnan(got[i, c]).all()
            else:
                want = _reference(features, texts, q, int(r))
                np.testing.assert_allclose(got[i, c], want, rtol=1e-5)
    # BM25 summed over each pair's terms is the score of ranking the whole catalogue.
    bm25 = features.bm25(lexical.encode(queries), rows)
    full = lexical.score(lexical.encode(queries), rows)
    np.testing.assert_allclose(bm25[rows >= 0], full[rows >= 0], rtol=1e-5)
    assert np.isnan(bm25[rows < 0]).all()
    assert (bm25[rows >= 0] > 0).any()
    # "cordles" is corrected to "cordless": the drill kit (row 0, D1) holds both terms.
    assert lexical.item_ids[0] == "D1"
    d1 = _text(features, ["cordles drill"], np.array([[0]]))
    assert d1[0, 0, 1] == 2
    # Of the query's term pairs (cordless drill, drill 20, 20 1, 1 5) the drill kit holds
    # the first, the drill bit set (D3) none; "20" is the kit's 20V, and the hammer drill's
    # 1/2 in. is not the query's 1.5.
    by_id = {item: i for i, item in enumerate(lexical.item_ids)}
    pairs = np.array([[by_id["D1"], by_id["D3"], by_id["D2"], by_id["P3"]]])
    cols = [FEATURES.index(f) - 2 for f in ("bigram_share", "number_share", "number_missing")]
    x = _text(features, ["cordless drill 20 1.5"], pairs)[0][:, cols]
    np.testing.assert_allclose(
        x, [[0.25, 0.5, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]
    )
    # The stage corrects each query once: its BM25 encoding and its text features come
    # from the same terms, as the base and the features would compute them alone.
    stage = LtrRetriever(lexical, None, features, 10)
    enc = stage.encode(queries)
    assert enc.terms == lexical.index.query_terms(queries)
    assert (enc.base != lexical.encode(queries)).nnz == 0
    np.testing.assert_array_equal(stage.pair_features(enc, rows)[:, :, 2:], got)
    with pytest.raises(ValueError, match="item texts"):
        PairFeatures(lexical.index, texts[:-1])


def test_over_a_hybrid_base_the_stage_encodes_as_the_base_does(
    search_workspace: Workspace, tiny_model_dir: Path
) -> None:
    encoder = ItemEncoder(model_path=tiny_model_dir, precision="fp32", batch_size=16)
    build_features(search_workspace, FeaturesConfig(encoder=encoder.cfg), encoder)
    lexical = open_lexical(search_workspace)
    base = HybridRetriever(lexical, open_dense(search_workspace, lexical.item_ids, encoder))
    features = PairFeatures(lexical.index, catalogue_texts(search_workspace, lexical.item_ids))
    stage = LtrRetriever(base, None, features, depth=5)
    queries = ["toliet seat", "cordless dril"]
    enc = stage.encode(queries)
    want = base.encode(queries)
    assert (enc.base[0] != want[0]).nnz == 0
    np.testing.assert_allclose(enc.base[1], want[1], rtol=1e-6)
    rows = base.retrieve(want, 5).rows
    np.testing.assert_array_equal(stage.base.retrieve(enc.base, 5).rows, rows)
    x = stage.pair_features(enc, rows)
    np.testing.assert_allclose(x[:, :, 1], base.dense.score(want[1], rows), rtol=1e-6)
    np.testing.assert_array_equal(x[:, :, 2:], _text(features, queries, rows))


def test_stored_item_features_are_reused_only_for_the_same_texts(
    search_workspace: Workspace, tmp_path: Path
) -> None:
    lexical = open_lexical(search_workspace)
    texts = catalogue_texts(search_workspace, lexical.item_ids)
    index = lexical.index
    path = PairFeatures(index, texts).save(tmp_path / "item_features.npz")
    queries = ["toilet seat white", "cordless drill 20", "hose 50 ft"]
    rows = np.array([[0, 1, 2], [3, 4, 5], [9, 10, -1]], dtype=np.int64)
    want = _text(PairFeatures(index, texts), queries, rows)
    got = _text(PairFeatures(index, texts, path), queries, rows)
    np.testing.assert_array_equal(got, want)
    # What it reads is the file: one saved for these texts with its numbers emptied
    # leaves every item without a number.
    with np.load(path) as f:
        arrays = dict(f)
    arrays["numbers_indices"] = arrays["numbers_indices"][:0]
    arrays["numbers_indptr"] = np.zeros_like(arrays["numbers_indptr"])
    emptied = tmp_path / "emptied.npz"
    np.savez(emptied, **arrays)
    share = FEATURES.index("number_share") - 2
    kit = np.array([[lexical.item_ids.index("D1")]])  # the 20V drill kit
    assert _text(PairFeatures(index, texts, path), ["drill 20"], kit)[0, 0, share] == 1.0
    assert _text(PairFeatures(index, texts, emptied), ["drill 20"], kit)[0, 0, share] == 0.0
    digests = text_digests(texts)
    assert _load_bags(path, digests, _analysis(index)) is not None
    # A changed text, another analysis or a broken file: computed again, not read.
    changed = [*texts[:-1], texts[-1] + " 12 in."]
    assert _load_bags(path, text_digests(changed), _analysis(index)) is None
    assert _load_bags(path, digests, _analysis(index).replace("stem=True", "stem=False")) is None
    fresh = _text(PairFeatures(index, changed), queries, np.array([[11, 0, 1]] * 3))
    np.testing.assert_array_equal(
        _text(PairFeatures(index, changed, path), queries, np.array([[11, 0, 1]] * 3)), fresh
    )
    broken = tmp_path / "broken.npz"
    broken.write_bytes(path.read_bytes()[:100])
    assert _load_bags(broken, digests, _analysis(index)) is None
    np.testing.assert_array_equal(_text(PairFeatures(index, texts, broken), queries, rows), want)


def test_trees_trained_before_a_feature_was_added_still_score(
    search_workspace: Workspace,
) -> None:
    import lightgbm as lgb

    lexical = open_lexical(search_workspace)
    features = PairFeatures(lexical.index, catalogue_texts(search_workspace, lexical.item_ids))
    older = FEATURES[:11]
    rows = np.tile(np.arange(lexical.index.n_items), (2, 1))
    stage = LtrRetriever(lexical, None, features, 10)
    x = stage.pair_features(stage.encode(["toilet seat", "drill 1/2 in"]), rows)
    flat = x[:, :, :11].reshape(-1, 11)
    target = np.nan_to_num(flat[:, 0]) + flat[:, 4]
    params = {"objective": "regression", "min_data_in_leaf": 1, "verbosity": -1}
    booster = lgb.train(params, lgb.Dataset(flat, target), 5)
    model = LtrRetriever(lexical, booster, features, 10, trained_on=older)
    np.testing.assert_allclose(model.predict(x, rows).ravel(), booster.predict(flat), rtol=1e-6)
    with pytest.raises(ConfigError, match="retrain"):
        LtrRetriever(lexical, booster, features, 10, trained_on=[*older, "title_color"])


def test_training_stores_versioned_trees_with_lineage_and_importances(
    search_workspace: Workspace,
) -> None:
    out = train_ltr(search_workspace, TINY, None, SPLIT)
    assert (out["asset"], out["version"], out["base"]) == (LTR_ASSET, 1, "bm25")
    assert (out["train_queries"], out["validation_queries"]) == (4, 3)
    # q5-q8 judge 6 items, all in their BM25 pools; a pool holds what matches a term.
    assert out["judged_in_pools"] == 6
    assert 1 <= out["trees"] <= TINY.trees
    with Warehouse(search_workspace, read_only=True) as wh:
        v = wh.version(LTR_ASSET)
        assert v.params["split"] == {"seed": 0, "validation_fraction": 0.25, "test_fraction": 0.25}
        assert v.params["features"] == list(FEATURES)
        assert v.params["fusion"] is None
        rows = wh.con.sql(f"SELECT feature, gain, splits FROM {LTR_ASSET}").fetchall()
        assert [r[0] for r in rows] == list(FEATURES)
        assert sum(r[2] for r in rows) > 0  # the trees split on something
        names = {p.name for p in wh.files(LTR_ASSET, v.version, "artifact")}
        assert names == {"model.txt", "item_features.npz"}
        graph = lineage_graph(wh, LTR_ASSET)
    edges = {(e["from"], e["relation"]) for e in graph["edges"]}
    assert {("asset:queries@v1", "trained_on"), ("asset:judgments@v1", "trained_on")} <= edges
    assert ("asset:search_index@v1", "candidates_from") in edges
    again = train_ltr(search_workspace, TINY, None, SPLIT)
    assert again["version"] == 2


def _word(prefix: str, i: int) -> str:
    return prefix + chr(ord("a") + i % 26) + chr(ord("a") + i // 26)


def _trap_catalogue(ws: Workspace, root: Path, groups: int = 30) -> None:
    """Queries `<rare word> <product noun>` whose relevant item holds only the noun, while
    a decoy holds the rare word twice: BM25 (the rare word weighs more) puts the decoy
    first; a shopper's last word names the product, which the trees can learn."""
    items: list[tuple[object, ...]] = []
    queries: list[tuple[object, ...]] = []
    judgments: list[tuple[object, ...]] = []
    for g in range(groups):
        adj, noun = _word("zork", g), _word("gadget", g)
        items += [(f"R{g}", f"{noun} deluxe"), (f"D{g}", f"{adj} {adj} sample")]
        items += [(f"A{g}{k}", f"{noun} {part}") for k, part in enumerate(("case", "strap"))]
        queries.append((f"q{g}", f"{adj} {noun}"))
        judgments += [(f"q{g}", f"R{g}", 3.0), (f"q{g}", f"D{g}", 1.0)]
    root.mkdir(parents=True)
    tables: dict[str, tuple[tuple[str, ...], list[tuple[object, ...]]]] = {
        "items": (("item_id", "title"), items),
        "queries": (("query_id", "query"), queries),
        "judgments": (("query_id", "item_id", "relevance"), judgments),
    }
    for kind, (header, rows) in tables.items():
        path = root / f"{kind}.csv"
        with path.open("w", newline="", encoding="utf-8") as fh:
            csv.writer(fh).writerows([header, *rows])
        ingest(ws, IngestRequest(path, "generic", kind))  # type: ignore[arg-type]


def test_the_trees_learn_what_bm25_gets_wrong_on_held_out_queries(
    workspace: Workspace, tmp_path: Path
) -> None:
    _trap_catalogue(workspace, tmp_path / "trap")
    out = train_ltr(workspace, TINY.model_copy(update={"trees": 50}))
    assert out["validation_ndcg"] > out["validation_ndcg_base"]
    report = evaluate_search(workspace, ["bm25", "ltr"])
    by = {m["model"]: m["full"]["nDCG@10"] for m in report["models"]}
    assert report["data"]["evaluated_queries"] > 0
    assert by["bm25"] < 0.7  # the decoy first: R at rank 2 or lower
    assert by["bm25+ltr"] == pytest.approx(1.0)  # R first on every test query
    model = open_ltr(workspace, open_lexical(workspace))
    enc = model.encode(["zorkaa gadgetaa"])
    rows = np.array([[model.item_ids.index("R0"), model.item_ids.index("D0")]])
    bm25 = model.base.score(enc.base, rows)
    assert bm25[0, 0] < bm25[0, 1]
    assert model.score(enc, rows)[0, 0] > model.score(enc, rows)[0, 1]


def test_the_stage_reorders_the_head_keeps_the_tail_and_the_filters(
    search_workspace: Workspace,
) -> None:
    train_ltr(search_workspace, TINY, None, SPLIT)
    lexical = open_lexical(search_workspace)
    stored = open_ltr(search_workspace, lexical)
    stage = LtrRetriever(lexical, stored.booster, stored.features, depth=2)
    enc = stage.encode(["toilet seat"])
    got = stage.retrieve(enc, 3)
    base = lexical.retrieve(lexical.encode(["toilet seat"]), 3)
    assert set(got.rows[0, :2]) == set(base.rows[0, :2])  # the head is the base's top 2
    assert got.rows[0, 2] == base.rows[0, 2]  # the tail keeps the base order
    assert list(got.scores[0]) == sorted(got.scores[0], reverse=True)
    mask = np.array([i == "T2" for i in lexical.item_ids])
    only = stage.retrieve(enc, 3, mask)
    assert [lexical.item_ids[r] for r in only.rows[0] if r >= 0] == ["T2"]
    scored = stage.score(enc, np.array([[0, -1]]))
    assert np.isfinite(scored[0, 0])
    assert scored[0, 1] == -np.inf
    # A pair scores the same whatever the other candidates are.
    alone = stage.score(enc, got.rows[:, :1])
    assert alone[0, 0] == pytest.approx(stage.score(enc, got.rows[:, :2])[0, 0])


def test_a_time_budget_stops_boosting(search_workspace: Workspace) -> None:
    out = train_ltr(search_workspace, TINY.model_copy(update={"early_stopping": 50}), 1e-6, SPLIT)
    assert out["trees"] == 1


def test_auto_search_and_evaluation_use_the_trained_trees(search_workspace: Workspace) -> None:
    out = train_ltr(search_workspace, TINY, None, SPLIT)
    helped = out["validation_ndcg"] > out["validation_ndcg_base"]
    assert Searcher.open(search_workspace).name == ("bm25+ltr" if helped else "bm25")
    forced = Searcher.open(search_workspace, "ltr")
    assert forced.name == "bm25+ltr"
    hits = forced.search(["toilet seat"], k=3)[0]
    assert {h["item_id"] for h in hits} == {"T1", "T2", "T3"}
    report = evaluate_search(search_workspace, ["bm25", "ltr"], SPLIT)
    by = {m["model"]: m for m in report["models"]}
    assert set(by) == {"bm25", "bm25+ltr"}
    assert 0 <= by["bm25+ltr"]["full"]["nDCG@10"] <= 1
    with pytest.raises(ConfigError, match="its own training queries"):
        evaluate_search(search_workspace, ["ltr"], SPLIT.model_copy(update={"seed": 1}))


def test_cli_train_search_ltr_and_use_it(tmp_path: Path) -> None:
    home = tmp_path / "ws"
    for kind, path in write_catalogue(tmp_path / "data").items():
        assert run(home, "ingest", str(path), "--kind", kind).returncode == 0
    cfg = tmp_path / "ltr.yaml"
    cfg.write_text("depth: 10\nmin_pairs_per_leaf: 1\ntrees: 10\n", encoding="utf-8")
    out = run(home, "train", "search", "--model", "ltr", "--config", str(cfg), "--json")
    assert out.returncode == 0, out.stderr
    trained = json.loads(out.stdout)
    assert (trained["asset"], trained["model"]) == (LTR_ASSET, "lambdamart")
    human = run(home, "train", "search", "--model", "ltr", "--config", str(cfg))
    assert human.returncode == 0, human.stderr
    assert "search_ltr v2" in " ".join(human.stdout.split())
    hits = json.loads(run(home, "search", "garden hose", "--model", "ltr", "--json").stdout)
    assert hits[0]["item_id"] == "G1"
    report = json.loads(run(home, "evaluate", "search", "--model", "ltr", "--json").stdout)
    assert report["models"][0]["model"] == "bm25+ltr"
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("grade_levels: 0\n", encoding="utf-8")
    assert run(home, "train", "search", "--model", "ltr", "--config", str(bad_cfg)).returncode == 2


def test_the_service_serves_the_trees_that_beat_their_first_stage(
    workspace: Workspace, tmp_path: Path
) -> None:
    """`/search` answers with the trees (their version is part of the snapshot key) when
    they won on validation, in the same order `search --model ltr` gives."""
    from shopkeeper.serve._snapshot import open_snapshot, snapshot_key

    _trap_catalogue(workspace, tmp_path / "trap")
    before = snapshot_key(workspace, erased=0)
    assert before[LTR_ASSET] == 0
    train_ltr(workspace, TINY.model_copy(update={"trees": 50}))
    key = snapshot_key(workspace, erased=0)
    assert key[LTR_ASSET] == 1
    snap = open_snapshot(workspace, key, threads=1)
    assert snap.searcher is not None
    assert snap.searcher.name == "bm25+ltr"
    expected = Searcher.open(workspace, "ltr")
    got = snap.searcher.search(["zorkba gadgetba"], k=3)[0]
    want = expected.search(["zorkba gadgetba"], k=3)[0]
    assert [h["item_id"] for h in got] == [h["item_id"] for h in want]
    assert got[0]["item_id"] == "R1"
