"""The text-aware SASRec: contract, windows, learning, cold items, resume, DDP, compression."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pytest

from shopkeeper.errors import ConfigError
from shopkeeper.rec import Histories, TrainingData
from shopkeeper.rec._sasrec import SASRecScorer, last_window, windows
from shopkeeper.testing.rec import RecScorerContractTests

if TYPE_CHECKING:
    from pathlib import Path

FAST: dict[str, Any] = {
    "dim": 16,
    "heads": 2,
    "layers": 1,
    "max_len": 8,
    "max_epochs": 8,
    "batch_size": 16,
}


class TestSASRec(RecScorerContractTests):
    scorer_cls = SASRecScorer

    def make(self) -> SASRecScorer:
        return SASRecScorer(**FAST)


def cycles(n_users: int = 120, n_items: int = 20, length: int = 12, seed: int = 0) -> Histories:
    """Users walk a fixed cycle of items (i -> i + 1): the next item is always knowable."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n_items, n_users)
    rows = [[(s + j) % n_items for j in range(length)] for s in starts]
    return Histories.from_lists(rows, n_items)


def unseen(scores: np.ndarray[Any, Any], h: Histories) -> np.ndarray[Any, Any]:
    """Scores with each row's history masked, as the protocol and `recommend` rank."""
    scores[h.user_of, h.items] = -np.inf
    return scores


def test_windows_split_long_rows_from_the_end() -> None:
    h = Histories.from_lists([[1, 2, 3, 4, 5, 6], [7, 8]], 10)
    x, y = windows(h, 3, pad=10)
    assert x.tolist() == [[3, 4, 5], [10, 1, 2], [10, 10, 7]]
    assert y.tolist() == [[4, 5, 6], [-1, 2, 3], [-1, -1, 8]]


def test_last_window_is_right_aligned() -> None:
    h = Histories.from_lists([[1, 2, 3, 4], [5], []], 9)
    assert last_window(h, 3, pad=9).tolist() == [[2, 3, 4], [9, 9, 5], [9, 9, 9]]


def test_learns_a_sequential_pattern_that_counts_cannot() -> None:
    """Every item is equally popular and co-occurs alike; only order says what comes next."""
    h = cycles()
    scorer = SASRecScorer(**{**FAST, "max_epochs": 40, "dropout": 0.0}).fit(TrainingData(h))
    test = Histories.from_lists([[3, 4, 5], [10, 11], [18, 19]], 20)
    assert np.argmax(unseen(scorer.score(test), test), axis=1).tolist() == [6, 12, 0]
    assert scorer.info["best_val_ndcg@10"] > 0.9


def test_a_new_item_with_text_is_ranked_by_its_text() -> None:
    """Item 20 has no interactions but the text of item 6: after [..., 5] it ranks near 6."""
    h = cycles(n_items=21)
    rows = [[i for i in h.row(u) if i != 20] for u in range(h.n_users)]
    h = Histories.from_lists(rows, 21)
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(21, 16)).astype(np.float32)
    vectors[20] = vectors[6]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cfg = {**FAST, "max_epochs": 40, "dropout": 0.0}
    scorer = SASRecScorer(**cfg).fit(TrainingData(h, vectors))
    test = Histories.from_lists([[3, 4, 5]], 21)
    scores = unseen(scorer.score(test), test)[0]
    assert np.argmax(scores) == 6
    assert (scores > scores[20]).sum() <= 3
    blind = SASRecScorer(**{**cfg, "use_text": False}).fit(TrainingData(h, vectors))
    blind_scores = unseen(blind.score(test), test)[0]
    assert (blind_scores > blind_scores[20]).sum() > 3


def test_items_without_text_fall_back_to_ids() -> None:
    h = cycles()
    vectors = np.zeros((20, 8), dtype=np.float32)
    scorer = SASRecScorer(**{**FAST, "max_epochs": 40, "dropout": 0.0})
    scorer.fit(TrainingData(h, vectors))
    assert scorer.info["text"] is False
    test = Histories.from_lists([[3, 4, 5]], 20)
    assert np.argmax(unseen(scorer.score(test), test)[0]) == 6


