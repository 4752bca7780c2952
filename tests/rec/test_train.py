"""`train_rec` and `recommend` on the bundled Online Retail sample (December 2010).

The sample's customers are known by their raw ids (CustomerID); the workspace only
holds pseudonyms, so every lookup here goes through the same mapping ingest used.
"""

from __future__ import annotations

import csv
import gzip
from typing import Any

import numpy as np
import pytest

from shopkeeper.errors import ConfigError, NotFoundError
from shopkeeper.rec import Histories, TrainingData, create_scorer, read_interactions
from shopkeeper.rec._recommend import read_histories, read_user_ids, recommend
from shopkeeper.rec._train import REC_MODEL_ASSET, load_rec_model, train_rec
from shopkeeper.warehouse import IngestRequest, Warehouse, Workspace, ingest
from tests.conftest import SAMPLES

SAMPLE = SAMPLES / "online-retail-2010-12.csv.gz"


def raw_customers() -> dict[str, int]:
    """Raw CustomerID -> purchase lines in the sample file (positive quantities)."""
    counts: dict[str, int] = {}
    with gzip.open(SAMPLE, "rt", encoding="latin-1") as fh:
        for row in csv.DictReader(fh):
            if row["CustomerID"] and float(row["Quantity"]) > 0:
                counts[row["CustomerID"]] = counts.get(row["CustomerID"], 0) + 1
    return counts


@pytest.fixture(scope="module")
def sample_ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    ws = Workspace.at(tmp_path_factory.mktemp("rec-train") / "ws")
    ingest(ws, IngestRequest(SAMPLE, "online-retail"))
    return ws


@pytest.fixture(scope="module")
def trained(sample_ws: Workspace) -> dict[str, Any]:
    return train_rec(sample_ws, "ease")


@pytest.fixture(scope="module")
def customers() -> list[str]:
    """Five raw ids of customers with many purchase lines, most first."""
    counts = raw_customers()
    return sorted(counts, key=lambda c: (-counts[c], c))[:5]


def bought(ws: Workspace, raw_id: str) -> set[str]:
    """Items the customer `raw_id` purchased, read through their pseudonym."""
    pseudonym = ws.keys.load(create=False).pseudonymize(raw_id)
    with Warehouse(ws, read_only=True) as wh:
        rows = wh.con.execute(
            "SELECT DISTINCT item_id FROM events WHERE user_id = ? AND event_type = 'purchase'",
            [pseudonym],
        ).fetchall()
    return {r[0] for r in rows}


def test_recommend_before_training_says_what_to_do(tmp_path) -> None:
    ws = Workspace.at(tmp_path / "ws")
    ingest(ws, IngestRequest(SAMPLE, "online-retail"))
    with pytest.raises(NotFoundError, match="train rec"):
        recommend(ws, ["17850"])


def test_train_saves_a_version_with_lineage(sample_ws: Workspace, trained: dict[str, Any]) -> None:
    assert trained["asset"] == REC_MODEL_ASSET
    assert trained["model"] == "ease"
    assert trained["event_types"] == ["purchase"]
    assert trained["users"] > 800
    assert trained["interactions"] > trained["users"]
    assert trained["embeddings_version"] is None
    assert trained["config"]["l2"] > 0
    with Warehouse(sample_ws, read_only=True) as wh:
        parents = wh.parents(REC_MODEL_ASSET, trained["version"])
        version = wh.version(REC_MODEL_ASSET, trained["version"])
        row = wh.con.execute(
            f"SELECT count(*), sum(interactions) FROM {REC_MODEL_ASSET}_v{trained['version']}"
        ).fetchone()
        names = {p.name for p in wh.files(REC_MODEL_ASSET, trained["version"], "artifact")}
    assert ("events", trained["events_version"], "trained_on") in parents
    assert version.params["model"] == "ease"
    assert row == (trained["items"], trained["interactions"])
    assert {"scorer.json", "state.npz"} <= names
    checkpoints = sample_ws.home / "checkpoints" / REC_MODEL_ASSET
    assert not checkpoints.exists() or not any(checkpoints.iterdir())  # removed once saved


