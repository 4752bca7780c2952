"""`shopkeeper serve` as a child process on a free loopback port: started, awaited, stopped.

The demo and the tests that need a real server (several workers, a browser) use it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from shopkeeper.errors import ShopkeeperError

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

_MAIN = "from shopkeeper.cli import main; main()"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class ServerProcess:
    """A running server: its base URL and process."""

    url: str
    proc: subprocess.Popen[bytes]


def _ready(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/health?ready=true", timeout=2) as resp:
                if resp.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    return False


@contextmanager
def running_server(
    home: Path,
    *,
    workers: int = 1,
    log: IO[bytes] | None = None,
    env: dict[str, str] | None = None,
    ready_timeout_s: float = 120.0,
) -> Iterator[ServerProcess]:
    """Run `shopkeeper --home HOME serve` until the block ends (SIGINT, then kill).

    Raises:
        ShopkeeperError: the server exited or was not ready within `ready_timeout_s`.
    """
    port = free_port()
    cmd = [sys.executable, "-c", _MAIN, "--home", str(home), "serve", "--port", str(port)]
    proc = subprocess.Popen(
        [*cmd, "--workers", str(workers)],
        stdout=subprocess.DEVNULL,
        stderr=log if log is not None else subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        if not _ready(url, proc, ready_timeout_s):
            raise ShopkeeperError(f"the server did not become ready (exit code {proc.poll()})")
        yield ServerProcess(url, proc)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
