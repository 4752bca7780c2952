"""A PyTorch training loop for recommenders: AdamW, warm-up and decay, early stopping.

Validation NDCG@10 picks the best epoch; training stops after `patience` epochs without
a gain, at `max_epochs`, or when the time budget runs out (then the best checkpoint so
far is kept). Each epoch ends with a resumable checkpoint. Under `torchrun` (a process
group initialized) the model is wrapped in DistributedDataParallel and the loss is
normalized by the global count. Replicated (the default), every process builds the same
global batches and takes its share of each, so the gradients, and so the result, match
one process training on the whole batch. Sharded, every process builds batches from its
own users only; the steps of an epoch are the most any process has (a process with
fewer batches cycles through them again), so every window is seen each epoch and no
process waits on a step the others never take. In both modes the decisions that end
training are collective: the metric comes from `validate` (which must return the same
value on every process), the time budget stops every process when any one runs out,
and a checkpoint is resumed only when every process has the same one.
"""

from __future__ import annotations

import gc
import math
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveInt

from shopkeeper.logging import get_logger, progress

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    import numpy.typing as npt
    from torch import nn

_log = get_logger(__name__)

Batch = tuple[torch.Tensor, ...]
Precision = Literal["fp32", "bf16"]

_clock = time.perf_counter
"""The time-budget clock (a test makes one process run out of time before the others)."""


class TrainerConfig(BaseModel):
    """Optimization settings shared by the trained recommenders."""

    model_config = ConfigDict(extra="forbid")

    lr: float = Field(default=1e-3, gt=0)
    """Peak learning rate of AdamW."""
    weight_decay: NonNegativeFloat = 0.01
    """AdamW's decoupled weight decay."""
    warmup_fraction: float = Field(default=0.05, ge=0, lt=1)
    """Share of the planned steps with a linear warm-up from zero."""
    min_lr_ratio: float = Field(default=0.1, ge=0, le=1)
    """The cosine decay ends at this share of the peak learning rate."""
    max_epochs: PositiveInt = 100
    """Epochs at most."""
    patience: NonNegativeInt = 5
    """Stop after this many epochs without a better validation NDCG@10 (0: never)."""
    grad_clip: NonNegativeFloat = 1.0
    """Clip the gradient norm to this (0: no clipping)."""
    precision: Precision = "fp32"
    """`bf16` runs forward passes under bfloat16 autocast (CPU or GPU)."""
    seed: NonNegativeInt = 0
    """Seed of initialization, batch order and dropout."""


@dataclass
class TrainResult:
    """What training did: for reports and for resuming."""

    best_epoch: int = 0
    best_metric: float = -math.inf
    epochs: int = 0
    steps: int = 0
    stopped: str = "max_epochs"
    """`max_epochs`, `early_stopping` or `time_budget`."""
    seconds: float = 0.0
    resumed_from_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    """Per epoch: epoch, loss, validation NDCG@10, seconds."""

    def summary(self) -> dict[str, Any]:
        """JSON data for reports (per-epoch history included)."""
        trained = [h["seconds"] for h in self.history if h["epoch"] > self.resumed_from_epoch]
        return {
            "best_epoch": self.best_epoch,
            "best_val_ndcg@10": round(self.best_metric, 5),
            "epochs": self.epochs,
            "steps": self.steps,
            "stopped": self.stopped,
            "train_seconds": round(self.seconds, 2),
            "seconds_per_epoch": round(sum(trained) / len(trained), 2) if trained else 0.0,
            "resumed_from_epoch": self.resumed_from_epoch,
            "history": self.history,
        }


def world() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless a process group is initialized."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _collective_device() -> torch.device:
    """Where collective tensors go: the GPU under NCCL alone, else the CPU (gloo)."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The element-wise sum of an integer array over all processes (itself in one)."""
    if world()[1] == 1:
        return values
    t = torch.from_numpy(np.ascontiguousarray(values, dtype=np.int64)).to(_collective_device())
    dist.all_reduce(t)
    return np.asarray(t.cpu().numpy(), dtype=np.int64)


def all_reduce_floats(values: Sequence[float], op: str = "sum") -> list[float]:
    """Floats reduced over all processes element-wise (`sum` or `max`), as float64."""
    if world()[1] == 1:
        return [float(v) for v in values]
    t = torch.tensor(list(values), dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t, dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM)
    return [float(v) for v in t.cpu()]


