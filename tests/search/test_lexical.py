"""BM25 on a tiny catalogue where the right order is obvious; analysis and spelling."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shopkeeper.search import (
    Analyzer,
    FusionConfig,
    LexicalConfig,
    LexicalIndex,
    LexicalRetriever,
    SearchEvalConfig,
    SpellingConfig,
    SpellingCorrector,
    fuse,
    misspell,
)
from shopkeeper.search._fusion import union_rows
from shopkeeper.search._retrieve import top_k
from tests.search.catalog import ITEMS


def _index(cfg: LexicalConfig | None = None) -> LexicalIndex:
    ids = [r[0] for r in ITEMS]
    fields: dict[str, list[str | None]] = {
        "title": [r[1] for r in ITEMS],
        "brand": [r[2] or None for r in ITEMS],
        "category_path": [r[3] for r in ITEMS],
        "description": [r[4] or None for r in ITEMS],
    }
    return LexicalIndex.build(ids, fields, cfg or LexicalConfig())


def _top(
    index: LexicalIndex, queries: list[str], k: int = 3, spelling: bool = True
) -> list[list[str]]:
    r = LexicalRetriever(index, spelling=spelling)
    ranked = r.retrieve(r.encode(queries), k)
    return [[index.item_ids[i] for i in row if i >= 0] for row in ranked.rows.tolist()]


def test_analyzer_stems_and_drops_stop_words() -> None:
    a = Analyzer()
    assert a.analyze(["The drills for a garden"]) == [["drill", "garden"]]
    assert Analyzer(stem=False, stopwords=False).analyze(["The drills"]) == [["the", "drills"]]
    assert a.words(["2x4 Studs"]) == [["2x4", "studs"]]


def test_obvious_order_on_a_tiny_catalogue() -> None:
    index = _index()
    got = _top(index, ["toilet seat", "cordless drill", "garden hose", "bulbs", "zzz qqq"])
    assert set(got[0][:2]) == {"T1", "T2"}  # both seats before the brush
    assert got[0][2] == "T3"
    assert got[1][0] == "D1"  # the only cordless drill
    assert got[2][0] == "G1"
    assert got[3] == ["L1"]  # stemming: "bulbs" finds "Bulb"
    assert got[4] == []  # nothing matches: no rows, not arbitrary ones


def test_field_weights_count() -> None:
    # "dewalt" is only a brand: without the brand field it finds nothing.
    assert set(_top(_index(), ["dewalt"])[0]) == {"D1", "D3"}
    no_brand = LexicalConfig(field_weights={"title": 1.0, "description": 0.2})
    assert _top(_index(no_brand), ["dewalt"]) == [[]]
    # A title match outweighs the same word in a description.
    assert _top(_index(), ["hammer"])[0][0] == "D2"
    assert _top(_index(), ["decks"])[0] == ["P3"]


def test_spelling_corrector_uses_catalogue_words() -> None:
    sc = SpellingCorrector(["toilet", "drill", "drills", "paint"], [10, 5, 1, 3])
    assert sc.correct([["toliet", "sat"], ["dril", "paimt"], ["xylophone"]]) == [
        ["toilet", "sat"],  # "sat" is too short to touch
        ["drill", "paint"],  # ties at one edit go to the more frequent word
        ["xylophone"],  # nothing near enough
    ]


def test_typo_tolerance() -> None:
    index = _index()
    clean = ["toilet seat", "cordless drill", "garden hose", "paint roller", "wood stain"]
    typos = ["toliet seat", "cordles drill", "gardn hose", "paint rolelr", "wood stian"]
    assert _top(index, typos) == _top(index, clean)
    # Without correction the misspelled word finds nothing, so results differ.
    assert _top(index, typos, spelling=False) != _top(index, clean)


def test_misspell_is_seeded_and_makes_one_edit() -> None:
    qs = ["cordless drill", "garden hose", "2x4", "interior paint"]
    a, b = misspell(qs, seed=3), misspell(qs, seed=3)
    assert a == b
    assert a[2] == "2x4"
    assert sum(x != y for x, y in zip(a, qs, strict=True)) >= 2


def test_top_k_ties_and_padding() -> None:
    s = np.array([[1.0, 3.0, 3.0, 0.0, 2.0]], dtype=np.float32)
    r = top_k(s, 3)
    assert r.rows.tolist() == [[1, 2, 4]]
    assert top_k(s, 10, keep_zero=False).rows.tolist() == [[1, 2, 4, 0, -1]]


def test_union_and_fusion() -> None:
    assert union_rows(np.array([[5, -1]]), np.array([[5, 2]])).tolist() == [[2, 5, -1, -1]]
    lex = np.array([[2.0, 1.0, 0.0]], dtype=np.float32)
    den = np.array([[0.1, 0.2, 0.9]], dtype=np.float32)
    ok = np.array([[True, True, False]])
    only_lex = fuse(lex, den, ok, FusionConfig(method="linear", weight=1.0))
    assert only_lex[0, 0] > only_lex[0, 1]
    assert only_lex[0, 2] == -np.inf
    only_dense = fuse(lex, den, ok, FusionConfig(method="rrf", weight=0.0))
    assert only_dense[0, 1] > only_dense[0, 0]
    with pytest.raises(ValueError, match="less than or equal"):
        FusionConfig(weight=1.5)


@given(
    st.lists(st.lists(st.integers(0, 5), min_size=6, max_size=6), min_size=1, max_size=4),
    st.integers(1, 8),
)
def test_top_k_matches_a_stable_sort(rows: list[list[int]], k: int) -> None:
    scores = np.array(rows, dtype=np.float32)
    got = top_k(scores, k)
    for r, row in enumerate(rows):
        expected = sorted(range(len(row)), key=lambda c: (-row[c], c))[:k]
        assert got.rows[r].tolist() == expected
        assert got.scores[r].tolist() == [row[c] for c in expected]


@given(
    st.lists(st.integers(-1, 9), min_size=1, max_size=6),
    st.lists(st.integers(-1, 9), min_size=1, max_size=6),
)
def test_union_rows_is_the_set_union(a: list[int], b: list[int]) -> None:
    got = union_rows(np.array([a]), np.array([b]))[0].tolist()
    want = sorted({x for x in a + b if x >= 0})
    assert got == want + [-1] * (len(a) + len(b) - len(want))


@pytest.mark.parametrize(
    "cfg",
    [
        LexicalConfig(k1=0.9, field_weights={"title": 2.0}, spelling=SpellingConfig(min_length=5)),
        FusionConfig(method="rrf", weight=0.25),
        SearchEvalConfig(seed=3, fusion_weights=[0.5]),
    ],
)
def test_config_round_trip(cfg: LexicalConfig | FusionConfig | SearchEvalConfig) -> None:
    dumped = cfg.model_dump(mode="json")
    again = type(cfg).model_validate(json.loads(json.dumps(dumped)))
    assert again.model_dump(mode="json") == dumped
    with pytest.raises(ValueError, match="Extra inputs"):
        type(cfg).model_validate({**dumped, "nope": 1})