def test_time_budget_stops_with_the_best_state() -> None:
    scorer = SASRecScorer(**{**FAST, "max_epochs": 10_000, "patience": 0})
    scorer.fit(TrainingData(cycles(), time_budget_s=1.0))
    assert scorer.info["stopped"] == "time_budget"
    assert scorer.info["epochs"] < 10_000
    best = max(h["val_ndcg@10"] for h in scorer.info["history"])
    assert scorer.info["best_val_ndcg@10"] == pytest.approx(best)


def test_resume_from_a_checkpoint_equals_training_straight(tmp_path: Path) -> None:
    """A fit that stopped early (as a killed one would) resumes where its checkpoint is."""
    h = cycles()
    cfg = {**FAST, "max_epochs": 8, "patience": 0}
    straight = SASRecScorer(**cfg).fit(TrainingData(h))
    first = SASRecScorer(**{**cfg, "patience": 1})
    first.fit(TrainingData(h, checkpoint_dir=tmp_path))
    assert first.info["stopped"] == "early_stopping"
    assert (tmp_path / "last.pt").exists()
    resumed = SASRecScorer(**cfg).fit(TrainingData(h, checkpoint_dir=tmp_path))
    assert 0 < resumed.info["resumed_from_epoch"] == first.info["epochs"] < 8
    assert resumed.info["epochs"] == 8
    curve = [(e["epoch"], e["loss"], e["val_ndcg@10"]) for e in straight.info["history"]]
    again = [(e["epoch"], e["loss"], e["val_ndcg@10"]) for e in resumed.info["history"]]
    np.testing.assert_allclose(again, curve, rtol=1e-3)
    batch = h.rows(np.arange(10))
    np.testing.assert_allclose(resumed.score(batch), straight.score(batch), rtol=1e-4, atol=1e-4)


def test_a_checkpoint_of_other_data_is_not_resumed(tmp_path: Path) -> None:
    SASRecScorer(**FAST).fit(TrainingData(cycles(seed=1), checkpoint_dir=tmp_path))
    other = SASRecScorer(**FAST).fit(TrainingData(cycles(seed=2), checkpoint_dir=tmp_path))
    assert other.info["resumed_from_epoch"] == 0


def test_sampled_softmax_learns_the_pattern_too() -> None:
    cfg = {**FAST, "max_epochs": 40, "dropout": 0.0, "full_softmax_max_items": 5}
    scorer = SASRecScorer(**{**cfg, "negatives": 8}).fit(TrainingData(cycles()))
    assert scorer.info["softmax"] == "sampled"
    test = Histories.from_lists([[3, 4, 5], [10, 11]], 20)
    assert np.argmax(unseen(scorer.score(test), test), axis=1).tolist() == [6, 12]


def test_int8_and_pruned_models_agree_with_fp32_on_top_10(tmp_path: Path) -> None:
    h = cycles(n_users=200, n_items=60, length=20)
    cfg = {**FAST, "dim": 32, "max_epochs": 15}
    fp32 = SASRecScorer(**cfg).fit(TrainingData(h))
    batch = h.rows(np.arange(100))
    top = np.argsort(-fp32.score(batch), axis=1)[:, :10]
    for change in ({"quantize": "int8"}, {"prune": 0.3}):
        small = SASRecScorer(**{**cfg, **change}).fit(TrainingData(h))
        other = np.argsort(-small.score(batch), axis=1)[:, :10]
        overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(top, other, strict=True)])
        assert overlap > 0.8, change
        small.save(tmp_path / str(change))
        again = SASRecScorer.load(tmp_path / str(change))
        np.testing.assert_allclose(again.score(batch), small.score(batch), rtol=1e-5, atol=1e-5)
    pruned = SASRecScorer(**{**cfg, "prune": 0.3}).fit(TrainingData(h))
    weights = np.concatenate(
        [
            p.detach().numpy().ravel()
            for n, p in pruned._net.named_parameters()
            if n.endswith("weight") and p.ndim == 2 and "ids" not in n and "pos" not in n
        ]
    )
    assert (weights == 0).mean() == pytest.approx(0.3, abs=0.01)


