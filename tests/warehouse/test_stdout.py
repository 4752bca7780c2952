"""Warehouse connections keep stdout clean: it carries the CLI's --json output."""

from __future__ import annotations

import pytest

from shopkeeper.warehouse import Warehouse, Workspace


@pytest.mark.parametrize("read_only", [False, True])
def test_no_progress_bar_on_stdout(workspace: Workspace, read_only: bool) -> None:
    with Warehouse(workspace):
        pass  # creates the catalog
    with Warehouse(workspace, read_only=read_only) as wh:
        rows = wh.con.execute("SELECT current_setting('enable_progress_bar')").fetchall()
    assert rows == [(False,)]