def _agreed_steps(local: int, sharded: bool) -> int:
    """This epoch's steps: the batches of one process replicated, the most of any sharded.

    Raises:
        ConfigError: sharded, and some process has no batch at all.
    """
    if not sharded or world()[1] == 1:
        return local
    most, fewest = all_reduce_floats([local, -local], "max")
    if -fewest < 1:
        from shopkeeper.errors import ConfigError

        raise ConfigError("a process has no training batches; shard the users more evenly")
    return int(most)


def _out_of_time(start: float, budget: float | None) -> bool:
    """Whether any process has used up the time budget (all stop at the same step)."""
    if budget is None:
        return False
    mine = _clock() - start > budget
    return all_reduce_floats([float(mine)], "max")[0] > 0


def _schedule(cfg: TrainerConfig, total_steps: int) -> Callable[[int], float]:
    warmup = int(cfg.warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress_ = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress_))

    return factor


def _shard(batch: Batch, rank: int, size: int) -> Batch:
    return tuple(t.tensor_split(size)[rank] for t in batch)


def _copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train(
    model: nn.Module,
    batches: Callable[[int], Sequence[Batch]],
    loss_fn: Callable[[nn.Module, Batch], tuple[torch.Tensor, torch.Tensor]],
    validate: Callable[[nn.Module], float],
    cfg: TrainerConfig,
    *,
    time_budget_s: float | None = None,
    checkpoint_dir: Path | None = None,
    fingerprint: str = "",
    device: torch.device | None = None,
    lr_scale: Callable[[str], float] | None = None,
    sharded: bool = False,
) -> TrainResult:
    """Train `model` in place and leave it at its best validated state.

    Args:
        model: The network (already on `device`).
        batches: Epoch number -> that epoch's global batches (deterministic per epoch);
            sharded, this process's own batches.
        loss_fn: (model, batch) -> (summed loss, number of terms in the sum).
        validate: Model -> validation NDCG@10 (higher is better); run once per epoch,
            on every process, and the same on each (sharded: reduced over processes).
        cfg: Optimization settings.
        time_budget_s: Stop when this many seconds have passed, keeping the best state.
        checkpoint_dir: Resume from `last.pt` there when its fingerprint matches, and write
            it after every epoch (the first process of each machine writes).
        fingerprint: Names the data and config; a checkpoint with another is ignored.
        device: Where the batches go (default: the model's device).
        lr_scale: Parameter name -> factor on the learning rate (e.g. small for a
            pre-trained encoder being fine-tuned); frozen parameters are left out.
        sharded: Each process's `batches` hold only its own data (no share is taken).
    """
    rank, size = world()
    device = device or next(model.parameters()).device
    steps_per_epoch = max(1, _agreed_steps(len(batches(0)), sharded))
    total = steps_per_epoch * cfg.max_epochs
    opt = _optimizer(model, cfg, lr_scale)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg, total))
    result = TrainResult()
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs = 0
    path = checkpoint_dir / "last.pt" if checkpoint_dir is not None else None
    ckpt = _agreed_checkpoint(path, fingerprint, cfg.max_epochs, device)
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        best_state, bad_epochs = ckpt["best_state"], int(ckpt["bad_epochs"])
        result.best_metric, result.best_epoch = ckpt["best_metric"], ckpt["best_epoch"]
        result.history, result.steps = list(ckpt["history"]), int(ckpt["steps"])
        result.epochs = result.resumed_from_epoch = int(ckpt["epoch"])
        _log.info("resumed", checkpoint=str(path), epoch=result.epochs)
    net: nn.Module = model
    if size > 1:
        net = torch.nn.parallel.DistributedDataParallel(model)
    autocast = cfg.precision == "bf16"
    start = _clock()
    out_of_time = False
    with progress("Training", total=total) as pb:
        pb.update(result.steps)
        for epoch in range(result.epochs + 1, cfg.max_epochs + 1):
            epoch_start = time.perf_counter()
            torch.manual_seed(cfg.seed * 1_000_003 + epoch)
            net.train()
            loss_sum, loss_n = 0.0, 0.0
            mine = batches(epoch)
            for step in range(_agreed_steps(len(mine), sharded)):
                batch = tuple(t.to(device) for t in mine[step % len(mine)])
                local = batch if sharded else _shard(batch, rank, size)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                    summed, count = loss_fn(net, local)
                n = count.detach().to(torch.float32)
                if size > 1:
                    dist.all_reduce(n)
                loss = summed.float() * size / n.clamp(min=1)
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                sched.step()
                result.steps += 1
                loss_sum += float(summed.detach())  # this process's share
                loss_n += float(n)  # all processes
                pb.update(1)
                if _out_of_time(start, time_budget_s):
                    out_of_time = True
                    break
            loss_sum = all_reduce_floats([loss_sum])[0]
            model.eval()
            with torch.inference_mode():
                metric = validate(model)
            result.epochs = epoch
            entry = {
                "epoch": epoch,
                "loss": round(loss_sum / max(loss_n, 1.0), 5),
                "val_ndcg@10": round(metric, 5),
                "seconds": round(time.perf_counter() - epoch_start, 3),
                "lr": float(sched.get_last_lr()[0]),
            }
            result.history.append(entry)
            pb.update(
                0,
                description=f"Training: epoch {epoch}, loss {entry['loss']:.3f}, "
                f"val NDCG@10 {metric:.4f}",
            )
            _log.info("epoch", **entry)
            if metric > result.best_metric:
                result.best_metric, result.best_epoch = metric, epoch
                best_state, bad_epochs = _copy_state(model), 0
            else:
                bad_epochs += 1
            if path is not None and int(os.environ.get("LOCAL_RANK", "0")) == 0:
                state = {
                    "fingerprint": fingerprint,
                    "epoch": epoch,
                    "steps": result.steps,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "best_state": best_state,
                    "best_metric": result.best_metric,
                    "best_epoch": result.best_epoch,
                    "bad_epochs": bad_epochs,
                    "history": result.history,
                }
                _write_checkpoint(path, state, rank)
            if out_of_time:
                result.stopped = "time_budget"
                break
            if cfg.patience and bad_epochs >= cfg.patience:
                result.stopped = "early_stopping"
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    result.seconds = _clock() - start
    if size > 1:
        # DDP's reducer holds the process group inside reference cycles: left to the
        # collector, the group can outlive destroy_process_group into interpreter exit,
        # where a gloo thread freeing its last work aborts the process (exit -6).
        del net
        gc.collect()
    return result