def test_two_ddp_processes_train_the_same_model_as_one(tmp_path: Path) -> None:
    """torchrun with 2 gloo processes, each half of every batch: same model as 1 process."""
    from shopkeeper.rec.ddp import fit_distributed

    h = cycles(n_users=64, length=10)
    cfg = {**FAST, "dropout": 0.0, "max_epochs": 4, "patience": 0}
    single = SASRecScorer(**cfg).fit(TrainingData(h))
    double = fit_distributed("sasrec", cfg, TrainingData(h), nproc=2, workdir=tmp_path)
    assert isinstance(double, SASRecScorer)
    assert double.info["epochs"] == single.info["epochs"] == 4
    batch = h.rows(np.arange(20))
    np.testing.assert_allclose(double.score(batch), single.score(batch), rtol=1e-3, atol=1e-3)
    losses = [e["loss"] for e in single.info["history"]]
    np.testing.assert_allclose([e["loss"] for e in double.info["history"]], losses, rtol=1e-4)


def test_fine_tuning_the_language_model_end_to_end(tiny_model_dir: Path) -> None:
    """The tower's top layer trains: the cached item vectors move off the pre-trained ones."""
    from shopkeeper.rec._text_tower import TextTower

    h = cycles(n_users=60, n_items=20, length=8)
    texts = [f"item number {i} in the cycle" for i in range(20)]
    cfg = {
        **FAST,
        "max_epochs": 3,
        "patience": 0,
        "finetune_text": True,
        "text_model_path": str(tiny_model_dir),
        "text_trainable_layers": 1,
        "text_max_candidates": 8,
        "text_lr": 1e-3,
    }
    before = TextTower(tiny_model_dir, texts, trainable_layers=1, max_tokens=48).encode_all()
    scorer = SASRecScorer(**cfg).fit(TrainingData(h, item_texts=texts))
    assert scorer.info["text_finetuned"] is True
    after = scorer._net.items.text
    assert after.shape == before.shape
    assert not np.allclose(after.numpy(), before.numpy(), atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(after.numpy(), axis=1), 1.0, rtol=1e-4)
    scores = scorer.score(h.rows(np.arange(5)))
    assert np.isfinite(scores).all()
    with pytest.raises(ConfigError, match="item_texts"):
        SASRecScorer(**cfg).fit(TrainingData(h))


def test_catalogue_codes_place_a_new_item_without_text() -> None:
    """Item 20 has no interactions and no text, only group A's category code."""
    rng = np.random.default_rng(0)
    rows = [
        rng.choice(np.arange(0, 10) if u % 2 else np.arange(10, 20), 6, replace=False).tolist()
        for u in range(200)
    ]
    h = Histories.from_lists(rows, 21)
    attrs = np.zeros((21, 2), dtype=np.int64)
    attrs[:10, 0], attrs[10:20, 0], attrs[20, 0] = 1, 2, 1
    cfg = {**FAST, "max_epochs": 30, "dropout": 0.0}
    scorer = SASRecScorer(**cfg).fit(TrainingData(h, item_attributes=attrs))
    assert scorer.info["attributes"] == 2
    test = Histories.from_lists([[0, 1, 2], [10, 11, 12]], 21)
    scores = unseen(scorer.score(test), test)
    assert (scores[0, 10:20] < scores[0, 20]).all()  # a group A user: item 20 above group B
    assert (scores[1, 13:20] > scores[1, 20]).all()  # a group B user: item 20 below B's
    blind = SASRecScorer(**{**cfg, "use_attributes": "never"})
    blind.fit(TrainingData(h, item_attributes=attrs))
    assert blind.info["attributes"] == 0
    vectors = np.random.default_rng(1).normal(size=(21, 8)).astype(np.float32)
    with_text = SASRecScorer(**cfg).fit(TrainingData(h, vectors, item_attributes=attrs))
    assert with_text.info["attributes"] == 0  # auto: codes only stand in for missing text


def test_bf16_autocast_trains_too() -> None:
    h = cycles()
    cfg = {**FAST, "max_epochs": 40, "dropout": 0.0, "precision": "bf16"}
    scorer = SASRecScorer(**cfg).fit(TrainingData(h))
    test = Histories.from_lists([[3, 4, 5], [10, 11]], 20)
    assert np.argmax(unseen(scorer.score(test), test), axis=1).tolist() == [6, 12]


