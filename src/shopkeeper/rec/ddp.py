"""Distributed data-parallel training of a trained scorer through `torchrun`.

`fit_distributed` writes the training data to a folder, starts
`torchrun --standalone --nproc_per_node N -m shopkeeper.rec.ddp FOLDER` (gloo on the
CPU, NCCL on GPUs) and loads the model the processes saved. Replicated (the default),
every process reads all of `data.npz` and takes its share of every global batch (see
`_trainer`), so N processes train the model one would. Sharded (`--sharded`), each
process reads only its row groups of `histories.parquet` (see `_shards`) and batches
its own users; that is the mode for several machines, each with its copy of the folder
(or one on shared storage):

    torchrun --nnodes 2 --node-rank R --nproc-per-node 1 --rdzv-backend c10d \\
        --rdzv-endpoint HOST:PORT -m shopkeeper.rec.ddp FOLDER --sharded

The first process of every machine saves the model to `FOLDER/model` (all processes
hold the same one, so every machine ends up with it, or storage shared by machines
with one copy), and every process writes `FOLDER/ranks/rank-R.json`: what it read
and a checksum of the model it holds.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from shopkeeper.errors import ConfigError, ShopkeeperError
from shopkeeper.rec._data import Histories
from shopkeeper.rec._scorer import RecScorer, TrainingData, create_scorer
from shopkeeper.rec._shards import (
    item_arrays,
    read_sharded_data,
    unpack_item_arrays,
    write_sharded_data,
)

_DATA = "data.npz"
CONFIG_FILE = "config.json"
MODEL_DIR = "model"
RANKS_DIR = "ranks"


def save_training_data(data: TrainingData, folder: Path) -> Path:
    """Write histories (with times) and item arrays to `folder/data.npz` (replicated mode)."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {
        "indptr": data.histories.indptr,
        "items": data.histories.items,
        "n_items": np.array(data.histories.n_items),
        **item_arrays(data),
    }
    if data.histories.ts is not None:
        arrays["ts"] = data.histories.ts
    np.savez(folder / _DATA, **arrays)
    return folder / _DATA


def load_training_data(path: Path, time_budget_s: float | None = None) -> TrainingData:
    """Read what `save_training_data` wrote."""
    with np.load(path, allow_pickle=False) as z:
        ts = z["ts"] if "ts" in z.files else None
        h = Histories(z["indptr"], z["items"], int(z["n_items"]), ts)
        items = unpack_item_arrays(z)
    return TrainingData(h, time_budget_s=time_budget_s, **items)


def write_config(
    folder: Path, model: str, config: dict[str, Any], time_budget_s: float | None = None
) -> Path:
    """Write `folder/config.json`: the scorer to fit, its config and the time budget."""
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"model": model, "config": config, "time_budget_s": time_budget_s}
    (folder / CONFIG_FILE).write_text(json.dumps(spec, indent=2))
    return folder / CONFIG_FILE


def fit_distributed(
    model: str,
    config: dict[str, Any],
    data: TrainingData,
    nproc: int,
    *,
    workdir: Path | None = None,
    sharded: bool = False,
) -> RecScorer[Any]:
    """Fit scorer `model` with `nproc` data-parallel processes on this machine; load it.

    Args:
        model: A scorer name.
        config: Its config, JSON data.
        data: What to fit on (its time budget and checkpoint folder are passed on).
        nproc: Processes.
        workdir: The folder to write data and model to (default a temporary one).
        sharded: Each process reads and batches only its share of the users.

    Raises:
        ConfigError: `nproc` < 1.
        ShopkeeperError: a training process failed (its output is in the message).
    """
    if nproc < 1:
        raise ConfigError("nproc must be at least 1")
    with tempfile.TemporaryDirectory(prefix="shopkeeper-ddp-") as tmp:
        folder = workdir or Path(tmp)
        if sharded:
            write_sharded_data(data, folder)
        else:
            save_training_data(data, folder)
        write_config(folder, model, config, data.time_budget_s)
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
        if sharded:
            cmd.append("--sharded")
        if data.checkpoint_dir is not None:
            cmd += ["--checkpoint-dir", str(data.checkpoint_dir)]
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // nproc))}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise ShopkeeperError(f"distributed training failed:\n{done.stderr[-4000:]}")
        return RecScorer.load(folder / MODEL_DIR)


