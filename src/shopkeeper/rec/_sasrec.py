"""The main recommender: a text-aware SASRec fitted with the shared trainer.

Each user's training items, oldest first, become right-aligned windows of `max_len`
(inputs) and the same items shifted by one (next-item targets). The last training item
of each user is held out for validation (NDCG@10 over the full catalog, seen items
excluded), which picks the epoch. Item representations come from the language-model
text embeddings through a learned adaptation layer plus an ID embedding (see
`_sasrec_net`), so items without text fall back to their ID and new items with text
rank by text. After training, optional magnitude pruning and int8 dynamic quantization
compress the network for scoring.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import warnings
from pathlib import Path  # noqa: TC003 (pydantic reads the annotation at run time)
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
import torch
import torch.distributed as dist
from pydantic import Field, NonNegativeInt, PositiveFloat, PositiveInt, model_validator
from torch import nn

from shopkeeper.errors import ConfigError
from shopkeeper.logging import get_logger
from shopkeeper.rec._cooccurrence import (
    BLEND_WEIGHTS,
    CooccurrencePrior,
    blend,
    blend_ndcg_sums,
    gram,
    kept_items,
)
from shopkeeper.rec._data import _mix64
from shopkeeper.rec._protocol import EvalConfig, batch_rows
from shopkeeper.rec._sasrec_net import SASRecNet
from shopkeeper.rec._scorer import RecScorer
from shopkeeper.rec._text_tower import TextTower, TunedSASRec
from shopkeeper.rec._trainer import (
    Batch,
    TrainerConfig,
    all_reduce_floats,
    all_reduce_sum,
    train,
    world,
)

if TYPE_CHECKING:
    import numpy.typing as npt

    from shopkeeper.rec._data import Histories
    from shopkeeper.rec._scorer import TrainingData
    from shopkeeper.rec._shards import Shard

_log = get_logger(__name__)


class SASRecConfig(TrainerConfig):
    """Network shape, training and compression of the text-aware SASRec.

    The defaults are the settings of `benchmarks/rec.py` (on Online Retail: about 15 s an
    epoch on 2 CPU cores, best validation NDCG@10 near the 30th epoch).
    """

    lr: float = Field(default=2e-3, gt=0)
    """Peak learning rate of AdamW."""
    max_epochs: PositiveInt = 30
    """Epochs at most."""

    dim: PositiveInt = 64
    """Width of item representations and of the encoder."""
    layers: PositiveInt = 2
    """Transformer blocks."""
    heads: PositiveInt = 2
    """Attention heads (must divide `dim`)."""
    max_len: PositiveInt = 50
    """Items of history the model reads (the most recent)."""
    dropout: float = Field(default=0.2, ge=0, lt=1)
    """Dropout on embeddings, attention and feed-forward layers."""
    use_text: bool = True
    """Item representations from the text embeddings (when the data has them)."""
    use_id: bool = True
    """Add a learned ID embedding (zero for items without training interactions)."""
    use_attributes: Literal["auto", "always", "never"] = "auto"
    """Add learned embeddings of the items' catalogue codes (brand, category levels, price
    decile from `item_features`) when the data has them: `auto` only when the model has
    no item text (with text they changed nothing measurable: Online Retail seed-0 test
    NDCG@10 0.0989 with the price decile, 0.0987 without)."""
    mask_seen: bool = True
    """Leave the items a window already holds out of each position's softmax (they are
    never next when a user's items are distinct, and the protocol never ranks them)."""
    shuffle_baskets: bool = True
    """Each epoch, reorder each user's same-time items (one invoice, whose order the data
    does not know) at random, so any item of a basket can be the next one."""
    batch_size: PositiveInt = 128
    """Windows per optimizer step (across all processes)."""
    full_softmax_max_items: PositiveInt = 20_000
    """Above this many items, a sampled softmax with logQ correction replaces the full one."""
    negatives: PositiveInt = 2048
    """Sampled softmax: items sampled per step, by training popularity."""
    val_users: NonNegativeInt = 5000
    """Validate on at most this many users (seeded sample)."""
    cooccurrence: Literal["auto", "off"] = "auto"
    """`auto`: after training, add an EASE item-item model's scores (fitted on the same
    training items) with the weight among `BLEND_WEIGHTS` that maximises validation
    NDCG@10, none when no weight helps; `off`: the sequence model alone. On basket data
    (Online Retail) which items go together is what EASE knows best."""
    cooccurrence_l2: PositiveFloat = 500.0
    """L2 regularization of the EASE item-item model (as the `ease` baseline's)."""
    cooccurrence_max_items: PositiveInt = 15_000
    """The item-item model covers at most this many (most popular) items: its dense
    inverse and stored matrix grow with the square of the catalog."""
    prune: float = Field(default=0.0, ge=0, lt=1)
    """Share of the encoder's and adapter's linear weights zeroed by magnitude after training."""
    quantize: Literal["none", "int8"] = "none"
    """`int8`: dynamic int8 quantization of the encoder's linear layers for scoring."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """`auto`: a GPU when present."""
    finetune_text: bool = False
    """Fine-tune the language model itself as the item tower, end to end (needs item
    texts; the text vectors start from the model rather than the stored embeddings)."""
    text_model_path: Path | None = None
    """The sentence-transformers folder to fine-tune (default: the packaged MiniLM)."""
    text_lr: float = Field(default=2e-5, gt=0)
    """Peak learning rate of the language model's layers (BERT practice: 1e-5 to 5e-5)."""
    text_trainable_layers: NonNegativeInt = 2
    """Top transformer layers of the language model that train (the rest stay frozen)."""
    text_max_candidates: PositiveInt = 256
    """Target items per step encoded afresh, with gradients, by the language model."""
    text_max_tokens: PositiveInt = 48
    """Tokens of item text the language model reads."""

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> SASRecConfig:
        if self.dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide dim ({self.dim})")
        if self.finetune_text and not self.use_text:
            raise ValueError("finetune_text needs use_text")
        return self


