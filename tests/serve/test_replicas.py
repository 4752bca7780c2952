"""Two replicas behind a real nginx (Debian's, started here): load spreads, one lost is survived."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shopkeeper.errors import ConfigError
from shopkeeper.serve._nginx import nginx_config
from shopkeeper.serve._process import ServerProcess, free_port, running_server
from tests.serve.conftest import CUSTOMER, auth

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
ROUTE = "/recommend/{user_id}"
MAIN = "from shopkeeper.cli import main; main()"


def _answered(url: str, route: str = ROUTE) -> int:
    """Requests with a 2xx that the replica at `url` counted for `route`."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return int(
        sum(
            s.value
            for fam in text_string_to_metric_families(text)
            if fam.name == "shopkeeper_requests"
            for s in fam.samples
            if s.name == "shopkeeper_requests_total"
            and s.labels["route"] == route
            and s.labels["status"].startswith("2")
        )
    )


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"nginx did not listen on {port} (exit code {proc.poll()})")


@pytest.fixture
def nginx_front(home: Path, tmp_path: Path) -> Iterator[tuple[str, list[ServerProcess], Path]]:
    """Two `shopkeeper serve` replicas over one workspace and nginx in front of them."""
    if NGINX is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx; `make test` does)")
    with ExitStack() as stack:
        replicas = []
        for i in range(2):
            log = stack.enter_context((tmp_path / f"replica-{i}.log").open("wb"))
            replicas.append(stack.enter_context(running_server(home, log=log)))
        prefix = tmp_path / "nginx"
        port = free_port()
        upstreams = [r.url.removeprefix("http://") for r in replicas]
        conf = prefix / "nginx.conf"
        conf.parent.mkdir()
        conf.write_text(_cli_config(upstreams, f"127.0.0.1:{port}", prefix))
        cmd = [NGINX, "-p", str(prefix), "-c", str(conf), "-g", "daemon off;"]
        stderr = stack.enter_context((tmp_path / "nginx.stderr").open("wb"))
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr)
        try:
            _wait_listening(port, proc)
            yield f"http://127.0.0.1:{port}", replicas, prefix
        finally:
            proc.send_signal(signal.SIGQUIT)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def _cli_config(upstreams: list[str], listen: str, prefix: Path) -> str:
    """The config as `shopkeeper nginx-config` prints it (which also makes prefix/tmp/*)."""
    ups = [a for u in upstreams for a in ("--upstream", u)]
    out = subprocess.run(
        [sys.executable, "-c", MAIN, "nginx-config", *ups, "--listen", listen, "--prefix", prefix],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout


def _get_all(front: str, key: str, n: int) -> list[int]:
    with httpx.Client(base_url=front, headers=auth(key), timeout=10) as c:
        return [c.get(f"/recommend/{CUSTOMER}", params={"k": 5}).status_code for _ in range(n)]


@pytest.mark.slow
def test_load_spreads_over_replicas_and_one_lost_is_survived(
    nginx_front: tuple[str, list[ServerProcess], Path], keys: dict[str, str]
) -> None:
    front, (a, b), prefix = nginx_front
    statuses = _get_all(front, keys["reader"], 60)
    assert statuses == [200] * 60
    per_replica = [_answered(a.url), _answered(b.url)]
    assert sum(per_replica) == 60
    assert min(per_replica) >= 20, per_replica  # round-robin: about 30 each

    a.proc.kill()  # a replica dies without a goodbye
    a.proc.wait(10)
    before = _answered(b.url)
    statuses = _get_all(front, keys["reader"], 40)
    assert statuses == [200] * 40  # nginx retried the reads the dead replica refused
    assert _answered(b.url) - before == 40

    # writes still land, on the survivor, and change what it recommends
    with httpx.Client(base_url=front, timeout=10) as c:
        r = c.post(
            "/events",
            json={"user_id": CUSTOMER, "item_id": "22423", "event_type": "purchase"},
            headers=auth(keys["writer"]),
        )
        assert r.status_code == 200, r.text
        assert r.json()["accepted"] == 1
    assert "connect() failed" in (prefix / "error.log").read_text()  # nginx did see the loss


def test_nginx_config_names_every_replica_and_rejects_bad_addresses(tmp_path: Path) -> None:
    conf = nginx_config(["127.0.0.1:8001", "10.0.0.2:8000"], listen="0.0.0.0:80", prefix=tmp_path)
    assert "server 127.0.0.1:8001 max_fails=1" in conf
    assert "server 10.0.0.2:8000 max_fails=1" in conf
    assert "listen 0.0.0.0:80;" in conf
    assert f"pid {tmp_path}/nginx.pid;" in conf
    assert "proxy_next_upstream error timeout;" in conf  # POST is not in it: never retried
    assert "least_conn" not in conf
    assert "least_conn;" in nginx_config(["a:1"], least_conn=True)
    for bad in ([], ["no-port"], ["host:0"], ["host:99999"], ["a;b:80"]):
        with pytest.raises(ConfigError):
            nginx_config(bad)
    if NGINX is not None:  # nginx itself accepts the file
        prefix = tmp_path / "p"
        prefix.mkdir()
        (prefix / "nginx.conf").write_text(_cli_config(["127.0.0.1:8001"], "127.0.0.1:80", prefix))
        check = subprocess.run(
            [NGINX, "-t", "-p", str(prefix), "-c", str(prefix / "nginx.conf")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stderr
