"""`shopkeeper train rec` and `shopkeeper recommend`: JSON shapes, exit codes, messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shopkeeper.rec import SCORERS
from tests.cli.test_cli import run
from tests.conftest import SAMPLES

CUSTOMERS = ("17850", "13047", "12583")
"""Customers of the first invoices of December 2010, as the source writes them."""


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("train-rec") / "ws"
    sample = str(SAMPLES / "online-retail-2010-12.csv.gz")
    out = run(home, "ingest", sample, "--adapter", "online-retail", "--json")
    assert out.returncode == 0, out.stderr
    out = run(home, "recommend", CUSTOMERS[0])
    assert out.returncode == 2
    assert "train rec" in out.stderr
    return home


@pytest.fixture(scope="module")
def trained(home: Path) -> dict[str, object]:
    out = run(home, "train", "rec", "--model", "ease", "--time-budget", "0.5", "--json")
    assert out.returncode == 0, out.stderr
    summary: dict[str, object] = json.loads(out.stdout)
    return summary


def test_train_rec_json(trained: dict[str, object]) -> None:
    assert trained["asset"] == "rec_model"
    assert trained["model"] == "ease"
    assert trained["time_budget_s"] == 30.0  # --time-budget is in minutes
    assert {"version", "users", "items", "interactions", "fit_seconds", "info", "config"} <= set(
        trained
    )


def test_train_rec_human_output_and_config_file(home: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "itemknn.yaml"
    cfg.write_text("neighbours: 25\n")
    out = run(home, "train", "rec", "--model", "itemknn", "--config", str(cfg))
    assert out.returncode == 0, out.stderr
    assert "rec_model v" in out.stdout
    assert "neighbours" in out.stdout
    assert "25" in out.stdout
    assert "training itemknn" in out.stderr


def test_train_rec_usage_errors(home: Path, tmp_path: Path) -> None:
    out = run(home, "train", "rec", "--model", "nope")
    assert out.returncode == 2
    assert "ease" in out.stderr  # the known names
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("neighbors: 25\n")
    out = run(home, "train", "rec", "--model", "itemknn", "--config", str(cfg))
    assert out.returncode == 2
    assert "neighbors" in out.stderr
    out = run(home, "train", "rec", "--model", "ease", "--time-budget", "0")
    assert out.returncode == 2
    out = run(home, "train", "rec", "--model", "ease", "--event-type", "click")
    assert out.returncode == 2
    assert "purchase" in out.stderr  # what is present
    out = run(home, "train", "rec", "--help")
    assert all(name in out.stdout for name in SCORERS)


def test_recommend_json_contract(home: Path, trained: dict[str, object], tmp_path: Path) -> None:
    out = run(home, "recommend", CUSTOMERS[0], "--k", "5", "--json")
    assert out.returncode == 0, out.stderr
    single = json.loads(out.stdout)
    assert len(single) == 5
    assert all(set(e) == {"item_id", "score"} for e in single)
    assert all(isinstance(e["score"], float) for e in single)
    assert [e["score"] for e in single] == sorted((e["score"] for e in single), reverse=True)

    users = tmp_path / "users.txt"
    users.write_text("\n".join([CUSTOMERS[0], "nobody", *CUSTOMERS[1:], CUSTOMERS[0]]) + "\n")
    out = run(home, "--json", "recommend", "--users", str(users), "--k", "5")
    assert out.returncode == 0, out.stderr
    batch = json.loads(out.stdout)
    assert list(batch) == [CUSTOMERS[0], "nobody", *CUSTOMERS[1:]]
    assert batch[CUSTOMERS[0]] == single
    assert all(e["fallback"] == "popularity" for e in batch["nobody"])
    assert all("fallback" not in e for u in CUSTOMERS for e in batch[u])
    for uid in CUSTOMERS[1:]:
        one = json.loads(run(home, "recommend", uid, "--k", "5", "--json").stdout)
        assert one == batch[uid]


def test_include_seen_brings_back_bought_items(home: Path, trained: dict[str, object]) -> None:
    pseudonym = json.loads(run(home, "privacy", "pseudonym", CUSTOMERS[0], "--json").stdout)[
        "user_id"
    ]
    out = run(
        home,
        "sql",
        f"SELECT DISTINCT item_id FROM events WHERE user_id = '{pseudonym}' "
        "AND event_type = 'purchase'",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    bought = {r["item_id"] for r in json.loads(out.stdout)}
    assert bought
    k = str(len(bought) + 10)
    unseen = json.loads(run(home, "recommend", CUSTOMERS[0], "--k", k, "--json").stdout)
    seen = json.loads(
        run(home, "recommend", CUSTOMERS[0], "--k", k, "--include-seen", "--json").stdout
    )
    assert not {e["item_id"] for e in unseen} & bought
    assert {e["item_id"] for e in seen} & bought


def test_recommend_human_output(home: Path, trained: dict[str, object]) -> None:
    out = run(home, "recommend", CUSTOMERS[0], "--k", "3")
    assert out.returncode == 0, out.stderr
    assert f"Recommended for {CUSTOMERS[0]}" in out.stdout
    assert "title" in out.stdout
    out = run(home, "recommend", "nobody", "--k", "3")
    assert "no history: popularity" in out.stdout
    assert "WHITE HANGING HEART" in out.stdout  # the sample's best seller


def test_recommend_usage_errors(home: Path, trained: dict[str, object], tmp_path: Path) -> None:
    bad = tmp_path / "users.txt"
    bad.write_text(f"{CUSTOMERS[0]}\n\n{CUSTOMERS[1]}\n")
    out = run(home, "recommend", "--users", str(bad), "--json")
    assert out.returncode == 2
    assert "line 2: empty user id" in out.stderr
    assert str(bad) in out.stderr
    assert out.stdout == ""
    out = run(home, "recommend", CUSTOMERS[0], "--users", str(bad))
    assert out.returncode == 2
    out = run(home, "recommend")
    assert out.returncode == 2
    out = run(home, "recommend", CUSTOMERS[0], "--k", "0")
    assert out.returncode == 2
    out = run(home, "recommend", "--users", str(tmp_path / "missing.txt"))
    assert out.returncode == 2
    out = run(home, "recommend", CUSTOMERS[0], "--model-version", "99")
    assert out.returncode == 2
    assert "no version 99" in out.stderr
