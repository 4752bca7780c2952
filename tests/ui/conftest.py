"""Fixtures: the served workspace of `tests.serve` plus an evaluation report, and clients."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from shopkeeper.rec import run_evaluation
from shopkeeper.serve import create_app
from shopkeeper.warehouse import Workspace
from tests.serve.conftest import CUSTOMER, auth, built_workspace, keys, settings

__all__ = ["CUSTOMER", "auth", "built_workspace", "keys"]


@pytest.fixture(scope="session")
def evaluated_workspace(built_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The served workspace with a `rec_report` of popularity against EASE."""
    dest = tmp_path_factory.mktemp("ui") / "ws"
    shutil.copytree(built_workspace, dest)
    run_evaluation(Workspace.at(dest), ["popularity", "ease"])
    return dest


@pytest.fixture
def home(evaluated_workspace: Path, tmp_path: Path) -> Path:
    """A private copy of the evaluated workspace."""
    dest = tmp_path / "ws"
    shutil.copytree(evaluated_workspace, dest)
    return dest


@pytest.fixture
def client(home: Path, keys: dict[str, str]) -> Iterator[TestClient]:
    """A client of one worker that does not follow redirects (they are checked)."""
    with TestClient(create_app(settings(home)), follow_redirects=False) as c:
        yield c


def login(client: TestClient, key: str) -> None:
    """Log in through the form; the client keeps the cookie."""
    resp = client.post("/ui/login", data={"key": key, "next": "/ui/"})
    assert resp.status_code == 303, resp.text
