"""A PyTorch training loop for recommenders: AdamW, warm-up and decay, early stopping.

Validation NDCG@10 picks the best epoch; training stops after `patience` epochs without
a gain, at `max_epochs`, or when the time budget runs out (then the best checkpoint so
far is kept). Each epoch ends with a resumable checkpoint. Under `torchrun` (a process
group initialized) the model is wrapped in DistributedDataParallel: every process takes
its share of each global batch and the loss is normalized by the global count, so the
gradients, and so the result, match one process training on the whole batch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveInt

from shopkeeper.logging import get_logger, progress

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from torch import nn

_log = get_logger(__name__)

Batch = tuple[torch.Tensor, ...]
Precision = Literal["fp32", "bf16"]


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
) -> TrainResult:
    """Train `model` in place and leave it at its best validated state.

    Args:
        model: The network (already on `device`).
        batches: Epoch number -> that epoch's global batches (deterministic per epoch).
        loss_fn: (model, batch) -> (summed loss, number of terms in the sum).
        validate: Model -> validation NDCG@10 (higher is better); run once per epoch.
        cfg: Optimization settings.
        time_budget_s: Stop when this many seconds have passed, keeping the best state.
        checkpoint_dir: Resume from `last.pt` there when its fingerprint matches, and write
            it after every epoch (only the first process writes).
        fingerprint: Names the data and config; a checkpoint with another is ignored.
        device: Where the batches go (default: the model's device).
        lr_scale: Parameter name -> factor on the learning rate (e.g. small for a
            pre-trained encoder being fine-tuned); frozen parameters are left out.
    """
    rank, size = world()
    device = device or next(model.parameters()).device
    steps_per_epoch = max(1, len(batches(0)))
    total = steps_per_epoch * cfg.max_epochs
    groups: dict[tuple[bool, float], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            decays = p.ndim >= 2 and "norm" not in name and "LayerNorm" not in name
            scale = lr_scale(name) if lr_scale is not None else 1.0
            groups.setdefault((decays, scale), []).append(p)
    opt = torch.optim.AdamW(
        [
            {"params": ps, "lr": cfg.lr * scale, "weight_decay": cfg.weight_decay * decays}
            for (decays, scale), ps in groups.items()
        ],
        lr=cfg.lr,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg, total))
    result = TrainResult()
    best_state: dict[str, torch.Tensor] | None = None
    bad_epochs = 0
    path = checkpoint_dir / "last.pt" if checkpoint_dir is not None else None
    if path is not None and path.exists():
        ckpt = torch.load(path, map_location=device, weights_only=True)
        if ckpt.get("fingerprint") == fingerprint and ckpt["epoch"] < cfg.max_epochs:
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
    start = time.perf_counter()
    out_of_time = False
    with progress("Training", total=total) as pb:
        pb.update(result.steps)
        for epoch in range(result.epochs + 1, cfg.max_epochs + 1):
            epoch_start = time.perf_counter()
            torch.manual_seed(cfg.seed * 1_000_003 + epoch)
            net.train()
            loss_sum, loss_n = 0.0, 0.0
            for batch in batches(epoch):
                local = _shard(tuple(t.to(device) for t in batch), rank, size)
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
                if time_budget_s is not None and time.perf_counter() - start > time_budget_s:
                    out_of_time = True
                    break
            if size > 1:
                summed_all = torch.tensor([loss_sum])
                dist.all_reduce(summed_all)
                loss_sum = float(summed_all)
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
            if path is not None and rank == 0:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                torch.save(
                    {
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
                    },
                    tmp,
                )
                tmp.replace(path)
            if out_of_time:
                result.stopped = "time_budget"
                break
            if cfg.patience and bad_epochs >= cfg.patience:
                result.stopped = "early_stopping"
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - start
    return result
