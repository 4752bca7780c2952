"""ONNX Runtime backend: export a sentence-transformers pipeline once, cache it, run it.

The whole pipeline (transformer, the model's own pooling, L2 normalization) is exported
with `torch.onnx.export`, optionally quantized to int8 with ONNX Runtime's dynamic
quantization, and cached under a name that holds the model digest, the precision and
the torch and ONNX Runtime versions.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shopkeeper.errors import ConfigError
from shopkeeper.logging import Stopwatch, get_logger

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    import numpy as np
    import numpy.typing as npt
    from sentence_transformers import SentenceTransformer

_log = get_logger(__name__)


def default_cache_dir() -> Path:
    """`$SHOPKEEPER_CACHE_DIR`, else `$XDG_CACHE_HOME/shopkeeper` (`~/.cache/shopkeeper`)."""
    env = os.environ.get("SHOPKEEPER_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(xdg).expanduser() / "shopkeeper"


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Keep exporter chatter off stdout (it carries `--json`) and out of warnings.

    torch.onnx prints progress lines and warns about its own internals; ONNX Runtime's
    quantizer logs through the root logger, which would otherwise install a handler.
    """
    root = logging.getLogger()
    guard = logging.NullHandler()
    root.addHandler(guard)
    onnx_log = logging.getLogger("torch.onnx")
    level = onnx_log.level
    onnx_log.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            yield
    finally:
        onnx_log.setLevel(level)
        root.removeHandler(guard)


def export_onnx(model: SentenceTransformer, path: Path, int8: bool) -> None:
    """Export `model` (ids, mask -> normalized vector) to `path`, atomically."""
    import torch
    from torch import nn

    class _Pipeline(nn.Module):
        def __init__(self, st: SentenceTransformer) -> None:
            super().__init__()
            self.st = st

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            feats = {"input_ids": input_ids, "attention_mask": attention_mask}
            out: torch.Tensor = self.st(feats)["sentence_embedding"]
            return nn.functional.normalize(out, dim=-1)

    timer = Stopwatch()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fp32 = tmp.with_name(tmp.name + ".fp32") if int8 else tmp
    example = model.tokenizer(["an example item", "two"], padding=True, return_tensors="pt")
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq")
    try:
        with _quiet_export():
            torch.onnx.export(
                _Pipeline(model).eval(),
                (example["input_ids"], example["attention_mask"]),
                str(fp32),
                input_names=["input_ids", "attention_mask"],
                output_names=["vector"],
                dynamic_shapes={
                    "input_ids": {0: batch, 1: seq},
                    "attention_mask": {0: batch, 1: seq},
                },
                dynamo=True,
                external_data=False,
                verbose=False,
            )
            if int8:
                from onnxruntime.quantization import QuantType, quantize_dynamic

                quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
        tmp.replace(path)
    finally:
        for f in (tmp, fp32):
            f.unlink(missing_ok=True)
    _log.info("exported ONNX model", path=str(path), int8=int8, elapsed=str(timer))


def _max_seq_length(model_dir: Path) -> int:
    """sentence-transformers' `max_seq_length` of the folder (512 when it names none)."""
    cfg = model_dir / "sentence_bert_config.json"
    if cfg.is_file():
        value = json.loads(cfg.read_text(encoding="utf-8")).get("max_seq_length")
        if value:
            return int(value)
    return 512


def load_tokenizer(model_dir: Path) -> Any:
    """The folder's fast tokenizer (`tokenizer.json`) set up as sentence-transformers uses it:
    truncation at `max_seq_length`, padding to the longest text of a batch.

    Raises:
        ConfigError: the folder has no `tokenizer.json` (use the torch backend).
    """
    from tokenizers import Tokenizer

    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(f"the onnx backend needs {path}; use --backend torch for this model")
    tok = Tokenizer.from_file(str(path))
    pad = tok.padding or {}
    tok.no_padding()
    tok.enable_truncation(max_length=_max_seq_length(model_dir))
    tok.enable_padding(pad_id=pad.get("pad_id", 0), pad_token=pad.get("pad_token", "[PAD]"))
    return tok


class OnnxEncoder:
    """Runs an exported pipeline with ONNX Runtime on the model's own fast tokenizer.

    Neither torch nor sentence-transformers is imported: a cached export starts in well
    under a second.
    """

    def __init__(self, path: Path, model_dir: Path, threads: int | None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or 0
        opts.log_severity_level = 3
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.tokenizer = load_tokenizer(model_dir)
        self.dim = int(self.encode(["dimension probe"], 1).shape[1])

    def encode(self, texts: Sequence[str], batch_size: int) -> npt.NDArray[np.float32]:
        """Normalized vectors of `texts`, in order (sort by length before calling)."""
        import numpy as np

        parts = []
        for i in range(0, len(texts), batch_size):
            batch = self.tokenizer.encode_batch(list(texts[i : i + batch_size]))
            feeds = {
                "input_ids": np.array([e.ids for e in batch], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in batch], dtype=np.int64),
            }
            parts.append(self.session.run(["vector"], feeds)[0])
        if not parts:
            return np.empty((0, getattr(self, "dim", 0)), dtype=np.float32)
        out: npt.NDArray[np.float32] = np.vstack(parts).astype(np.float32, copy=False)
        return out
