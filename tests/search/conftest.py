"""Fixtures: a workspace holding the tiny hardware catalogue, queries and judgments."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopkeeper.warehouse import Workspace
from tests.search.catalog import ingest_catalogue


@pytest.fixture
def search_workspace(workspace: Workspace, tmp_path: Path) -> Workspace:
    """The tiny catalogue ingested (items, queries, judgments v1)."""
    ingest_catalogue(workspace, tmp_path / "data")
    return workspace
