"""Logger factory and the one place that installs handlers (CLI and app only).

Loggers are structlog loggers on top of the standard `logging` module: a library
user who configures nothing sees warnings only (Python's last-resort handler),
and `setup_logging` sends structured lines to stderr.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

import structlog

structlog.configure(
    processors=[
        structlog.stdlib.filter_by_level,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.dev.ConsoleRenderer(colors=False),
    ],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    cache_logger_on_first_use=True,
)


def get_logger(name: str) -> Any:
    """Return a structlog logger bound to a module name."""
    return structlog.get_logger(name)


def setup_logging(verbosity: int = 0) -> None:
    """Send logs to stderr; `-v` per level, SHOPKEEPER_LOG_LEVEL overrides."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    env = os.environ.get("SHOPKEEPER_LOG_LEVEL")
    if env:
        level = logging.getLevelNamesMapping().get(env.upper(), level)
    root = logging.getLogger("shopkeeper")
    root.setLevel(level)
    if not any(getattr(h, "_shopkeeper", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._shopkeeper = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.propagate = False


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
