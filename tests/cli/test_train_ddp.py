"""`shopkeeper train rec --export-ddp / --from-ddp / --nproc`: the multi-machine recipe's CLI.

The torchrun step in between runs here as one process (`python -m shopkeeper.rec.ddp`,
world size 1, every row group); two processes as two machines are in
tests/rec/test_ddp_multinode.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from shopkeeper.warehouse import Warehouse, Workspace
from tests.cli.test_cli import run
from tests.cli.test_train_recommend import CUSTOMERS
from tests.conftest import SAMPLES

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.slow

TINY = "dim: 16\nheads: 2\nlayers: 1\nmax_len: 8\nmax_epochs: 2\nbatch_size: 64\nval_users: 200\n"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    home = tmp_path_factory.mktemp("train-ddp") / "ws"
    sample = str(SAMPLES / "online-retail-2010-12.csv.gz")
    out = run(home, "ingest", sample, "--adapter", "online-retail", "--json")
    assert out.returncode == 0, out.stderr
    model = str(tiny_model_dir)
    out = run(home, "features", "build", "--model", model, "--backend", "torch", "--json")
    assert out.returncode == 0, out.stderr
    return home


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "sasrec.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def exported(home: Path, tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("export") / "ddp"
    args = ("train", "rec", "--config", str(tiny), "--export-ddp", str(folder), "--json")
    out = run(home, *args)
    assert out.returncode == 0, out.stderr
    summary: dict[str, Any] = json.loads(out.stdout)
    return summary


def test_export_writes_sharded_parquet_and_says_what_to_run(exported: dict[str, Any]) -> None:
    from pathlib import Path

    import pyarrow.parquet as pq

    folder = Path(exported["folder"])
    assert {p.name for p in folder.iterdir()} == set(exported["files"])
    pf = pq.ParquetFile(folder / "histories.parquet")
    assert pf.num_row_groups == exported["row_groups"] == 64  # the sample has 800+ users
    assert pf.metadata.num_rows == exported["users"] > 800
    assert pf.schema_arrow.names == ["user", "items", "ts"]
    assert exported["model"] == "sasrec"
    assert exported["config"]["max_epochs"] == 2
    assert exported["embeddings_version"] == 1
    assert "--rdzv-backend c10d" in exported["commands"]["train"]
    assert exported["commands"]["train"].endswith(f"{folder} --sharded")
    assert exported["commands"]["import"] == f"shopkeeper train rec --from-ddp {folder}"


def test_export_and_import_errors(home: Path, exported: dict[str, Any], tmp_path: Path) -> None:
    out = run(home, "train", "rec", "--export-ddp", exported["folder"])
    assert out.returncode == 2
    assert "not an empty folder" in out.stderr
    out = run(home, "train", "rec", "--model", "ease", "--export-ddp", str(tmp_path / "x"))
    assert out.returncode == 2
    assert "only sasrec" in out.stderr
    out = run(home, "train", "rec", "--from-ddp", str(tmp_path))
    assert out.returncode == 2
    assert "--export-ddp" in out.stderr
    out = run(home, "train", "rec", "--from-ddp", exported["folder"], "--model", "ease")
    assert out.returncode == 2
    assert "no other training option" in out.stderr
    out = run(home, "train", "rec", "--model", "ease", "--nproc", "2")
    assert out.returncode == 2
    assert "data-parallel" in out.stderr


def test_export_train_import_is_the_next_rec_model(
    home: Path, exported: dict[str, Any], tmp_path: Path
) -> None:
    from pathlib import Path

    folder = exported["folder"]
    out = run(home, "train", "rec", "--from-ddp", folder)
    assert out.returncode == 2
    assert "run the torchrun command first" in out.stderr
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "shopkeeper.rec.ddp", folder, "--sharded"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((Path(folder) / "ranks" / "rank-0.json").read_text())
    assert report["row_groups"] == list(range(64))  # one process reads every group
    out = run(home, "train", "rec", "--from-ddp", folder, "--json")
    assert out.returncode == 0, out.stderr
    imported = json.loads(out.stdout)
    assert imported["asset"] == "rec_model"
    assert imported["ddp"]["sharded"] is True
    assert imported["ddp"]["parameters_sha256"] == report["parameters_sha256"]
    assert imported["events_version"] == exported["events_version"]
    assert imported["info"]["epochs"] == 2
    with Warehouse(Workspace.at(home), read_only=True) as wh:
        parents = wh.parents("rec_model", imported["version"])
    assert ("events", exported["events_version"], "trained_on") in parents
    assert ("item_embeddings", 1, "item_text_from") in parents
    out = run(home, "recommend", CUSTOMERS[0], "--k", "3", "--json")
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)) == 3
    out = run(home, "train", "rec", "--from-ddp", folder)
    assert out.returncode == 0, out.stderr
    assert "trained by 1 process on sharded data" in out.stdout


def test_nproc_trains_data_parallel_on_this_machine(home: Path, tiny: Path) -> None:
    out = run(home, "train", "rec", "--config", str(tiny), "--nproc", "2", "--json")
    assert out.returncode == 0, out.stderr
    trained = json.loads(out.stdout)
    assert trained["info"]["ddp"]["world_size"] == 2
    assert trained["info"]["ddp"]["sharded"] is False
    assert trained["info"]["epochs"] == 2
