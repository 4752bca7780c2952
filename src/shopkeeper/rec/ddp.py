"""Distributed data-parallel training of a trained scorer through `torchrun`.

`fit_distributed` writes the training data to a folder, starts
`torchrun --nproc_per_node N -m shopkeeper.rec.ddp` (gloo on the CPU, NCCL on GPUs),
and loads the model the first process saved. Each process takes its share of every
global batch (see `_trainer`), so N processes train the same model one would.
On several machines, run the same module under `torchrun --nnodes ... --rdzv-endpoint
...` with the data folder on shared storage.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from shopkeeper.errors import ConfigError, ShopkeeperError
from shopkeeper.rec._data import Histories
from shopkeeper.rec._scorer import RecScorer, TrainingData, create_scorer

_DATA = "data.npz"
_MODEL = "model"


def save_training_data(data: TrainingData, folder: Path) -> Path:
    """Write histories (and item vectors) to `folder/data.npz`."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {
        "indptr": data.histories.indptr,
        "items": data.histories.items,
        "n_items": np.array(data.histories.n_items),
    }
    if data.item_vectors is not None:
        arrays["vectors"] = data.item_vectors
    np.savez(folder / _DATA, **arrays)
    return folder / _DATA


def load_training_data(path: Path, time_budget_s: float | None = None) -> TrainingData:
    """Read what `save_training_data` wrote."""
    with np.load(path, allow_pickle=False) as z:
        h = Histories(z["indptr"], z["items"], int(z["n_items"]))
        vectors = z["vectors"].astype(np.float32) if "vectors" in z.files else None
    return TrainingData(h, vectors, time_budget_s=time_budget_s)


def fit_distributed(
    model: str,
    config: dict[str, Any],
    data: TrainingData,
    nproc: int,
    *,
    workdir: Path | None = None,
) -> RecScorer[Any]:
    """Fit scorer `model` with `nproc` data-parallel processes and return it, loaded.

    Raises:
        ConfigError: `nproc` < 1.
        ShopkeeperError: a training process failed (its output is in the message).
    """
    if nproc < 1:
        raise ConfigError("nproc must be at least 1")
    with tempfile.TemporaryDirectory(prefix="shopkeeper-ddp-") as tmp:
        folder = workdir or Path(tmp)
        save_training_data(data, folder)
        (folder / "config.json").write_text(json.dumps({"model": model, "config": config}))
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "shopkeeper.rec.ddp",
            str(folder),
        ]
        if data.time_budget_s is not None:
            cmd += ["--time-budget-s", str(data.time_budget_s)]
        if data.checkpoint_dir is not None:
            cmd += ["--checkpoint-dir", str(data.checkpoint_dir)]
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc))}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise ShopkeeperError(f"distributed training failed:\n{done.stderr[-4000:]}")
        return RecScorer.load(folder / _MODEL)


def main(argv: list[str] | None = None) -> int:
    """One training process: join the group, fit, and (first process) save the model."""
    import torch.distributed as dist

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("folder", type=Path, help="holds data.npz and config.json")
    ap.add_argument("--time-budget-s", type=float, default=None)
    ap.add_argument("--checkpoint-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    spec = json.loads((args.folder / "config.json").read_text())
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if distributed:
        import torch

        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    try:
        data = load_training_data(args.folder / _DATA, args.time_budget_s)
        if args.checkpoint_dir is not None:
            data = TrainingData(
                data.histories, data.item_vectors, data.time_budget_s, args.checkpoint_dir
            )
        scorer = create_scorer(spec["model"], spec["config"]).fit(data)
        if not distributed or dist.get_rank() == 0:
            scorer.save(args.folder / _MODEL)
    finally:
        if distributed:
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