def bundles(n_users: int = 150, seed: int = 0) -> Histories:
    """Items come in 6 fixed bundles of 5; each user buys 3 bundles, each at one time in a
    random order, so which items go together says what completes the last basket."""
    rng = np.random.default_rng(seed)
    groups = rng.permutation(30).reshape(6, 5)
    users, items, ts = [], [], []
    for u in range(n_users):
        for t, g in enumerate(rng.choice(6, 3, replace=False)):
            items += rng.permutation(groups[g]).tolist()
            users += [u] * 5
            ts += [t] * 5
    return Histories.from_pairs(np.array(users), np.array(items), n_users, 30, np.array(ts))


def test_the_cooccurrence_prior_completes_baskets_the_network_has_not_learned() -> None:
    """Trained one epoch, the network barely knows the bundles; the tuned blend does."""
    h = bundles()
    cfg = {**FAST, "max_epochs": 1, "val_users": 150}
    scorer = SASRecScorer(**cfg).fit(TrainingData(h))
    by_weight = scorer.info["cooccurrence_val_ndcg@10"]
    assert scorer.info["cooccurrence_weight"] > 0
    assert by_weight[str(scorer.info["cooccurrence_weight"])] > by_weight["0.0"] + 0.2
    # users who bought 4 items of a bundle get the fifth first
    probe = Histories.from_lists(
        [h.items[h.indptr[u] : h.indptr[u] + 4].tolist() for u in range(20)], 30
    )
    fifth = [h.items[h.indptr[u] + 4] for u in range(20)]
    assert np.argmax(unseen(scorer.score(probe), probe), axis=1).tolist() == fifth
    alone = SASRecScorer(**cfg, cooccurrence="off").fit(TrainingData(h))
    assert alone.info["cooccurrence_weight"] == 0.0
    np.testing.assert_array_equal(alone.score(probe), alone._sequence_scores(probe))
    np.testing.assert_array_equal(scorer._sequence_scores(probe), alone.score(probe))


def test_the_prior_is_saved_loaded_and_kept_by_compression(tmp_path: Path) -> None:
    h = bundles(n_users=60)
    scorer = SASRecScorer(**{**FAST, "max_epochs": 1}).fit(TrainingData(h))
    assert scorer.info["cooccurrence_weight"] > 0
    batch = h.rows(np.arange(10))
    scorer.save(tmp_path / "m")
    again = SASRecScorer.load(tmp_path / "m")
    np.testing.assert_allclose(again.score(batch), scorer.score(batch), rtol=1e-6)
    np.testing.assert_allclose(
        scorer.compressed(prune=0.0).score(batch), scorer.score(batch), rtol=1e-6
    )
    alone = scorer.compressed(prior=False)
    np.testing.assert_array_equal(alone.score(batch), scorer._sequence_scores(batch))
    assert alone.weight_stats()["prior_bytes"] == 0
    assert scorer.weight_stats()["prior_bytes"] == 30 * 30 * 4 + 30 * 8  # B and its items


def test_the_masked_loss_is_the_cross_entropy_over_items_not_yet_in_the_window() -> None:
    """Position t's softmax leaves out the window's items up to t, but never the target."""
    import torch

    from shopkeeper.rec._sasrec_net import SASRecNet

    torch.manual_seed(0)
    net = SASRecNet(None, 9, dim=8, layers=1, heads=2, max_len=5, dropout=0.0, use_id=True)
    net.eval()
    seq = torch.tensor([[9, 1, 2, 3, 4], [9, 9, 5, 6, 5]])
    target = torch.tensor([[-1, 2, 3, 4, 5], [-1, -1, 6, 5, 7]])
    with torch.no_grad():
        loss, n = net(seq, target)
        table = net.items()
        states = net.encode(seq, table)
        expected = 0.0
        for b, t in zip(*torch.nonzero(target >= 0).T.tolist(), strict=True):
            logits = states[b, t] @ table[:-1].T
            for j in range(t + 1):
                item = int(seq[b, j])
                if item != 9 and item != int(target[b, t]):
                    logits[item] = float("-inf")
            expected -= float(torch.log_softmax(logits, 0)[target[b, t]])
    assert int(n) == 7
    assert loss.item() == pytest.approx(expected, rel=1e-5)
