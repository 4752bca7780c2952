"""The real server: several uvicorn workers, one killed under load, no accepted event lost."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from shopkeeper.serve._process import running_server
from tests.serve.conftest import CUSTOMER, auth


@pytest.fixture
def server(
    home: Path, keys: dict[str, str], tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`shopkeeper serve --workers 2` on a free loopback port, stopped afterwards."""
    with (tmp_path / "serve.log").open("wb") as log, running_server(home, workers=2, log=log) as s:
        yield s.url, s.proc


def _workers(proc: subprocess.Popen[bytes], n: int) -> list[psutil.Process]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        kids = [
            c
            for c in psutil.Process(proc.pid).children(recursive=True)
            if "spawn" in " ".join(c.cmdline())
        ]
        if len(kids) >= n:
            return kids
        time.sleep(0.2)
    pytest.fail(f"expected {n} worker processes")


@pytest.mark.slow
def test_killing_a_worker_loses_no_accepted_event(
    server: tuple[str, subprocess.Popen[bytes]], keys: dict[str, str], home: Path
) -> None:
    url, proc = server
    accepted: list[int] = []
    failed = 0
    stop = threading.Event()

    def post() -> None:
        nonlocal failed
        with httpx.Client(base_url=url, headers=auth(keys["writer"]), timeout=5) as c:
            for i in range(400):  # bounded: at most 400 posts
                if stop.is_set():
                    break
                event = {"user_id": f"load-{i % 50}", "item_id": "22423", "event_type": "view"}
                try:
                    r = c.post("/events", json=event)
                except httpx.HTTPError:
                    failed += 1
                    continue
                if r.status_code == 200:
                    accepted.extend(r.json()["ids"])
                else:
                    failed += 1

    writer = threading.Thread(target=post)
    writer.start()
    time.sleep(1.0)
    victim = _workers(proc, 2)[0]
    os.kill(victim.pid, signal.SIGKILL)
    writer.join(120)
    stop.set()
    assert len(accepted) > 100
    con = sqlite3.connect(home / "live" / "events.sqlite")
    stored = {r[0] for r in con.execute("SELECT seq FROM live_events")}
    assert set(accepted) <= stored  # every answered event is on disk
    assert len(accepted) == len(set(accepted))
    # the server still answers, from the surviving (or restarted) worker
    r = httpx.get(f"{url}/recommend/{CUSTOMER}", headers=auth(keys["reader"]), timeout=10)
    assert r.status_code == 200
    assert proc.poll() is None
    metrics = httpx.get(f"{url}/metrics", timeout=10).text
    assert "shopkeeper_live_events_total" in metrics
