"""Shared fixtures: seeded rng, workspaces, the bundled sample and the real data sets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import duckdb
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from shopkeeper.clean import register_text_functions
from shopkeeper.warehouse import Workspace

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci", max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLES = REPO / "src" / "shopkeeper" / "samples"


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded random generator."""
    return np.random.default_rng(20261128)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """A fresh, empty workspace."""
    return Workspace.at(tmp_path / "ws")


@pytest.fixture
def duckdb_con() -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB with Shopkeeper's SQL functions registered, in UTC."""
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    register_text_functions(con)
    yield con
    con.close()


@pytest.fixture(scope="session", autouse=True)
def _model_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Exported ONNX models go to a session folder, not the user's cache (CLI runs too)."""
    cache = tmp_path_factory.mktemp("model-cache")
    old = os.environ.get("SHOPKEEPER_CACHE_DIR")
    os.environ["SHOPKEEPER_CACHE_DIR"] = str(cache)
    yield cache
    if old is None:
        del os.environ["SHOPKEEPER_CACHE_DIR"]
    else:
        os.environ["SHOPKEEPER_CACHE_DIR"] = old


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny randomly initialized sentence-transformers model folder (session-wide)."""
    from shopkeeper.testing.models import build_tiny_sentence_model

    return build_tiny_sentence_model(tmp_path_factory.mktemp("tiny-st"))


@pytest.fixture
def shared_data() -> Path:
    """`../shared/data`, or skip when this machine has none (a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not present")
    return SHARED_DATA
