"""A late-interaction cross-encoder: query and item meet only in the last transformer layer.

The pre-trained encoder's first layers read the query and the item text apart (each as
its own sentence, as the language model was trained); its last layer reads the two token
sequences joined, with full attention between them, and a new head turns the query rows'
mean (the encoder's own pooling) into the relevance logit (the design of PreTTR,
MacAvaney et al., SIGIR 2020). Because the item side never sees the query below the
joint layer, its token states are computed once per item text and stored
(`ItemStates`); a search then costs one short query pass and one layer over the
candidates' stored states, of which only the query's rows are read out: keys and values
for every token, the rest for a handful of query tokens per pair. Fine-tuning trains
the joint layer, a segment embedding that tells query tokens from item tokens, and the
head; the lower layers stay as pre-trained, so their states are computed once for all
training pairs.

It scores (query, text) pairs like `CrossEncoder`, so the rerank stage, the validation
and the evaluation use either.
"""

from __future__ import annotations

import copy
import json
from contextlib import nullcontext
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from shopkeeper.features._encoder import packaged_model_path, require_ml
from shopkeeper.logging import progress
from shopkeeper.search._cross_encoder import (
    CrossEncoder,
    RankerPrecision,
    _quiet_transformers,
    held_bytes,
    int8_copy,
)
from shopkeeper.search._digest import text_digests

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import numpy.typing as npt

TOP_FILE = "late_top.safetensors"
LATE_FILE = "late.json"
STATES_FILE = "item_states.npy"
STATES_INDEX_FILE = "item_states_index.npz"
QUERY_TOKENS = 32
"""Tokens a query keeps (with [CLS] and [SEP])."""
EXTRA_TEXTS = 20_000
"""Item texts without stored states whose computed states are kept (about 15 KB each)."""


class ItemStates:
    """Token states of texts after the lower layers: float16 rows of all texts one after
    another, each text's offset and length, looked up by the text's digest."""

    def __init__(
        self,
        flat: npt.NDArray[np.float16],
        offsets: npt.NDArray[np.int64],
        lengths: npt.NDArray[np.int64],
        digests: npt.NDArray[np.int64],
    ) -> None:
        self.flat, self.offsets, self.lengths, self.digests = flat, offsets, lengths, digests

    @cached_property
    def _where(self) -> dict[int, int]:
        """Digest -> entry, built on the first lookup (query tables never need it)."""
        return {int(d): i for i, d in enumerate(self.digests.tolist())}

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def nbytes(self) -> int:
        """Bytes of the stored states."""
        return int(self.flat.nbytes)

    def find(self, texts: Sequence[str]) -> npt.NDArray[np.int64]:
        """Each text's entry (-1: not stored)."""
        return np.array([self._where.get(int(d), -1) for d in text_digests(texts)], np.int64)

    def save(self, folder: Path) -> list[Path]:
        """Write the states (`.npy`, memory-mappable) and their index; the paths."""
        np.save(folder / STATES_FILE, self.flat)
        np.savez(
            folder / STATES_INDEX_FILE,
            offsets=self.offsets,
            lengths=self.lengths,
            digests=self.digests,
        )
        return [folder / STATES_FILE, folder / STATES_INDEX_FILE]

    @classmethod
    def load(cls, folder: Path) -> ItemStates | None:
        """The stored states of `folder` (memory-mapped), or None when it has none."""
        if not (folder / STATES_FILE).is_file():
            return None
        index = np.load(folder / STATES_INDEX_FILE)
        flat = np.load(folder / STATES_FILE, mmap_mode="r")
        return cls(flat, index["offsets"], index["lengths"], index["digests"])


