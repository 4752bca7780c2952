"""Logger factory and the one place that installs handlers (CLI and app only)."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import structlog


def get_logger(name: str) -> Any:
    """Return a structlog logger bound to a module name."""
    return structlog.get_logger(name)


def setup_logging(verbosity: int = 0) -> None:
    """Send structured logs to stderr; `-v` per level, SHOPKEEPER_LOG_LEVEL overrides."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    env = os.environ.get("SHOPKEEPER_LOG_LEVEL")
    if env:
        level = logging.getLevelNamesMapping().get(env.upper(), level)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


class Stopwatch:
    """Elapsed wall time; formats as seconds in logs."""

    def __init__(self) -> None:
        self._start = time.perf_counter()

    @property
    def seconds(self) -> float:
        """Seconds since construction."""
        return time.perf_counter() - self._start

    def __str__(self) -> str:
        return f"{self.seconds:.2f}s"