def test_retraining_records_the_previous_version(sample_ws: Workspace) -> None:
    first = train_rec(sample_ws, "popularity", time_budget_s=30)
    second = train_rec(sample_ws, "itemknn", config={"neighbours": 20})
    assert first["time_budget_s"] == 30
    assert second["config"]["neighbours"] == 20
    with Warehouse(sample_ws, read_only=True) as wh:
        parents = wh.parents(REC_MODEL_ASSET, second["version"])
    assert (REC_MODEL_ASSET, first["version"], "previous") in parents
    assert load_rec_model(sample_ws).version == second["version"]
    assert load_rec_model(sample_ws, first["version"]).params["model"] == "popularity"


def test_bad_config_and_budget_are_config_errors(sample_ws: Workspace) -> None:
    with pytest.raises(ConfigError, match="ease"):
        train_rec(sample_ws, "ease", config={"l2": -1})
    with pytest.raises(ConfigError, match="l3"):
        train_rec(sample_ws, "ease", config={"l3": 1})
    with pytest.raises(ConfigError, match="budget"):
        train_rec(sample_ws, "ease", time_budget_s=0)


def test_loaded_model_scores_like_a_fresh_fit_on_all_interactions(
    sample_ws: Workspace, trained: dict[str, Any]
) -> None:
    model = load_rec_model(sample_ws, trained["version"])
    with Warehouse(sample_ws, read_only=True) as wh:
        inter = read_interactions(wh)
    assert model.item_ids == inter.item_ids
    histories = Histories.from_pairs(inter.users, inter.items, inter.n_users, inter.n_items)
    fresh = create_scorer("ease", trained["config"])
    fresh.fit(TrainingData(histories))
    batch = histories.rows(np.arange(0, inter.n_users, 7))
    np.testing.assert_array_equal(model.scorer.score(batch), fresh.score(batch))


def test_histories_read_for_recommend_match_training_order(
    sample_ws: Workspace, trained: dict[str, Any], customers: list[str]
) -> None:
    """Same items, same order (time, then the seeded same-time hash) as training saw."""
    model = load_rec_model(sample_ws, trained["version"])
    read = read_histories(sample_ws, [*customers, "no-such-customer"], model)
    with Warehouse(sample_ws, read_only=True) as wh:
        inter = read_interactions(wh)
    pseudo = sample_ws.keys.load(create=False)
    row_of = {u: i for i, u in enumerate(inter.user_ids)}
    train = Histories.from_pairs(inter.users, inter.items, inter.n_users, inter.n_items)
    for i, raw in enumerate(customers):
        expected = train.row(row_of[pseudo.pseudonymize(raw)])
        np.testing.assert_array_equal(read.row(i), expected)
    assert read.lengths[-1] == 0


def test_recommend_excludes_bought_items_unless_asked(
    sample_ws: Workspace, trained: dict[str, Any], customers: list[str]
) -> None:
    model = load_rec_model(sample_ws, trained["version"])
    recs = recommend(sample_ws, customers, 20, model=model)
    assert list(recs) == customers
    for raw in customers:
        items = [e["item_id"] for e in recs[raw]]
        assert len(items) == 20 == len(set(items))
        assert not set(items) & bought(sample_ws, raw)
        scores = [e["score"] for e in recs[raw]]
        assert scores == sorted(scores, reverse=True)
        assert all(isinstance(s, float) for s in scores)
        assert all(set(e) == {"item_id", "score"} for e in recs[raw])
    with_seen = recommend(sample_ws, customers, 20, include_seen=True, model=model)
    assert any({e["item_id"] for e in with_seen[raw]} & bought(sample_ws, raw) for raw in customers)


def test_popular_items_come_back_when_seen_items_are_kept(
    sample_ws: Workspace, customers: list[str]
) -> None:
    version = train_rec(sample_ws, "popularity")["version"]
    model = load_rec_model(sample_ws, version)
    top = recommend(sample_ws, ["nobody at all"], 1, model=model)["nobody at all"][0]["item_id"]
    buyer = next(c for c in raw_customers() if top in bought(sample_ws, c))
    excluded = recommend(sample_ws, [buyer], 5, model=model)[buyer]
    kept = recommend(sample_ws, [buyer], 5, include_seen=True, model=model)[buyer]
    assert top not in {e["item_id"] for e in excluded}
    assert kept[0]["item_id"] == top


