"""The fine-tuning loop that the ranker and the bi-encoder share.

BERT fine-tuning practice: AdamW (no decay on biases and LayerNorm) with linear warm-up
and decay, gradient clipping, validation every `eval_every` steps and at the end of each
epoch, early stopping after `patience` validations without improvement, a time budget
that stops with the best weights so far. Only the batches and their loss differ.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np

from shopkeeper.features._encoder import require_ml
from shopkeeper.logging import progress

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from shopkeeper.logging import Stopwatch

B = TypeVar("B")


class LoopConfig(Protocol):
    """The fields of `RankerConfig` and `BiEncoderConfig` the loop reads."""

    epochs: int
    learning_rate: float
    weight_decay: float
    warmup: float
    max_grad_norm: float
    eval_every: int
    patience: int
    keep_best: bool
    seed: int


@dataclass
class Fitted:
    """How a fine-tuning run went."""

    steps: int
    steps_planned: int
    best_step: int
    stopped: str
    start: float
    """Validation score before the first step."""
    best: float
    best_notes: dict[str, Any]
    """What `notes` said at the best validation (e.g. the ranker's blend)."""
    history: list[dict[str, Any]]

    def summary(self) -> dict[str, Any]:
        """Steps done and planned, the best step, why it stopped."""
        stopped = self.stopped or "epochs done"
        return {
            "steps": self.steps,
            "steps_planned": self.steps_planned,
            "best_step": self.best_step,
            "stopped": stopped,
        }


def fine_tune_optimizer(
    model: Any, learning_rate: float, weight_decay: float, warmup: float, total: int
) -> tuple[Any, Any]:
    """AdamW (no decay on biases and LayerNorm) with linear warm-up over the `warmup`
    share of `total` steps, then linear decay."""
    torch = require_ml("torch")
    named = list(model.named_parameters())
    plain = [p for n, p in named if n.endswith("bias") or "LayerNorm" in n]
    decayed = [p for n, p in named if not (n.endswith("bias") or "LayerNorm" in n)]
    opt = torch.optim.AdamW(
        [
            {"params": decayed, "weight_decay": weight_decay},
            {"params": plain, "weight_decay": 0.0},
        ],
        lr=learning_rate,
    )
    warm = max(1, int(warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm)))
    )
    return opt, sched


class _Tracker:
    """Validation history, the best weights so far and the early-stopping count."""

    def __init__(
        self,
        module: Any,
        validate: Callable[[], float],
        notes: Callable[[], dict[str, Any]],
        patience: int,
    ) -> None:
        self.module, self.validate, self.notes, self.patience = module, validate, notes, patience
        self.best = self.start = validate()
        self.best_notes = notes()
        self.best_state = copy.deepcopy(module.state_dict())
        self.best_step, self.stale = 0, 0
        self.history = [self._row(0, 0, None, self.best, 0.0)]

    def _row(
        self, step: int, epoch: int, loss: float | None, val: float, seconds: float
    ) -> dict[str, Any]:
        return {
            "step": step,
            "epoch": epoch,
            "loss": None if loss is None else round(loss, 4),
            "val_ndcg": round(val, 4),
            **self.notes(),
            "seconds": round(seconds, 1),
        }

    def check(self, step: int, epoch: int, loss: float, seconds: float) -> bool:
        """Validate now; True when early stopping says stop."""
        val = self.validate()
        self.module.train()
        self.history.append(self._row(step, epoch, loss, val, seconds))
        if val > self.best:
            self.best, self.best_step, self.stale = val, step, 0
            self.best_notes = self.notes()
            self.best_state = copy.deepcopy(self.module.state_dict())
        else:
            self.stale += 1
        return bool(self.patience) and self.stale >= self.patience


def fine_tune(
    module: Any,
    cfg: LoopConfig,
    steps_per_epoch: int,
    batches: Callable[[np.random.Generator], Sequence[B]],
    loss_of: Callable[[B], Any],
    validate: Callable[[], float],
    budget_s: float | None,
    timer: Stopwatch,
    label: str,
    notes: Callable[[], dict[str, Any]] = dict,
) -> Fitted:
    """Train `module` on `batches(rng)` each epoch (`steps_per_epoch` of them), minimizing
    `loss_of(batch)`; leaves the best weights in it (the last with `keep_best=False`)."""
    torch = require_ml("torch")
    total = steps_per_epoch * cfg.epochs
    opt, sched = fine_tune_optimizer(module, cfg.learning_rate, cfg.weight_decay, cfg.warmup, total)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)
    track = _Tracker(module, validate, notes, cfg.patience)
    step, stop, losses = 0, "", []
    with progress(f"training the {label}", total=total) as bar:
        for epoch in range(1, cfg.epochs + 1):
            epoch_batches = batches(rng)
            module.train()
            for b, batch in enumerate(epoch_batches):
                loss = loss_of(batch)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(module.parameters(), cfg.max_grad_norm)
                opt.step()
                sched.step()
                opt.zero_grad(set_to_none=True)
                step += 1
                losses.append(loss.item())
                bar.update()
                over = budget_s is not None and timer.seconds >= budget_s
                if step % cfg.eval_every == 0 or b == len(epoch_batches) - 1 or over:
                    recent = float(np.mean(losses[-cfg.eval_every :]))
                    if track.check(step, epoch, recent, timer.seconds):
                        stop = "early stopping"
                    if over:
                        stop = "time budget"
                    bar.update(0, f"{label}: loss {recent:.3f}, val nDCG@10 {track.best:.4f}")
                if stop:
                    break
            if stop:
                break
    if cfg.keep_best:
        module.load_state_dict(track.best_state)
    module.eval()
    return Fitted(
        step,
        total,
        track.best_step,
        stop,
        track.start,
        track.best,
        track.best_notes,
        track.history,
    )
