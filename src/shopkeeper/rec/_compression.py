"""Compression trade-offs: a fitted model beside its compressed copies, measured alike.

A variant is named by its steps joined with `+`: `int8` (dynamic int8 quantization of
the linear layers), `pruneNN` (global magnitude pruning of NN% of the linear weights),
e.g. `prune50+int8`, and `noprior` (the network without its co-occurrence prior: the
ablation that shows what the prior adds, in accuracy and in time). Each variant is a
copy of the fitted model compressed without retraining; it is evaluated under the
caller's protocol, on the same users and targets as the full model, and its scoring is
timed the same way as the full model's: the same histories, one warm-up call each, then
rounds in which every variant is called once in turn, in alternating order (so a change
in machine load falls on all of them alike), reporting the median. Timing uses one torch
thread by default, as each serving worker scores when workers share the cores; with two
threads on a busy 2-core machine, calls that wait on a descheduled thread swung from 2
to 150 ms.
"""

from __future__ import annotations

import contextlib
import re
import statistics
import time
from typing import TYPE_CHECKING, Any, Protocol, Self, runtime_checkable

from shopkeeper.errors import ConfigError
from shopkeeper.logging import Stopwatch, get_logger
from shopkeeper.rec._protocol import evaluate_scorer

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import numpy as np
    import numpy.typing as npt

    from shopkeeper.rec._data import Histories
    from shopkeeper.rec._protocol import EvalConfig
    from shopkeeper.rec._scorer import RecScorer
    from shopkeeper.rec._splits import Split

_log = get_logger(__name__)

FULL = "full"
"""The name of the uncompressed model in the section."""
BATCH_USERS = 256
"""Users per timed scoring call (the batch); a single user is timed too."""
REPEATS = 5
"""Timed rounds per variant; the median is reported."""
THREADS = 1
"""Torch threads while timing (None: leave the process's setting)."""

_STEP = re.compile(r"int8|noprior|prune(\d{1,2})")


@runtime_checkable
class CompressibleScorer(Protocol):
    """A fitted scorer that can hand out compressed copies of itself (SASRec)."""

    def compressed(
        self, *, prune: float | None = None, quantize: str | None = None, prior: bool = True
    ) -> Self:
        """A copy, pruned and/or int8-quantized (and/or without its prior), not retrained."""
        ...

    def weight_stats(self) -> dict[str, int]:
        """Parameter counts, nonzero weights and the scoring network's size in bytes."""
        ...


def parse_compression(name: str) -> dict[str, Any]:
    """The `compressed()` arguments of a variant name.

    >>> parse_compression("int8"), parse_compression("prune50+int8")
    ({'quantize': 'int8'}, {'prune': 0.5, 'quantize': 'int8'})
    >>> parse_compression("noprior")
    {'prior': False}

    Raises:
        ConfigError: not `int8`, `pruneNN` (1 to 99), `noprior` or a `+` of those.
    """
    out: dict[str, Any] = {}
    for step in name.strip().split("+"):
        m = _STEP.fullmatch(step.strip())
        if m is None or (m.group(1) is not None and int(m.group(1)) == 0):
            raise ConfigError(
                f"unknown compression {name!r}: use int8, pruneNN (NN% of the linear "
                "weights, 1-99), noprior (no co-occurrence prior) or several joined by "
                "'+', e.g. prune50+int8"
            )
        if m.group(0) == "noprior":
            out["prior"] = False
        elif m.group(1) is None:
            out["quantize"] = "int8"
        else:
            out["prune"] = int(m.group(1)) / 100
    return out


def parse_compressions(text: str) -> list[str]:
    """Variant names from a comma-separated list; `none` (or nothing) is none.

    >>> parse_compressions("int8, prune50"), parse_compressions("none")
    (['int8', 'prune50'], [])

    Raises:
        ConfigError: a name `parse_compression` does not know.
    """
    names = [n.strip() for n in text.split(",") if n.strip()]
    if names in ([], ["none"]):
        return []
    for n in names:
        parse_compression(n)
    return list(dict.fromkeys(names))


def variant_model(model: str, variant: str) -> str:
    """The `model` column of a variant's rows in `metrics.parquet`, e.g. `sasrec:int8`."""
    return f"{model}:{variant}"