def test_unknown_user_gets_popularity_with_the_fallback_flag(
    sample_ws: Workspace, trained: dict[str, Any], customers: list[str]
) -> None:
    model = load_rec_model(sample_ws, trained["version"])
    recs = recommend(sample_ws, ["nobody", customers[0]], 10, model=model)
    assert all(e["fallback"] == "popularity" for e in recs["nobody"])
    assert all("fallback" not in e for e in recs[customers[0]])
    with Warehouse(sample_ws, read_only=True) as wh:
        popular = [
            r[0]
            for r in wh.con.execute(
                f"SELECT item_id FROM {REC_MODEL_ASSET}_v{trained['version']} "
                "ORDER BY interactions DESC, item_index LIMIT 10"
            ).fetchall()
        ]
    assert [e["item_id"] for e in recs["nobody"]] == popular
    assert recs["nobody"][0]["score"] == 1.0


def test_batch_equals_one_by_one_and_ids_are_read_like_ingest(
    sample_ws: Workspace, trained: dict[str, Any], customers: list[str]
) -> None:
    model = load_rec_model(sample_ws, trained["version"])
    ids = [customers[2], "nobody", customers[0], customers[2], customers[1]]
    batch = recommend(sample_ws, ids, 7, model=model, batch_size=2)
    assert list(batch) == [customers[2], "nobody", customers[0], customers[1]]
    for uid in batch:
        assert recommend(sample_ws, [uid], 7, model=model)[uid] == batch[uid]
    # ingest trims ids and reads `17850.0` as `17850`: so does recommend
    spaced = recommend(sample_ws, [f" {customers[0]}.0 "], 7, model=model)
    assert spaced[f" {customers[0]}.0 "] == batch[customers[0]]


def test_bad_requests_are_config_errors(sample_ws: Workspace, trained: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="position 2"):
        recommend(sample_ws, ["17850", "  "])
    with pytest.raises(ConfigError, match="k must"):
        recommend(sample_ws, ["17850"], 0)


def test_user_file_reports_the_blank_line(tmp_path) -> None:
    good = tmp_path / "users.txt"
    good.write_text("17850\n 12583 \n")
    assert read_user_ids(good) == ["17850", "12583"]
    bad = tmp_path / "bad.txt"
    bad.write_text("17850\n\n12583\n")
    with pytest.raises(ConfigError, match=r"bad.txt: line 2: empty user id"):
        read_user_ids(bad)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ConfigError, match="no user ids"):
        read_user_ids(tmp_path / "empty.txt")
    with pytest.raises(ConfigError, match="cannot read"):
        read_user_ids(tmp_path / "missing.txt")


@pytest.mark.slow
def test_default_model_builds_embeddings_and_stops_at_the_budget(
    tmp_path, tiny_model_dir, customers: list[str]
) -> None:
    """The default (SASRec) reads item text: with none yet, train_rec embeds the items first."""
    from shopkeeper.features import EMBEDDINGS_ASSET, ItemEncoder
    from shopkeeper.rec import get_scorer_class
    from shopkeeper.rec._train import DEFAULT_REC_MODEL

    try:
        get_scorer_class(DEFAULT_REC_MODEL)
    except ImportError as exc:
        pytest.skip(f"{DEFAULT_REC_MODEL} is not installed: {exc}")
    ws = Workspace.at(tmp_path / "ws")
    ingest(ws, IngestRequest(SAMPLE, "online-retail"))
    encoder = ItemEncoder(model_path=tiny_model_dir, precision="fp32", batch_size=64)
    small = {"dim": 16, "layers": 1, "heads": 1, "val_users": 100, "max_epochs": 3}
    out = train_rec(ws, config=small, time_budget_s=0.01, encoder=encoder)
    assert out["model"] == DEFAULT_REC_MODEL
    assert out["built_features"] is True
    assert out["info"]["stopped"] == "time_budget"  # the budget reached the trainer
    assert out["info"]["epochs"] == 1
    with Warehouse(ws, read_only=True) as wh:
        parents = wh.parents(REC_MODEL_ASSET, out["version"])
    assert (EMBEDDINGS_ASSET, out["embeddings_version"], "item_text_from") in parents
    assert not (ws.home / "checkpoints" / REC_MODEL_ASSET / DEFAULT_REC_MODEL).exists()
    recs = recommend(ws, [customers[0], "nobody"], 5)
    assert len(recs[customers[0]]) == 5
    assert not {e["item_id"] for e in recs[customers[0]]} & bought(ws, customers[0])
    assert all(e["fallback"] == "popularity" for e in recs["nobody"])
