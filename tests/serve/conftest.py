"""Fixtures: a served workspace (Online Retail sample, tiny encoder, EASE) and clients."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shopkeeper.features import FeaturesConfig, ItemEncoder, build_features
from shopkeeper.rec import train_rec
from shopkeeper.search import build_search_index
from shopkeeper.serve import ApiKeyStore, ServeSettings, create_app
from shopkeeper.warehouse import IngestRequest, Workspace, ingest
from tests.conftest import SAMPLES

CUSTOMER = "17850"
"""A customer of the first December 2010 invoices (as the source writes the id)."""


@pytest.fixture(scope="session")
def built_workspace(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    """The December sample ingested, features built with the tiny encoder, EASE trained."""
    ws = Workspace.at(tmp_path_factory.mktemp("serve") / "ws")
    ingest(ws, IngestRequest(SAMPLES / "online-retail-2010-12.csv.gz", adapter="online-retail"))
    encoder = ItemEncoder(model_path=tiny_model_dir, precision="fp32", batch_size=64)
    build_features(ws, FeaturesConfig(), encoder=encoder)
    train_rec(ws, "ease")
    build_search_index(ws)
    return ws.home


@pytest.fixture
def home(built_workspace: Path, tmp_path: Path) -> Path:
    """A private copy of the built workspace (tests write events, keys, erasures)."""
    dest = tmp_path / "ws"
    shutil.copytree(built_workspace, dest)
    return dest


@pytest.fixture
def keys(home: Path) -> dict[str, str]:
    """One key per role: `{"reader": KEY, "writer": KEY, "admin": KEY}`."""
    store = ApiKeyStore(home / "keys" / "api_keys.json")
    return {role: store.create(role)[0] for role in ("reader", "writer", "admin")}


def auth(key: str) -> dict[str, str]:
    """The Authorization header of `key`."""
    return {"Authorization": f"Bearer {key}"}


def settings(home: Path, **overrides: Any) -> ServeSettings:
    """Service settings for tests: no background reloads unless asked."""
    return ServeSettings(**{"home": home, "reload_interval_s": 3600, **overrides})


@pytest.fixture
def client(home: Path, keys: dict[str, str]) -> Iterator[TestClient]:
    """A client of one worker over the private workspace."""
    with TestClient(create_app(settings(home))) as c:
        yield c