def _optimizer(
    model: nn.Module, cfg: TrainerConfig, lr_scale: Callable[[str], float] | None
) -> torch.optim.AdamW:
    """AdamW with decay on matrices only, one group per (decays, learning-rate factor)."""
    groups: dict[tuple[bool, float], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            decays = p.ndim >= 2 and "norm" not in name and "LayerNorm" not in name
            scale = lr_scale(name) if lr_scale is not None else 1.0
            groups.setdefault((decays, scale), []).append(p)
    return torch.optim.AdamW(
        [
            {"params": ps, "lr": cfg.lr * scale, "weight_decay": cfg.weight_decay * decays}
            for (decays, scale), ps in groups.items()
        ],
        lr=cfg.lr,
    )


def _agreed_checkpoint(
    path: Path | None, fingerprint: str, max_epochs: int, device: torch.device
) -> dict[str, Any] | None:
    """The checkpoint to resume from: one every process has, at the same epoch, or None.

    On several machines without shared storage only some may find one; then none
    resumes, rather than some resuming and the others starting afresh.
    """
    ckpt: dict[str, Any] | None = None
    if path is not None and path.exists():
        found = torch.load(path, map_location=device, weights_only=True)
        if found.get("fingerprint") == fingerprint and found["epoch"] < max_epochs:
            ckpt = found
    epoch = -1 if ckpt is None else int(ckpt["epoch"])
    most, fewest = all_reduce_floats([epoch, -epoch], "max")
    if most != -fewest:
        _log.warning("not resuming: the processes hold different checkpoints", epoch=epoch)
        return None
    return ckpt


def _write_checkpoint(path: Path, state: dict[str, Any], rank: int) -> None:
    """Write `path` atomically (a temporary file per process: storage may be shared)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{rank}")
    torch.save(state, tmp)
    tmp.replace(path)
