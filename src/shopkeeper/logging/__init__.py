"""Structured logging, the progress facade and a stopwatch."""

from __future__ import annotations

from shopkeeper.logging._progress import Progress, progress, set_progress_backend
from shopkeeper.logging._setup import Stopwatch, get_logger, setup_logging

__all__ = [
    "Progress",
    "Stopwatch",
    "get_logger",
    "progress",
    "set_progress_backend",
    "setup_logging",
]