def evaluate_compression(
    base: RecScorer[Any],
    base_metrics: dict[str, dict[str, float]],
    variants: Sequence[str],
    split: Split,
    cfg: EvalConfig,
    users: npt.NDArray[np.int64],
    targets: Histories,
    *,
    batch_users: int = BATCH_USERS,
    repeats: int = REPEATS,
    threads: int | None = THREADS,
) -> dict[str, Any]:
    """The report's compression section: `base` and each variant, metrics and latency.

    Args:
        base: The fitted model (a `CompressibleScorer`).
        base_metrics: Its metrics under this protocol (not computed again).
        variants: Variant names (see `parse_compression`).
        split: The protocol's split.
        cfg: The protocol.
        users: The evaluated users (the same for every variant).
        targets: Their held-out items.
        batch_users: Users per timed batch (the first evaluated users).
        repeats: Timed rounds; the median is reported.
        threads: Torch threads while timing (None: as set in the process).

    Returns:
        `{"model", "latency": {how it was timed}, "variants": [{"variant", "prune",
        "quantize", "metrics", "change", "weights", "latency_ms", "latency_change"}]}`,
        the full model first; `change` is relative to it, `(variant - full) / full`.

    Raises:
        ConfigError: `base` cannot be compressed, or a variant name is unknown.
    """
    if not isinstance(base, CompressibleScorer):
        raise ConfigError(f"the {base.name} scorer cannot be compressed")
    models: dict[str, Any] = {FULL: base}
    metrics = {FULL: base_metrics}
    eval_seconds: dict[str, float | None] = {FULL: None}
    for name in dict.fromkeys(variants):
        if name == FULL:
            continue
        model = base.compressed(**parse_compression(name))
        timer = Stopwatch()
        metrics[name] = evaluate_scorer(model, split, cfg, users, targets)
        eval_seconds[name] = round(timer.seconds, 3)
        models[name] = model
    n = min(batch_users, len(users))
    with _torch_threads(threads) as used:
        batch, single = split.train.rows(users[:n]), split.train.rows(users[:1])
        latency = _latencies(models, batch, single, repeats)
    rows = []
    for name, model in models.items():
        cfg_of = model.cfg
        rows.append(
            {
                "variant": name,
                "model": variant_model(base.name, name) if name != FULL else base.name,
                "prune": getattr(cfg_of, "prune", None),
                "quantize": getattr(cfg_of, "quantize", None),
                "metrics": metrics[name],
                "change": _change(metrics[name]["all"], base_metrics["all"]),
                "weights": model.weight_stats(),
                "latency_ms": latency.get(name),
                "latency_change": _change(latency.get(name) or {}, latency.get(FULL) or {}),
                "eval_seconds": eval_seconds[name],
            }
        )
    _log.info("compared compressed models", model=base.name, variants=list(models))
    return {
        "model": base.name,
        "latency": {
            "what": "RecScorer.score (dense scores over the full catalog) on the training "
            "histories of the first evaluated users, after one warm-up call; every variant "
            "called once per round, in turn, the order reversed every other round",
            "batch_users": n,
            "repeats": repeats,
            "statistic": "median",
            "threads": used,
        },
        "variants": rows,
    }


def _latencies(
    models: dict[str, Any], batch: Histories, single: Histories, repeats: int
) -> dict[str, dict[str, float]]:
    """Median milliseconds of a batch call, per user of it, and of a one-user call."""
    if batch.n_users == 0:
        return {}
    for m in models.values():  # the first call pays one-off set-up (allocations, kernels)
        m.score(batch)
        m.score(single)
    times: dict[str, dict[str, list[float]]] = {n: {"b": [], "s": []} for n in models}
    for r in range(repeats):
        for name in list(models)[:: 1 if r % 2 == 0 else -1]:
            m = models[name]
            for kind, h in (("b", batch), ("s", single)):
                t0 = time.perf_counter()
                m.score(h)
                times[name][kind].append(time.perf_counter() - t0)
    out = {}
    for name, t in times.items():
        b, s = statistics.median(t["b"]) * 1000, statistics.median(t["s"]) * 1000
        out[name] = {
            "batch": round(b, 3),
            "per_user": round(b / batch.n_users, 4),
            "single_user": round(s, 3),
        }
    return out


def _change(values: dict[str, float], base: dict[str, float]) -> dict[str, float | None]:
    """Relative change of each figure against `base` (None where `base` is 0)."""
    return {
        k: round((v - base[k]) / base[k], 4) if base.get(k) else None
        for k, v in values.items()
        if k != "users" and k in base
    }


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[int | None]:
    """Torch's intra-op threads set to `n` inside (restored after); yields those in use."""
    try:
        import torch
    except ImportError:  # the compressible models are torch networks; nothing to set
        yield None
        return
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield int(torch.get_num_threads())
    finally:
        torch.set_num_threads(before)