def windows(
    h: Histories, max_len: int, pad: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Right-aligned (inputs, targets) windows of every row: item t predicts item t+1.

    Rows longer than `max_len + 1` give several windows, the most recent one first; the
    pad value fills inputs and -1 fills targets where a window is short.

    >>> from shopkeeper.rec._data import Histories
    >>> x, y = windows(Histories.from_lists([[1, 2, 3], [4]], 5), 4, pad=5)
    >>> x.tolist(), y.tolist()
    ([[5, 5, 1, 2]], [[-1, -1, 2, 3]])
    """
    lengths = h.lengths
    pairs = np.maximum(lengths - 1, 0)
    n_windows = -(-pairs // max_len)
    first = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(n_windows, out=first[1:])
    user = np.repeat(np.arange(len(lengths)), pairs)
    j = np.arange(int(pairs.sum())) - np.repeat(np.cumsum(pairs) - pairs, pairs)
    rev = pairs[user] - 1 - j
    win = first[user] + rev // max_len
    slot = max_len - 1 - rev % max_len
    start = h.indptr[user] + j
    x = np.full((int(first[-1]), max_len), pad, dtype=np.int64)
    y = np.full((int(first[-1]), max_len), -1, dtype=np.int64)
    x[win, slot] = h.items[start]
    y[win, slot] = h.items[start + 1]
    return x, y


def bucketed(
    lengths: npt.NDArray[np.int64], batch_size: int, rng: np.random.Generator, pool: int = 50
) -> list[torch.Tensor]:
    """Shuffled batches of window indices, each drawn from windows of similar length.

    Windows are shuffled, cut into pools of `pool` batches, sorted by length within a
    pool and batched; the batches are shuffled again. Padding columns shared by a whole
    batch are then trimmed off, so short histories cost what they hold.
    """
    order = rng.permutation(len(lengths))
    out: list[torch.Tensor] = []
    step = batch_size * pool
    for s in range(0, len(order), step):
        chunk = order[s : s + step]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        out += [
            torch.from_numpy(chunk[b : b + batch_size]) for b in range(0, len(chunk), batch_size)
        ]
    return [out[i] for i in rng.permutation(len(out))]


def last_window(h: Histories, max_len: int, pad: int) -> npt.NDArray[np.int64]:
    """Each row's last `max_len` items, right-aligned and left-padded with `pad`."""
    lengths = np.minimum(h.lengths, max_len)
    out = np.full((h.n_users, max_len), pad, dtype=np.int64)
    user = np.repeat(np.arange(h.n_users), lengths)
    k = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    src = h.indptr[1:][user] - lengths[user] + k
    out[user, max_len - lengths[user] + k] = h.items[src]
    return out


def _drop_last(h: Histories, users: npt.NDArray[np.int64]) -> Histories:
    """`h` without the last item of each row in `users`."""
    keep = np.ones(len(h.items), dtype=bool)
    keep[h.indptr[users + 1] - 1] = False
    lengths = h.lengths.copy()
    lengths[users] -= 1
    indptr = np.zeros(h.n_users + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return type(h)(indptr, h.items[keep], h.n_items, None if h.ts is None else h.ts[keep])


def shuffle_same_time(h: Histories, rng: np.random.Generator) -> Histories:
    """`h` with each user's same-time items (one basket) in a new random order.

    >>> from shopkeeper.rec._data import Histories
    >>> h = Histories(np.array([0, 4]), np.array([1, 2, 3, 4]), 5, np.array([1, 2, 2, 3]))
    >>> out = shuffle_same_time(h, np.random.default_rng(1)).items.tolist()
    >>> out[0], sorted(out[1:3]), out[3]
    (1, [2, 3], 4)
    """
    if h.ts is None:
        return h
    order = np.lexsort((rng.random(len(h.items)), h.ts, h.user_of))
    return type(h)(h.indptr, h.items[order], h.n_items, h.ts[order])


class SASRecScorer(RecScorer[SASRecConfig]):
    """Self-attentive sequential recommender over text-aware item representations."""

    name = "sasrec"
    config_cls = SASRecConfig
    uses_item_vectors = True
    uses_item_attributes = True
    trains_on_shards = True
    _prior: CooccurrencePrior | None = None
    """The co-occurrence model blended into the scores (None: the network alone)."""
    _prior_weight: float = 0.0

    @property
    def wants_item_texts(self) -> bool:
        """Item texts are needed to fine-tune the language model."""
        return self.cfg.finetune_text

    def _device(self) -> torch.device:
        if self.cfg.device == "cuda" or (self.cfg.device == "auto" and torch.cuda.is_available()):
            return torch.device("cuda")
        return torch.device("cpu")

    def _build(
        self, text: npt.NDArray[np.float32] | None, attrs: npt.NDArray[np.int64] | None
    ) -> SASRecNet:
        if text is None and not self.cfg.use_id and attrs is None:
            raise ConfigError("sasrec with use_id=false needs item texts or attributes")
        torch.manual_seed(self.cfg.seed)
        c = self.cfg
        return SASRecNet(
            torch.from_numpy(np.ascontiguousarray(text)) if text is not None else None,
            self.n_items,
            dim=c.dim,
            layers=c.layers,
            heads=c.heads,
            max_len=c.max_len,
            dropout=c.dropout,
            use_id=c.use_id,
            mask_seen=c.mask_seen,
            attrs=torch.from_numpy(np.ascontiguousarray(attrs)) if attrs is not None else None,
        )

    def _fit(self, data: TrainingData) -> None:
        c, h, shard = self.cfg, data.histories, data.shard
        text = data.item_vectors if c.use_text else None
        if text is not None and not (np.linalg.norm(text, axis=1) > 0).any():
            text = None
        tower = self._tower(data) if c.finetune_text else None
        if tower is not None:
            text = tower.encode_all().numpy()
        wanted = c.use_attributes == "always" or (c.use_attributes == "auto" and text is None)
        attrs = data.item_attributes if wanted else None
        if attrs is not None and not attrs.any():
            attrs = None
        device = self._device()
        net = self._build(text, attrs)
        counts = np.bincount(h.items, minlength=self.n_items)
        if shard is not None:  # every process builds the same id mask and logQ
            counts = all_reduce_sum(counts)
        net.items.id_mask.copy_(torch.from_numpy(counts > 0).float()[:, None])
        model: nn.Module = net if tower is None else TunedSASRec(net, tower, c.text_max_candidates)
        model.to(device)
        val_users = _validation_users(h, c.val_users, c.seed, shard)
        train_h = _drop_last(h, val_users)
        val_in = last_window(train_h.rows(val_users), c.max_len, self.n_items)
        val_seen = train_h.rows(val_users)
        val_target = h.items[h.indptr[val_users + 1] - 1]
        x, y = windows(train_h, c.max_len, self.n_items)
        lengths = (x != self.n_items).sum(1)
        reshuffle = c.shuffle_baskets and train_h.ts is not None
        # Sharded, each process batches its own windows: its share of the global batch.
        batch_size = c.batch_size if shard is None else max(1, c.batch_size // shard.world_size)

        def batches(epoch: int) -> list[Batch]:
            seed = c.seed + epoch if shard is None else [c.seed + epoch, shard.rank]
            rng = np.random.default_rng(seed)
            h_epoch = shuffle_same_time(train_h, rng) if reshuffle and epoch > 0 else train_h
            xe, ye = windows(h_epoch, c.max_len, self.n_items) if reshuffle else (x, y)
            x_t, y_t = torch.from_numpy(xe), torch.from_numpy(ye)
            return [(x_t[idx], y_t[idx]) for idx in bucketed(lengths, batch_size, rng)]

        sampled = self.n_items > c.full_softmax_max_items and tower is None
        q = torch.from_numpy((counts + 1) / (counts + 1).sum()).float()
        log_q = torch.log(q * c.negatives).to(device)
        gen = torch.Generator().manual_seed(c.seed)

        def loss_fn(model: nn.Module, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
            if not sampled:
                out: tuple[torch.Tensor, torch.Tensor] = model(*batch)
                return out
            neg = torch.multinomial(q, c.negatives, replacement=True, generator=gen)
            out = model(*batch, neg.to(device), log_q)
            return out

        def validate(model: nn.Module) -> float:
            if isinstance(model, TunedSASRec):
                model.refresh()
                model = model.net
            assert isinstance(model, SASRecNet)
            total, n = _val_ndcg_sum(model, val_in, val_seen, val_target, device)
            if shard is None:
                return total / n if n else 0.0
            # the same metric, so the same decisions, on every process
            total, count = all_reduce_floats([total, n])
            return total / count if count else 0.0

        def lr_scale(name: str) -> float:
            return c.text_lr / c.lr if name.startswith("tower.") else 1.0

        data_key = None if shard is None else shard.fingerprint
        result = train(
            model,
            batches,
            loss_fn,
            validate,
            c,
            time_budget_s=data.time_budget_s,
            checkpoint_dir=data.checkpoint_dir,
            fingerprint=_fingerprint(c, h, text, attrs, data_key),
            device=device,
            lr_scale=lr_scale,
            sharded=shard is not None,
        )
        if c.prune > 0:
            _prune(net, c.prune)
        self._net = net.cpu().eval()
        self._prepare()
        prior_info = self._fit_prior(h, train_h, val_users, val_target, counts, shard)
        n_windows, n_val = len(x), len(val_users)
        if shard is not None:
            n_windows, n_val = (int(v) for v in all_reduce_sum(np.array([n_windows, n_val])))
        self.info = {
            "text": text is not None,
            "attributes": 0 if attrs is None else int(attrs.shape[1]),
            "windows": n_windows,
            "validation_users": n_val,
            "parameters": sum(p.numel() for p in net.parameters()),
            "softmax": "sampled" if sampled else "full",
            "text_finetuned": tower is not None,
            **result.summary(),
            **prior_info,
        }

    def _fit_prior(
        self,
        h: Histories,
        train_h: Histories,
        val_users: npt.NDArray[np.int64],
        val_target: npt.NDArray[np.int64],
        counts: npt.NDArray[np.int64],
        shard: Shard | None,
    ) -> dict[str, Any]:
        """Tune the co-occurrence blend on validation; keep the prior if it helps.

        The prior is fitted on the training items without the validation ones to choose
        the weight, then on all training items to score. Sharded, the Gram matrices and
        the NDCG sums are summed over processes, so every one keeps the same model.
        """
        self._prior, self._prior_weight = None, 0.0
        c = self.cfg
        if c.cooccurrence == "off":
            return {"cooccurrence_weight": 0.0}
        keep = kept_items(counts, c.cooccurrence_max_items)

        def fitted_on(rows: Histories) -> CooccurrencePrior:
            g = gram(rows, keep)
            g = g if shard is None else all_reduce_sum(g)
            return CooccurrencePrior.from_gram(g, keep, self.n_items, c.cooccurrence_l2)

        prior = fitted_on(train_h)
        seen = train_h.rows(val_users)
        sums = np.zeros(len(BLEND_WEIGHTS))
        step = batch_rows(EvalConfig(), self.n_items)  # users a batch, as the protocol
        for start in range(0, len(val_users), step):
            part = seen.rows(np.arange(start, min(start + step, len(val_users))))
            seq = self._sequence_scores(part)
            sums += blend_ndcg_sums(seq, prior.score(part), part, val_target[start : start + step])
        n = float(len(val_users))
        if shard is not None:
            *summed, n = all_reduce_floats([*sums, n])
            sums = np.array(summed)
        ndcg = sums / max(n, 1.0)
        weight = BLEND_WEIGHTS[int(np.argmax(ndcg))]  # the first best: the smallest weight
        if weight > 0:
            self._prior, self._prior_weight = fitted_on(h), weight
        return {
            "cooccurrence_weight": weight,
            "cooccurrence_val_ndcg@10": {
                str(w): round(float(v), 5) for w, v in zip(BLEND_WEIGHTS, ndcg, strict=True)
            },
            "cooccurrence_items": len(keep),
        }

    def compressed(
        self, *, prune: float | None = None, quantize: str | None = None, prior: bool = True
    ) -> Self:
        """A copy of this fitted model, pruned and/or int8-quantized, without retraining;
        `prior=False` drops the co-occurrence prior (the network alone)."""
        changes = {k: v for k, v in {"prune": prune, "quantize": quantize}.items() if v is not None}
        cfg = self.cfg.model_validate({**self.cfg.model_dump(), **changes})
        other = type(self)(cfg)
        other.n_items, other.info = self.n_items, dict(self.info)
        other._popularity = self._popularity
        other._net = copy.deepcopy(self._net)
        if prior:
            other._prior, other._prior_weight = self._prior, self._prior_weight
        if cfg.prune > self.cfg.prune:
            _prune(other._net, cfg.prune)
        other._prepare()
        return other

    def weight_stats(self) -> dict[str, int]:
        """Parameter and weight counts, nonzero ones, and the scoring state's bytes.

        Linear weights are what pruning and int8 touch. The size is that of the scoring
        network's saved state, stored densely (pruned zeros take room), the item table
        with its text vectors included (the same in every variant), plus the
        co-occurrence prior's matrix (`prior_bytes`) when the model has one.
        """
        linear = [m.weight for m in self._net.modules() if isinstance(m, nn.Linear)]
        buf = io.BytesIO()
        torch.save(self._scoring_net.state_dict(), buf)
        prior = 0 if self._prior is None else self._prior.b.nbytes + self._prior.keep.nbytes
        return {
            "parameters": sum(p.numel() for p in self._net.parameters()),
            "nonzero_parameters": sum(int(p.count_nonzero()) for p in self._net.parameters()),
            "linear_weights": sum(w.numel() for w in linear),
            "nonzero_linear_weights": sum(int(w.count_nonzero()) for w in linear),
            "size_bytes": buf.getbuffer().nbytes + prior,
            "prior_bytes": prior,
        }

    def _tower(self, data: TrainingData) -> TextTower:
        if data.item_texts is None or len(data.item_texts) != self.n_items:
            raise ConfigError("finetune_text needs the items' texts (TrainingData.item_texts)")
        from shopkeeper.features import packaged_model_path

        return TextTower(
            self.cfg.text_model_path or packaged_model_path(),
            data.item_texts,
            trainable_layers=self.cfg.text_trainable_layers,
            max_tokens=self.cfg.text_max_tokens,
        )

    def _prepare(self) -> None:
        """Cache the item table and, if asked, the int8 encoder used for scoring."""
        with torch.inference_mode():
            self._table = self._net.items()
        self._scoring_net: nn.Module = self._net
        if self.cfg.quantize == "int8":
            with warnings.catch_warnings():
                # torch marks torch.ao.quantization deprecated in favour of torchao (not a
                # dependency); the eager API works in the pinned torch.
                warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization")
                warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated")
                from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

                spec = {nn.Linear: per_channel_dynamic_qconfig}
                self._scoring_net = quantize_dynamic(  # type: ignore[no-untyped-call]
                    copy.deepcopy(self._net), spec, dtype=torch.qint8
                )

    def _score(self, histories: Histories) -> npt.NDArray[np.float32]:
        seq = self._sequence_scores(histories)
        if self._prior is None:
            return seq
        return blend(seq, self._prior.score(histories), self._prior_weight)

    def _sequence_scores(self, histories: Histories) -> npt.NDArray[np.float32]:
        """The network's scores alone: its state after the last item times the item table."""
        seq = torch.from_numpy(last_window(histories, self.cfg.max_len, self.n_items))
        net = self._scoring_net
        with torch.inference_mode():
            state = net.last_state(seq, self._table)  # type: ignore[operator]
            return np.asarray((state @ self._table[:-1].T).numpy(), dtype=np.float32)

    def _state(self) -> dict[str, npt.NDArray[Any]]:
        out = {f"net.{k}": v.numpy() for k, v in self._net.state_dict().items()}
        if self._prior is not None:
            out["prior.b"], out["prior.keep"] = self._prior.b, self._prior.keep
            out["prior.weight"] = np.array(self._prior_weight)
        return out

    def _set_state(self, state: dict[str, npt.NDArray[Any]]) -> None:
        text, attrs = state["net.items.text"], state["net.items.attrs"]
        net = self._build(text if text.shape[1] else None, attrs if attrs.shape[1] else None)
        net.load_state_dict(
            {k[4:]: torch.from_numpy(v) for k, v in state.items() if k.startswith("net.")}
        )
        self._net = net.eval()
        self._prior, self._prior_weight = None, 0.0
        if "prior.b" in state:  # models saved before the prior existed have none
            keep = state["prior.keep"].astype(np.int64)
            self._prior = CooccurrencePrior(state["prior.b"], keep, self.n_items)
            self._prior_weight = float(state["prior.weight"])
        self._prepare()


def _val_ndcg_sum(
    net: SASRecNet,
    seq: npt.NDArray[np.int64],
    seen: Histories,
    target: npt.NDArray[np.int64],
    device: torch.device,
    batch: int = 1024,
) -> tuple[float, int]:
    """NDCG@10 of the held-out items over the full catalog (seen items excluded): sum, count."""
    if len(target) == 0:
        return 0.0, 0
    table = net.items()
    total = 0.0
    for s in range(0, len(target), batch):
        rows = np.arange(s, min(s + batch, len(target)))
        state = net.last_state(torch.from_numpy(seq[rows]).to(device), table)
        scores = (state @ table[:-1].T).float()
        part = seen.rows(rows)
        scores[torch.from_numpy(part.user_of), torch.from_numpy(part.items)] = float("-inf")
        tgt = torch.from_numpy(target[rows]).to(device)
        mine = scores.gather(1, tgt[:, None])
        rank = (scores > mine).sum(1)
        total += float(torch.where(rank < 10, 1 / torch.log2(rank + 2.0), 0.0).sum())
    return total, len(target)


def _validation_users(
    h: Histories, wanted: int, seed: int, shard: Shard | None
) -> npt.NDArray[np.int64]:
    """Rows whose last item validates: a seeded sample of `wanted` rows with 3+ items.

    Sharded, the sample is the `wanted` candidates of the whole data set with the
    smallest seeded hash of their global user index, so it is the same users whatever
    the number of processes; each process gets the ones it holds.
    """
    candidates = np.flatnonzero(h.lengths >= 3)
    if shard is None:
        rng = np.random.default_rng(seed)
        return np.sort(rng.choice(candidates, min(wanted, len(candidates)), False))
    if wanted == 0:
        return np.zeros(0, dtype=np.int64)
    salt = np.array([seed], np.uint64) * np.uint64(0x9E3779B97F4A7C15)  # wraps on purpose
    hashed = _mix64(shard.users[candidates].astype(np.uint64) + salt)
    keys = (hashed >> np.uint64(11)).astype(np.float64)  # 53 bits: exact as floats
    smallest = np.full(wanted, np.inf)
    head = np.sort(keys)[:wanted]
    smallest[: len(head)] = head
    if world()[1] > 1:
        parts = [torch.zeros(wanted, dtype=torch.float64) for _ in range(world()[1])]
        dist.all_gather(parts, torch.from_numpy(smallest))
        smallest = torch.cat(parts).numpy()
    cut = np.sort(smallest)[wanted - 1]
    chosen: npt.NDArray[np.int64] = candidates[keys <= cut]
    return chosen


def _prune(net: SASRecNet, amount: float) -> None:
    """Zero the smallest `amount` of all linear weights together (global magnitude)."""
    from torch.nn.utils import prune

    params = [(m, "weight") for m in net.modules() if isinstance(m, nn.Linear)]
    prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=amount)
    for m, name in params:
        prune.remove(m, name)  # type: ignore[no-untyped-call]


def _fingerprint(
    cfg: SASRecConfig,
    h: Histories,
    text: npt.NDArray[np.float32] | None,
    attrs: npt.NDArray[np.int64] | None,
    data_key: str | None = None,
) -> str:
    """Names config and data: a checkpoint with another fingerprint is not resumed.

    `data_key` names the whole data set when `h` is one process's shard of it.
    """
    kept = cfg.model_dump(mode="json", exclude={"max_epochs", "patience", "quantize", "prune"})
    d = hashlib.sha256(json.dumps(kept, sort_keys=True).encode())
    if data_key is not None:
        d.update(data_key.encode())
    rows = (h.indptr, h.items) if data_key is None else ()
    for arr in (*rows, np.zeros(0) if text is None else text, attrs):
        if arr is None:
            continue
        d.update(np.ascontiguousarray(arr).tobytes())
    return d.hexdigest()
