"""Durable file operations: fsync a file or a folder, replace a file atomically."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def fsync_path(path: Path) -> None:
    """Make a file's contents, or a folder's new entries (after renames), durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(src: Path, dest: Path) -> None:
    """Move the finished file `src` over `dest` atomically, durable once this returns.

    Readers see either the old or the new file, never a partial one; `src` must be on
    the same file system (the workspace's `tmp/`).
    """
    fsync_path(src)
    dest.parent.mkdir(parents=True, exist_ok=True)
    src.replace(dest)
    fsync_path(dest.parent)