class LateCrossEncoder:
    """Scores (query, text) pairs with the lower layers apart and the last layer joint.

    Args:
        lower: The pre-trained encoder's first layers (a `transformers` BertModel).
        top: `_JointTop`: the joint layer, the segment embedding and the head.
        tokenizer: The encoder's tokenizer.
        max_length: Tokens an item text keeps.
        batch_size: Pairs per joint-layer pass when scoring.
        precision: fp32 as trained, or int8 (dynamic quantization of the Linear layers of
            the query's lower pass and the joint layer; stored item states stay float16).
        states: Stored item states (None: computed when a text is first scored).
    """

    def __init__(
        self,
        lower: Any,
        top: Any,
        tokenizer: Any,
        max_length: int = 64,
        batch_size: int = 256,
        precision: RankerPrecision = "fp32",
        states: ItemStates | None = None,
    ) -> None:
        self.lower = lower
        self.model = top
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.precision = precision
        self.states = states
        self._extra: dict[str, Any] = {}
        """States of texts the stored ones lack, computed on first use (bounded)."""

    @classmethod
    def pretrained(
        cls,
        path: Path | None = None,
        seed: int = 0,
        max_length: int = 64,
        layers: int | None = None,
    ) -> LateCrossEncoder:
        """A new ranker from the sentence-transformers folder `path` (default the packaged
        all-MiniLM-L6-v2): its first `layers - 1` layers apart, layer `layers` joint (None:
        all of them, the last joint), a new head."""
        torch = require_ml("torch")
        transformers = require_ml("transformers")
        _quiet_transformers()
        src = path or packaged_model_path()
        torch.manual_seed(seed)
        full = transformers.AutoModel.from_pretrained(str(src), add_pooling_layer=False)
        n = (
            full.config.num_hidden_layers
            if layers is None
            else min(layers, len(full.encoder.layer))
        )
        joint = copy.deepcopy(full.encoder.layer[n - 1])
        full.encoder.layer = full.encoder.layer[: n - 1]
        full.config.num_hidden_layers = n - 1
        top = _joint_top(full.config, joint)
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(src))
        return cls(full.eval(), top, tokenizer, max_length=max_length)

    @classmethod
    def load(
        cls, folder: Path, precision: RankerPrecision = "fp32", max_length: int = 64
    ) -> LateCrossEncoder:
        """A saved ranker with its stored item states, fp32 or int8."""
        transformers = require_ml("transformers")
        safetensors = require_ml("safetensors.torch")
        _quiet_transformers()
        lower = transformers.AutoModel.from_pretrained(str(folder), add_pooling_layer=False)
        meta = json.loads((folder / LATE_FILE).read_text(encoding="utf-8"))
        bert = require_ml("transformers.models.bert.modeling_bert")
        top = _joint_top(lower.config, bert.BertLayer(lower.config))
        top.load_state_dict(safetensors.load_file(str(folder / TOP_FILE)))
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
        ranker = cls(
            lower.eval(),
            top.eval(),
            tokenizer,
            int(meta.get("max_length", max_length)),
            states=ItemStates.load(folder),
        )
        return ranker.quantized() if precision == "int8" else ranker

    def save(self, folder: Path) -> list[Path]:
        """Write the lower layers, the tokenizer, the joint top and the item states into
        `folder` (files only); their paths."""
        safetensors = require_ml("safetensors.torch")
        if self.precision != "fp32":
            raise ValueError("save the fp32 ranker; int8 is made when it is loaded")
        self.lower.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        state = {k: v.contiguous() for k, v in self.model.state_dict().items()}
        safetensors.save_file(state, str(folder / TOP_FILE))
        meta = {"architecture": "late", "max_length": self.max_length}
        (folder / LATE_FILE).write_text(json.dumps(meta), encoding="utf-8")
        if self.states is not None:
            self.states.save(folder)
        return sorted(p for p in folder.iterdir() if p.is_file())

    def quantized(self) -> LateCrossEncoder:
        """An int8 copy: the Linear layers of the lower pass and the joint top dynamically
        quantized (per-channel weights); the same stored item states."""
        lower, top = (int8_copy(m) for m in (self.lower, self.model))
        out = LateCrossEncoder(
            lower, top, self.tokenizer, self.max_length, self.batch_size, "int8", self.states
        )
        out._extra = self._extra
        return out

    def lower_states(
        self, texts: Sequence[str], max_length: int, batch_size: int = 128, label: str = ""
    ) -> ItemStates:
        """The lower layers' token states of `texts`, each read as its own sentence
        (batches sorted by length; a progress bar when `label` is given)."""
        torch = require_ml("torch")
        n = len(texts)
        hidden = int(self.lower.config.hidden_size)
        order = np.argsort([len(t) for t in texts], kind="stable")
        parts: list[Any] = [None] * n
        lengths = np.zeros(n, dtype=np.int64)
        self.lower.eval()
        bar_cm = progress(label, total=n) if label else nullcontext(None)
        with torch.inference_mode(), bar_cm as bar:
            for s in range(0, n, batch_size):
                idx = order[s : s + batch_size]
                enc = self.tokenizer(
                    [texts[i] for i in idx],
                    truncation=True,
                    max_length=max_length,
                    padding=True,
                    return_tensors="pt",
                )
                out = self.lower(**enc).last_hidden_state.to(torch.float16).numpy()
                keep = enc["attention_mask"].sum(1).numpy()
                for j, i in enumerate(idx.tolist()):
                    parts[i] = out[j, : keep[j]]
                    lengths[i] = keep[j]
                if bar is not None:
                    bar.update(len(idx))
        offsets = np.zeros(n, dtype=np.int64)
        if n:
            offsets[1:] = np.cumsum(lengths)[:-1]
        flat = np.concatenate(parts) if n else np.zeros((0, hidden), np.float16)
        return ItemStates(flat, offsets, lengths, text_digests(texts))

    def store_states(self, texts: Sequence[str], label: str = "") -> None:
        """Compute and keep the item states of `texts` (saved with the ranker)."""
        unique = list(dict.fromkeys(texts))
        self.states = self.lower_states(unique, self.max_length, label=label)
        self._extra.clear()

    def _item_rows(self, texts: Sequence[str]) -> tuple[ItemStates, npt.NDArray[np.int64]]:
        """States holding every text of `texts` and each text's entry in them."""
        found = self.states.find(texts) if self.states is not None else np.full(len(texts), -1)
        missing = list(dict.fromkeys(t for t, f in zip(texts, found, strict=True) if f < 0))
        if not missing:
            assert self.states is not None
            return self.states, found
        new = [t for t in missing if t not in self._extra]
        if new:
            if len(self._extra) + len(new) > EXTRA_TEXTS:
                self._extra.clear()
            extra = self.lower_states(new, self.max_length)
            for i, t in enumerate(new):
                o, n = int(extra.offsets[i]), int(extra.lengths[i])
                self._extra[t] = extra.flat[o : o + n]
        # One table for this call: the stored entries and the computed ones.
        rows = [self._row_array(t, int(f)) for t, f in zip(texts, found, strict=True)]
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        offsets = np.zeros(len(rows), dtype=np.int64)
        offsets[1:] = np.cumsum(lengths)[:-1]
        hidden = int(self.lower.config.hidden_size)
        flat = np.concatenate(rows) if rows else np.zeros((0, hidden), np.float16)
        table = ItemStates(flat, offsets, lengths, np.zeros(len(rows), np.int64))
        return table, np.arange(len(rows), dtype=np.int64)

    def _row_array(self, text: str, found: int) -> npt.NDArray[np.float16]:
        if found >= 0:
            assert self.states is not None
            o, n = int(self.states.offsets[found]), int(self.states.lengths[found])
            return np.asarray(self.states.flat[o : o + n])
        return self._extra[text]  # type: ignore[no-any-return]

    def query_states(self, queries: Sequence[str]) -> ItemStates:
        """The lower layers' token states of each query (no progress bar)."""
        return self.lower_states(queries, QUERY_TOKENS, batch_size=256)

    def joint_logits(
        self,
        q_states: ItemStates,
        q_rows: npt.NDArray[np.int64],
        d_states: ItemStates,
        d_rows: npt.NDArray[np.int64],
    ) -> Any:
        """The logit of each pair (query entry, item entry): a 1-d tensor, with gradients
        through the joint top when it is training."""
        torch = require_ml("torch")
        q, q_mask = _padded(torch, q_states, q_rows)
        d, d_mask = _padded(torch, d_states, d_rows)
        return self.model(q, q_mask, d, d_mask)

    def score(self, queries: Sequence[str], texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """The relevance logit of each (query, text) pair, in input order."""
        torch = require_ml("torch")
        n = len(queries)
        out = np.empty(n, dtype=np.float32)
        if n == 0:
            return out
        unique = list(dict.fromkeys(queries))
        where = {q: i for i, q in enumerate(unique)}
        q_rows = np.array([where[q] for q in queries], dtype=np.int64)
        d_states, d_rows = self._item_rows(texts)
        self.model.eval()
        with torch.inference_mode():
            q_states = self.query_states(unique)
            for s in range(0, n, self.batch_size):
                sl = slice(s, s + self.batch_size)
                logits = self.joint_logits(q_states, q_rows[sl], d_states, d_rows[sl])
                out[sl] = logits.float().numpy()
        return out

    def weight_bytes(self) -> int:
        """Bytes of the parameters and buffers as held (int8 packed weights count as their
        packed size), without the stored item states."""
        return held_bytes(self.lower, self.model)


def _padded(torch: Any, states: ItemStates, rows: npt.NDArray[np.int64]) -> tuple[Any, Any]:
    """The entries `rows` of `states` as a zero-padded float32 batch and its mask. One
    slice copy per entry: measured faster than one fancy-index gather of every padded
    slot (1.1 vs 1.7 ms for 50 entries, 10 vs 16 ms for 400)."""
    lengths = states.lengths[rows]
    width = int(lengths.max()) if len(rows) else 0
    batch = np.zeros((len(rows), width, states.flat.shape[1]), dtype=np.float32)
    mask = np.arange(width)[None, :] < lengths[:, None]
    for j, (o, n) in enumerate(zip(states.offsets[rows].tolist(), lengths.tolist(), strict=True)):
        batch[j, :n] = states.flat[o : o + n]
    return torch.from_numpy(batch), torch.from_numpy(mask)


def _joint_top(config: Any, layer: Any) -> Any:
    """The trainable top: `layer` over the joined tokens, computed for the query's rows
    only, mean-pooled (the encoder's own pooling) into the head."""
    torch = require_ml("torch")
    nn = torch.nn

    class JointTop(nn.Module):  # type: ignore[misc,name-defined]
        """Segment embedding, the joint layer's query rows, mean pooling, dropout and a
        linear head."""

        def __init__(self) -> None:
            super().__init__()
            self.layer = layer
            self.segment = nn.Parameter(torch.zeros(2, config.hidden_size))
            self.dropout = nn.Dropout(config.hidden_dropout_prob)
            self.head = nn.Linear(config.hidden_size, 1)
            nn.init.normal_(self.head.weight, std=config.initializer_range)
            nn.init.zeros_(self.head.bias)

        def forward(self, q: Any, q_mask: Any, d: Any, d_mask: Any) -> Any:
            x = torch.cat([q + self.segment[0], d + self.segment[1]], dim=1)
            mask = torch.cat([q_mask, d_mask], dim=1)
            att = self.layer.attention
            sa = att.self
            n, width = x.shape[0], x.shape[1]
            heads, size = sa.num_attention_heads, sa.attention_head_size
            k = sa.key(x).view(n, width, heads, size).transpose(1, 2)
            v = sa.value(x).view(n, width, heads, size).transpose(1, 2)
            width_q = q.shape[1]
            rows = x[:, :width_q]  # only the query's rows are read out
            qv = sa.query(rows).view(n, width_q, heads, size).transpose(1, 2)
            scores = (qv @ k.transpose(-1, -2)) * size**-0.5
            scores = scores.masked_fill(~mask[:, None, None, :], torch.finfo(scores.dtype).min)
            probs = sa.dropout(scores.softmax(-1))
            ctx = (probs @ v).transpose(1, 2).reshape(n, width_q, heads * size)
            a = att.output(ctx, rows)
            h = self.layer.output(self.layer.intermediate(a), a)
            weight = q_mask[:, :, None].to(h.dtype)
            pooled = (h * weight).sum(1) / weight.sum(1).clamp(min=1.0)
            return self.head(self.dropout(pooled))[:, 0]

    return JointTop()


Ranker = CrossEncoder | LateCrossEncoder
"""Either learned ranker: both score (query, text) pairs the same way."""


def load_any(folder: Path, precision: RankerPrecision, max_length: int) -> Ranker:
    """The ranker saved in `folder`, whichever architecture (late when it has the late
    ranker's files)."""
    if (folder / LATE_FILE).is_file():
        return LateCrossEncoder.load(folder, precision, max_length)
    return CrossEncoder.load(folder, precision, max_length)