def parameters_digest(scorer: RecScorer[Any]) -> str:
    """A SHA-256 of a fitted scorer's saved arrays (names, dtypes, shapes, bytes)."""
    d = hashlib.sha256()
    state = {**scorer._state(), "popularity": scorer._popularity}
    for name, arr in sorted(state.items()):
        a = np.ascontiguousarray(arr)
        d.update(f"{name}:{a.dtype}:{a.shape}".encode())
        d.update(a.tobytes())
    return d.hexdigest()


def _save_model(scorer: RecScorer[Any], folder: Path, rank: int, distributed: bool) -> bool:
    """Save `folder/model` on global rank 0, then on each other machine that lacks it.

    Returns:
        Whether this process wrote it.
    """
    import torch.distributed as dist

    target = folder / MODEL_DIR
    wrote = False
    if rank == 0:
        scorer.save(target)
        wrote = True
    if distributed:
        dist.barrier()  # rank 0's copy is complete (and visible on shared storage)
    if rank != 0 and int(os.environ.get("LOCAL_RANK", "0")) == 0:
        digest = scorer.info["ddp"]["parameters_sha256"]
        try:
            there = json.loads((target / "scorer.json").read_text())["info"]["ddp"]
        except (OSError, KeyError, ValueError):
            there = {}
        if there.get("parameters_sha256") != digest:  # this machine's own folder
            scorer.save(target)
            wrote = True
    return wrote


def main(argv: list[str] | None = None) -> int:
    """One training process: join the group, fit, save the model and its rank report."""
    import torch
    import torch.distributed as dist

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("folder", type=Path, help="holds config.json and the training data")
    ap.add_argument(
        "--sharded",
        action="store_true",
        help="read only this process's row groups of histories.parquet (several machines)",
    )
    ap.add_argument("--time-budget-s", type=float, default=None, help="default: config.json's")
    ap.add_argument("--checkpoint-dir", type=Path, default=None)
    args = ap.parse_args(argv)
    spec = json.loads((args.folder / CONFIG_FILE).read_text())
    budget = args.time_budget_s if args.time_budget_s is not None else spec.get("time_budget_s")
    rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    distributed = world_size > 1
    if distributed:
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("cpu:gloo,cuda:nccl")
        else:
            dist.init_process_group("gloo")
    try:
        start = time.perf_counter()
        if args.sharded:
            data = read_sharded_data(
                args.folder, rank, world_size, time_budget_s=budget, checkpoint_dir=None
            )
        else:
            data = load_training_data(args.folder / _DATA, budget)
        if args.checkpoint_dir is not None:
            data = dataclasses.replace(data, checkpoint_dir=args.checkpoint_dir)
        scorer = create_scorer(spec["model"], spec["config"]).fit(data)
        seconds = time.perf_counter() - start
        scorer.info["ddp"] = {
            "world_size": world_size,
            "sharded": args.sharded,
            "parameters_sha256": parameters_digest(scorer),
            "fit_seconds": round(seconds, 3),
        }
        saved = _save_model(scorer, args.folder, rank, distributed)
        _write_rank_report(args.folder, data, scorer, saved, seconds)
    finally:
        if distributed:
            dist.destroy_process_group()
    return 0


def _write_rank_report(
    folder: Path, data: TrainingData, scorer: RecScorer[Any], saved: bool, seconds: float
) -> None:
    """Write `folder/ranks/rank-R.json`: what this process read, held and wrote."""
    rank = int(os.environ.get("RANK", "0"))
    shard = data.shard
    report = {
        "rank": rank,
        "local_rank": int(os.environ.get("LOCAL_RANK", "0")),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),
        "host": socket.gethostname(),
        "sharded": shard is not None,
        "row_groups": list(shard.row_groups) if shard is not None else None,
        "users": data.histories.n_users,
        "interactions": len(data.histories.items),
        "parameters_sha256": scorer.info["ddp"]["parameters_sha256"],
        "best_val_ndcg@10": scorer.info.get("best_val_ndcg@10"),
        "epochs": scorer.info.get("epochs"),
        "stopped": scorer.info.get("stopped"),
        "saved_model": saved,
        "seconds": round(seconds, 3),
    }
    out = folder / RANKS_DIR
    out.mkdir(parents=True, exist_ok=True)
    (out / f"rank-{rank}.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())
