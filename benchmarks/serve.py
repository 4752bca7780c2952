"""Service benchmark: open-loop load on `shopkeeper serve` (recommend, search, overload, soak).

Starts `shopkeeper --home WS serve` as a subprocess (one per configuration), waits for
`/health?ready=true`, and sends requests at a constant arrival rate (open loop: a
request leaves at its scheduled time whether or not earlier ones have answered), from a
small HTTP/1.1 keep-alive client on asyncio streams (`RawClient`: httpx cost most of a
core at 200 requests/s, so on 2 cores it measured itself more than the server). Every
step is bounded in count (rate × seconds) and in time.

* `/recommend` sweeps at increasing rates in three configurations: default (cache and
  micro-batching), `--no-cache`, `--no-cache --no-batching`; ratios between them;
* a `/search` sweep (default configuration);
* overload: a rate far past capacity, to check that the excess gets fast 429s;
* a soak at a steady rate with the RSS of the server's process tree sampled.

Users are the raw CustomerIDs of the bundled Online Retail sample, drawn Zipf-like
(the most active customers most often); queries are pieces of item titles, some with
a typo. The workspace must exist (`make demo` builds `.shopkeeper-demo`).

Results: `<out>/serve-results.json`, `<out>/serve-results.md` (also printed), and the
server's stderr in `<out>/serve-<config>.log`.

    python benchmarks/serve.py --out benchmarks/out                      # full run
    python benchmarks/serve.py --steps-seconds 3 --rates 50,200 --soak-seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import csv
import gzip
import itertools
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import psutil

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent / "shopkeeper"
SAMPLE = REPO / "src" / "shopkeeper" / "samples" / "online-retail-2010-12.csv.gz"
CONFIGS: dict[str, list[str]] = {
    "default": [],
    "no-cache": ["--no-cache"],
    "no-cache-no-batching": ["--no-cache", "--no-batching"],
}
LAG_BOUND_MS = 20.0
"""A step whose requests left more than this late (p99) was limited by the generator."""
_KEYBOARD = ["qwertyuiop", "asdfghjkl", "zxcvbnm"]


# -- workload ----------------------------------------------------------------------------


class ZipfSampler:
    """Draws from `values` with weight 1 / rank**s (values ordered most popular first)."""

    def __init__(self, values: list[str], s: float, seed: int) -> None:
        self.values = values
        self.cum = list(itertools.accumulate(1.0 / (r + 1) ** s for r in range(len(values))))
        self.rng = random.Random(seed)

    def draw(self) -> str:
        """One value."""
        x = self.rng.random() * self.cum[-1]
        return self.values[min(bisect.bisect(self.cum, x), len(self.values) - 1)]


def read_users(path: Path = SAMPLE) -> list[str]:
    """Raw CustomerIDs of the sample, most lines first (`17850.0` read as `17850`)."""
    counts: Counter[str] = Counter()
    with gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="") as f:
        for row in csv.DictReader(f):
            raw = (row.get("CustomerID") or "").strip()
            if raw:
                counts[raw.removesuffix(".0")] += 1
    return [u for u, _ in counts.most_common()]


def read_titles(home: Path) -> list[str]:
    """Item titles of the workspace, via `shopkeeper sql`."""
    sql = "SELECT title FROM items WHERE title IS NOT NULL ORDER BY item_id"
    cmd = [str(BIN), "--home", str(home), "sql", sql, "--limit", "1000000", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=120)
    return [r["title"] for r in json.loads(out.stdout) if r["title"].strip()]


def _typo(word: str, rng: random.Random) -> str:
    """One typing error: drop, double, swap or a keyboard neighbour."""
    i = rng.randrange(1, len(word) - 1)
    kind = rng.choice(["drop", "double", "swap", "near"])
    if kind == "drop":
        return word[:i] + word[i + 1 :]
    if kind == "double":
        return word[:i] + word[i] + word[i:]
    if kind == "swap":
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    row = next((r for r in _KEYBOARD if word[i] in r), None)
    if row is None:
        return word
    j = row.index(word[i])
    near = row[j - 1] if j > 0 and (j == len(row) - 1 or rng.random() < 0.5) else row[j + 1]
    return word[:i] + near + word[i + 1 :]


def make_queries(titles: list[str], n: int, typo_share: float, seed: int) -> list[str]:
    """`n` distinct-ish queries: 1–3 consecutive words of a title, lower case, some misspelt."""
    rng = random.Random(seed)
    out: list[str] = []
    for _ in range(n):
        words = [w for w in rng.choice(titles).lower().split() if w.isalpha()] or ["bag"]
        width = min(len(words), rng.choice([1, 2, 2, 3]))
        start = rng.randrange(len(words) - width + 1)
        q = words[start : start + width]
        longest = max(range(len(q)), key=lambda i: len(q[i]))
        if len(q[longest]) >= 5 and rng.random() < typo_share:
            q[longest] = _typo(q[longest], rng)
        out.append(" ".join(q))
    return out


# -- the server --------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_key(home: Path) -> dict[str, Any]:
    """A reader API key ({key, key_id, role}); revoked again by `revoke_key`."""
    cmd = [str(BIN), "--home", str(home), "keys", "create", "--role", "reader", "--json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60)
    return dict(json.loads(out.stdout))


def revoke_key(home: Path, key_id: str) -> None:
    """Revoke the benchmark's key (best effort)."""
    cmd = [str(BIN), "--home", str(home), "keys", "revoke", key_id, "--json"]
    subprocess.run(cmd, capture_output=True, check=False, timeout=60)


@dataclass
class Server:
    """One `shopkeeper serve` subprocess in its own process group."""

    proc: subprocess.Popen[bytes]
    base: str
    log: Path

    def tree(self) -> list[psutil.Process]:
        """The server and all its descendants (uvicorn's supervisor and workers)."""
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def rss_mb(self) -> tuple[float, list[float]]:
        """RSS of the whole tree in MB, and of each process."""
        each = []
        for p in self.tree():
            try:
                each.append(p.memory_info().rss / 2**20)
            except psutil.NoSuchProcess:
                continue
        return sum(each), each

    def cpu_s(self) -> float:
        """CPU seconds (user + system) used so far by the processes alive now."""
        total = 0.0
        for p in self.tree():
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                continue
        return total

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after 20 s."""
        if self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass


def start_server(home: Path, workers: int, flags: list[str], log: Path) -> Server:
    """Launch `shopkeeper serve` on a free loopback port (not yet ready)."""
    port = free_port()
    cmd = [str(BIN), "--home", str(home), "serve", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers), *flags]
    with log.open("wb") as f:
        proc = subprocess.Popen(
            cmd, stdout=f, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO
        )
    return Server(proc, f"http://127.0.0.1:{port}", log)


async def wait_ready(server: Server, timeout_s: float) -> float:
    """Poll `/health?ready=true` until 200; seconds it took. Raises if the server dies."""
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=server.base, timeout=2.0) as c:
        while time.perf_counter() - t0 < timeout_s:
            if server.proc.poll() is not None:
                tail = server.log.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"server exited ({server.proc.returncode}):\n{tail}")
            try:
                if (await c.get("/health", params={"ready": "true"})).status_code == 200:
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.25)
    raise TimeoutError(f"server not ready after {timeout_s} s; see {server.log}")


# -- metrics -----------------------------------------------------------------------------


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, frozenset[Any]], float]:
    """Every sample of `/metrics`, keyed by (name, labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = (await client.get("/metrics", timeout=10.0)).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def metric_delta(
    before: dict[tuple[str, frozenset[Any]], float],
    after: dict[tuple[str, frozenset[Any]], float],
    name: str,
    **labels: str,
) -> float:
    """Increase of the sum of `name` samples matching `labels` between two scrapes."""
    want = set(labels.items())

    def total(m: dict[tuple[str, frozenset[Any]], float]) -> float:
        return sum(v for (n, lab), v in m.items() if n == name and want <= lab)

    return total(after) - total(before)


_TEMPLATES = {"/recommend": "/recommend/{user_id}", "/search": "/search"}


def histogram_quantile(
    before: dict[Any, float], after: dict[Any, float], route: str, q: float
) -> float | None:
    """The q-quantile (ms) of the server's own latency histogram during a step,
    interpolated within its bucket as Prometheus' `histogram_quantile` does."""
    want = ("route", _TEMPLATES[route])
    name = "shopkeeper_request_seconds_bucket"
    bounds = sorted({float(dict(lab)["le"]) for (n, lab) in after if n == name and want in lab})
    cum = [metric_delta(before, after, name, route=want[1], le=_le(b)) for b in bounds]
    if not cum or cum[-1] <= 0:
        return None
    rank = q * cum[-1]
    i = next(i for i, c in enumerate(cum) if c >= rank)
    if bounds[i] == float("inf"):
        return round(bounds[i - 1] * 1000, 1) if i else None
    lo, below = (bounds[i - 1], cum[i - 1]) if i else (0.0, 0.0)
    frac = (rank - below) / (cum[i] - below) if cum[i] > below else 1.0
    return round((lo + frac * (bounds[i] - lo)) * 1000, 1)


def _le(bound: float) -> str:
    """A bucket bound as the exposition writes it (`0.005`, `1.0`, `+Inf`)."""
    return "+Inf" if bound == float("inf") else repr(bound)


def server_view(before: dict[Any, float], after: dict[Any, float], route: str) -> dict[str, Any]:
    """What `/metrics` says happened during a step: the server's own latency (429s are
    refused before it is timed) and status counts, batches, cache, fallbacks, 429s."""
    batches = metric_delta(before, after, "shopkeeper_batch_size_count")
    cache = "shopkeeper_cache_requests_total"
    hits = metric_delta(before, after, cache, route=route, result="hit")
    miss = metric_delta(before, after, cache, route=route, result="miss")
    statuses = {
        str(dict(lab)["status"])
        for (n, lab) in after
        if n == "shopkeeper_requests_total" and ("route", _TEMPLATES[route]) in lab
    }
    by_status = {
        s: int(
            metric_delta(
                before, after, "shopkeeper_requests_total", route=_TEMPLATES[route], status=s
            )
        )
        for s in sorted(statuses)
    }
    return {
        "p50_ms": histogram_quantile(before, after, route, 0.50),
        "p99_ms": histogram_quantile(before, after, route, 0.99),
        "requests_by_status": {s: n for s, n in by_status.items() if n},
        "batches": int(batches),
        "mean_batch_size": (
            round(metric_delta(before, after, "shopkeeper_batch_size_sum") / batches, 2)
            if batches
            else None
        ),
        "cache_hit_rate": round(hits / (hits + miss), 3) if hits + miss else None,
        "fallbacks": int(metric_delta(before, after, "shopkeeper_fallbacks_total", route=route)),
        "rejected_overload": int(
            metric_delta(before, after, "shopkeeper_rejected_requests_total", reason="overload")
        ),
    }


# -- the load generator ------------------------------------------------------------------


@dataclass
class Sample:
    """One request: its lag behind schedule, its latency and outcome."""

    lag_s: float
    latency_s: float
    outcome: str
    """`2xx`, `429`, `5xx`, `4xx`, `timeout` (the client's deadline) or `conn_error`."""
    fallback: str | None = None
    cached: bool = False


@dataclass
class Run:
    """What one open-loop run sent and got back."""

    samples: list[Sample] = field(default_factory=list)
    open: int = 0
    """Requests sent and not yet answered."""
    skipped: int = 0
    """Requests not sent: the generator already had `max_outstanding` waiting."""
    unfinished: int = 0
    """Requests still open past every deadline (cancelled; should be 0)."""
    send_s: float = 0.0
    wall_s: float = 0.0


@dataclass
class RawResponse:
    """Status and body of one answer."""

    status_code: int
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class RawClient:
    """GET over a pool of keep-alive HTTP/1.1 connections, nothing else.

    Responses must carry Content-Length (uvicorn's JSON answers do). A request that is
    cancelled (its deadline) closes its connection, so the pool never holds a socket
    with half a response in it.
    """

    def __init__(self, base: str, headers: dict[str, str], timeout_s: float) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self.host, self.port, self.timeout_s = host, int(port), timeout_s
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self._head = f"HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def __aenter__(self) -> RawClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        for _, w in self._idle:
            w.close()
        self._idle.clear()

    async def get(self, path: str) -> RawResponse:
        """One GET; raises OSError or asyncio.IncompleteReadError on a broken connection.

        A kept-alive connection the server closed meanwhile (uvicorn drops idle ones
        after 5 s) fails before any answer; the request is then sent once more on a new
        connection, as HTTP clients do.
        """
        if self._idle:
            try:
                return await self._send(*self._idle.pop(), path)
            except (OSError, asyncio.IncompleteReadError):
                pass
        return await self._send(*await asyncio.open_connection(self.host, self.port), path)

    async def _send(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str
    ) -> RawResponse:
        try:
            writer.write(b"GET " + path.encode() + b" " + self._head)
            head = await reader.readuntil(b"\r\n\r\n")
            length, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and b"close" in value.lower():
                    close = True
            body = await reader.readexactly(length)
        except BaseException:
            writer.close()
            raise
        if close:
            writer.close()
        else:
            self._idle.append((reader, writer))
        return RawResponse(int(head[9:12]), body)


async def _request(client: RawClient, url: str, due: float, timeout_s: float, run: Run) -> None:
    """Send one GET under an overall deadline and record it (never raises)."""
    start = time.perf_counter()
    fallback, cached = None, False
    try:
        async with asyncio.timeout(timeout_s):
            r = await client.get(url)
        code = r.status_code
        outcome = f"{code // 100}xx" if code != 429 else "429"
        if code == 200:
            body = r.json()
            fallback = body.get("reason") or body.get("fallback")
            cached = bool(body.get("cached"))
    except TimeoutError:
        outcome = "timeout"
    except (OSError, asyncio.IncompleteReadError, ValueError):
        outcome = "conn_error"
    finally:
        run.open -= 1
    run.samples.append(Sample(start - due, time.perf_counter() - start, outcome, fallback, cached))


async def open_loop(
    client: RawClient,
    next_url: Callable[[], str],
    rate: float,
    seconds: float,
    max_outstanding: int,
) -> Run:
    """Send `rate × seconds` requests on schedule, each under the client's timeout.

    Requests overdue when the loop wakes up are all sent at once (catch-up), so the
    offered rate holds while the generator keeps up (`lag_s` says when it did not). A
    request due while `max_outstanding` are open is skipped and counted, and sending
    stops `2 × timeout` after the schedule's end, so a run always ends by itself.
    """
    n = max(1, round(rate * seconds))
    urls = [next_url() for _ in range(n)]
    timeout = client.timeout_s
    run, tasks = Run(), set[asyncio.Task[None]]()
    t0 = time.perf_counter()
    stop_at = t0 + seconds + 2 * timeout
    i = 0
    while i < n and time.perf_counter() < stop_at:
        now = time.perf_counter()
        while i < n and t0 + i / rate <= now:
            if run.open >= max_outstanding:
                run.skipped += 1
            else:
                run.open += 1
                due = t0 + i / rate
                tasks.add(asyncio.create_task(_request(client, urls[i], due, timeout, run)))
            i += 1
        if i < n:
            await asyncio.sleep(max(0.0, t0 + i / rate - time.perf_counter()))
    run.skipped += n - i
    run.send_s = time.perf_counter() - t0
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=timeout + 5)
        for t in pending:
            t.cancel()
        run.unfinished = len(pending)
    run.wall_s = time.perf_counter() - t0
    return run


def _pct(xs: list[float], q: float) -> float | None:
    return round(float(np.percentile(xs, q)) * 1000, 2) if xs else None


def summarize(run: Run, rate: float, seconds: float) -> dict[str, Any]:
    """Throughput, latency percentiles (ms), outcome counts and shares of one step."""
    samples = run.samples
    ok = [s.latency_s for s in samples if s.outcome == "2xx"]
    rej = [s.latency_s for s in samples if s.outcome == "429"]
    counts = Counter(s.outcome for s in samples)
    n_ok = max(len(ok), 1)
    return {
        "offered_rps": rate,
        "sent": len(samples) + run.unfinished,
        "sent_rps": round((len(samples) + run.unfinished) / max(run.send_s, seconds), 1),
        "achieved_rps": round(len(ok) / max(run.wall_s, seconds), 1),
        "p50_ms": _pct(ok, 50),
        "p95_ms": _pct(ok, 95),
        "p99_ms": _pct(ok, 99),
        "max_ms": _pct(ok, 100),
        "p99_429_ms": _pct(rej, 99),
        "max_429_ms": _pct(rej, 100),
        "lag_p99_ms": _pct([s.lag_s for s in samples], 99),
        "counts": {k: counts.get(k, 0) for k in ("2xx", "429", "5xx", "4xx", "timeout")}
        | {"conn_error": counts.get("conn_error", 0)}
        | {"skipped": run.skipped, "unfinished": run.unfinished},
        "fallback_share": round(sum(s.fallback is not None for s in samples) / n_ok, 4),
        "fallback_reasons": dict(Counter(s.fallback for s in samples if s.fallback)),
        "cached_share": round(sum(s.cached for s in samples) / n_ok, 4),
    }


@dataclass
class Load:
    """What a step sends and to whom."""

    server: Server
    key: str
    """The API key sent as `Authorization: Bearer`."""
    timeout_s: float
    probe: httpx.AsyncClient
    """A separate small pool for `/metrics`, so a saturated load pool never blocks it."""
    users: ZipfSampler
    queries: ZipfSampler
    max_outstanding: int = 192
    """Most requests open at once (the pool's size); more are skipped and counted."""
    k: int = 10

    def client(self) -> RawClient:
        """A fresh keep-alive pool for one step (at most `max_outstanding` connections are
        open, as at most that many requests are; a pool left with hundreds of abandoned
        connections by an overload would slow the next step)."""
        return RawClient(self.server.base, {"Authorization": f"Bearer {self.key}"}, self.timeout_s)

    async def warm_up(self, route: str, rate: float, seconds: float) -> None:
        """Unrecorded load, so that the first step does not pay for cold caches."""
        next_url = self.recommend_url if route == "/recommend" else self.search_url
        async with self.client() as c:
            await open_loop(c, next_url, rate, seconds, 64)

    def recommend_url(self) -> str:
        """The next /recommend request."""
        return f"/recommend/{self.users.draw()}?k={self.k}"

    def search_url(self) -> str:
        """The next /search request."""
        return "/search?" + urllib.parse.urlencode({"q": self.queries.draw(), "k": self.k})


async def run_step(load: Load, route: str, rate: float, seconds: float) -> dict[str, Any]:
    """One open-loop step on `route`, with the server's metrics and both sides' CPU use."""
    next_url = load.recommend_url if route == "/recommend" else load.search_url
    before = await scrape(load.probe)
    me = psutil.Process()
    cpu0, srv0 = sum(me.cpu_times()[:2]), load.server.cpu_s()
    async with load.client() as client:
        run = await open_loop(client, next_url, rate, seconds, load.max_outstanding)
    cpu1, srv1 = sum(me.cpu_times()[:2]), load.server.cpu_s()
    after = await scrape(load.probe)
    out = summarize(run, rate, seconds)
    out |= {"server": server_view(before, after, route), "wall_s": round(run.wall_s, 2)}
    out["generator_bound"] = run.skipped > 0 or (out["lag_p99_ms"] or 0) > LAG_BOUND_MS
    out["cpu_pct"] = {
        "loadgen": round(100 * (cpu1 - cpu0) / run.wall_s, 1),
        "server": round(100 * (srv1 - srv0) / run.wall_s, 1),
    }
    c = out["counts"]
    print(
        f"  {route} {rate:>6g}/s: {out['achieved_rps']:>7.1f}/s ok, p50 {out['p50_ms']} "
        f"p99 {out['p99_ms']} ms, 429 {c['429']}, 5xx {c['5xx']}, timeout {c['timeout']}, "
        f"server p99 {out['server']['p99_ms']} ms, lag p99 {out['lag_p99_ms']} ms, "
        f"cpu {out['cpu_pct']}",
        flush=True,
    )
    return out


async def drain(load: Load, max_s: float = 60.0) -> float:
    """Wait until the server has no request in flight (bounded); seconds waited.

    Work the client gave up on is still done by the server; without this, one
    step's backlog would be measured as the next step's latency.
    """
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_s:
        m = await scrape(load.probe)
        if sum(v for (n, _), v in m.items() if n == "shopkeeper_inflight_requests") <= 0:
            break
        await asyncio.sleep(0.5)
    return round(time.perf_counter() - t0, 1)


async def sweep(load: Load, route: str, rates: list[float], seconds: float) -> list[Any]:
    """`run_step` at each rate, each step followed by a drain of the server's backlog."""
    steps = []
    for rate in rates:
        step = await run_step(load, route, rate, seconds)
        step["drain_s"] = await drain(load)
        steps.append(step)
    return steps


# -- the soak ----------------------------------------------------------------------------


class RssSampler:
    """Samples the server tree's RSS every `interval_s` in a thread until stopped."""

    def __init__(self, server: Server, interval_s: float) -> None:
        self.server, self.interval_s = server, interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.perf_counter()
        while True:
            self.samples.append((time.perf_counter() - t0, self.server.rss_mb()[0]))
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval_s + 5)


def rss_summary(samples: list[tuple[float, float]]) -> dict[str, Any]:
    """Start, end and max RSS (MB), and the least-squares slope in MB per minute."""
    t = np.array([s[0] for s in samples])
    m = np.array([s[1] for s in samples])
    slope = float(np.polyfit(t, m, 1)[0]) * 60 if len(samples) >= 3 else None
    return {
        "start_mb": round(float(m[0]), 1),
        "end_mb": round(float(m[-1]), 1),
        "max_mb": round(float(m.max()), 1),
        "slope_mb_per_min": None if slope is None else round(slope, 3),
        "samples": [[round(a, 1), round(b, 1)] for a, b in samples],
    }


async def soak(load: Load, rate: float, seconds: float, interval_s: float) -> dict[str, Any]:
    """A long step on /recommend with the server's RSS sampled throughout."""
    per_process_start = load.server.rss_mb()[1]
    with RssSampler(load.server, interval_s) as sampler:
        step = await run_step(load, "/recommend", rate, seconds)
    rss = rss_summary(sampler.samples)
    rss["per_process_mb"] = {
        "start": [round(x, 1) for x in per_process_start],
        "end": [round(x, 1) for x in load.server.rss_mb()[1]],
    }
    print(f"  soak RSS: { ({k: v for k, v in rss.items() if k != 'samples'}) }", flush=True)
    return {"step": step, "rss": rss}


# -- one configuration -------------------------------------------------------------------


async def _default_extras(load: Load, args: argparse.Namespace) -> dict[str, Any]:
    """Only in the default configuration: the /search sweep, overload, the soak."""
    out: dict[str, Any] = {}
    print("  /search sweep", flush=True)
    await load.warm_up("/search", args.warmup_rate, args.warmup_seconds)
    out["search"] = await sweep(load, "/search", args.search_rates, args.steps_seconds)
    out["overload"] = {}
    for route in ("/recommend", "/search"):
        print(f"  overload {route}", flush=True)
        step = await run_step(load, route, args.overload_rate, args.overload_seconds)
        step["drain_s"] = await drain(load)
        out["overload"][route] = step
    if args.soak_seconds > 0:
        print(f"  soak {args.soak_seconds:g} s at {args.soak_rate:g}/s", flush=True)
        out["soak"] = await soak(load, args.soak_rate, args.soak_seconds, args.rss_interval)
    return out


async def bench_config(
    name: str, args: argparse.Namespace, key: str, users: list[str], queries: list[str]
) -> dict[str, Any]:
    """Start a server with the configuration's flags, load it, always stop it."""
    log = args.out / f"serve-{name}.log"
    print(f"[{name}] starting {CONFIGS[name] or 'default'} on {args.workers} worker(s)", flush=True)
    server = start_server(args.home, args.workers, CONFIGS[name], log)
    try:
        ready_s = await wait_ready(server, args.start_timeout)
        probe = httpx.AsyncClient(base_url=server.base, timeout=10.0)
        async with probe:
            load = Load(
                server,
                key,
                args.client_timeout,
                probe,
                ZipfSampler(users, args.zipf, args.seed),
                ZipfSampler(queries, args.zipf, args.seed),
                args.max_outstanding,
            )
            await load.warm_up("/recommend", args.warmup_rate, args.warmup_seconds)
            out: dict[str, Any] = {"flags": CONFIGS[name], "ready_s": round(ready_s, 1)}
            out["recommend"] = await sweep(load, "/recommend", args.rates, args.steps_seconds)
            if name == "default":
                out |= await _default_extras(load, args)
            out["rss_end_mb"] = round(server.rss_mb()[0], 1)
        return out
    finally:
        server.stop()


# -- verdicts ----------------------------------------------------------------------------

_ERRORS = ("429", "5xx", "4xx", "timeout", "conn_error", "skipped", "unfinished")


def errors(step: dict[str, Any]) -> int:
    """Requests of a step that did not get a 2xx."""
    return sum(step["counts"].get(k, 0) for k in _ERRORS)


def sustainable(step: dict[str, Any], slo_ms: float) -> bool:
    """Kept up (≥ 95% of the offered rate answered 2xx), no errors, p99 within the SLO."""
    p99 = step["p99_ms"]
    return (
        errors(step) == 0
        and step["achieved_rps"] >= 0.95 * step["offered_rps"]
        and p99 is not None
        and p99 <= slo_ms
    )


def max_sustainable(steps: list[dict[str, Any]], slo_ms: float) -> float | None:
    """The highest offered rate that was sustainable (None: none was)."""
    ok = [s["offered_rps"] for s in steps if sustainable(s, slo_ms)]
    return max(ok) if ok else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def gains(configs: dict[str, Any], slo_ms: float) -> dict[str, Any]:
    """p99 ratios at each common rate, and max sustainable rates, between configurations."""
    by = {n: {s["offered_rps"]: s for s in c["recommend"]} for n, c in configs.items()}
    rates = sorted(set.intersection(*(set(v) for v in by.values()))) if by else []
    p99 = {n: {r: by[n][r]["p99_ms"] for r in rates} for n in by}
    out: dict[str, Any] = {
        "max_sustainable_rps": {
            n: max_sustainable(c["recommend"], slo_ms) for n, c in configs.items()
        }
    }
    if {"default", "no-cache"} <= by.keys():
        out["cache_p99_ratio"] = {r: _ratio(p99["no-cache"][r], p99["default"][r]) for r in rates}
    if {"no-cache", "no-cache-no-batching"} <= by.keys():
        out["batching_p99_ratio"] = {
            r: _ratio(p99["no-cache-no-batching"][r], p99["no-cache"][r]) for r in rates
        }
    return out


Verdict = tuple[str, bool | None, str]


def _target_p99(default: dict[str, Any], args: argparse.Namespace) -> Verdict:
    at = {s["offered_rps"]: s for s in default.get("recommend", [])}
    name = f"/recommend p99 ≤ {args.slo_ms:g} ms at {args.target_rate:g} req/s, no errors"
    step = at.get(args.target_rate)
    if step is None:
        return name, None, f"{args.target_rate:g} req/s not in --rates"
    ok = step["p99_ms"] is not None and step["p99_ms"] <= args.slo_ms and errors(step) == 0
    return name, ok, f"p99 {step['p99_ms']} ms, {errors(step)} non-2xx of {step['sent']}"


def _target_overload(route: str, step: dict[str, Any], args: argparse.Namespace) -> Verdict:
    c = step["counts"]
    bad = c["5xx"] + c["timeout"] + c["conn_error"] + c["unfinished"]
    fast = step["p99_429_ms"] is not None and step["p99_429_ms"] <= args.fast_429_ms
    why = (
        f"{c['429']} × 429 (p99 {step['p99_429_ms']} ms), {c['5xx']} × 5xx, "
        f"{c['timeout']} time-outs, {c['unfinished']} unfinished, {c['2xx']} × 2xx, "
        f"sent {step['sent_rps']}/s ({c['skipped']} not sent: generator at its cap)"
    )
    if step["generator_bound"]:
        why += "; generator-bound, so client-side latencies and time-outs include its queueing"
    name = (
        f"{route} past capacity ({args.overload_rate:g}/s): only fast 429s "
        f"(p99 ≤ {args.fast_429_ms:g} ms), no 5xx or time-outs"
    )
    return name, c["429"] > 0 and fast and bad == 0, why


def _target_soak(default: dict[str, Any], args: argparse.Namespace) -> Verdict:
    name = f"flat memory over the soak (slope ≤ {args.rss_slope_max:g} MB/min)"
    if "soak" not in default:
        return name, None, "no soak"
    r = default["soak"]["rss"]
    flat = r["slope_mb_per_min"] is not None and r["slope_mb_per_min"] <= args.rss_slope_max
    why = f"{r['start_mb']} → {r['end_mb']} MB (max {r['max_mb']}), {r['slope_mb_per_min']} MB/min"
    return name, flat, why


def targets(res: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """PASS/MISS against the service targets (or `not measured`)."""
    default = res["configs"].get("default", {})
    out = [_target_p99(default, args)]
    out += [_target_overload(r, s, args) for r, s in default.get("overload", {}).items()]
    out.append(_target_soak(default, args))
    return [{"target": t, "pass": v, "evidence": e} for t, v, e in out]


# -- report ------------------------------------------------------------------------------

_HEAD = (
    "| config | offered/s | sent/s | 2xx/s | p50 ms | p95 ms | p99 ms | server p50/p99 ms | "
    "2xx | 429 | 5xx | "
    "time-outs/conn. err. | not sent | fallback | cached | mean batch | lag p99 ms | "
    "CPU % gen/server |"
)


def _row(name: str, s: dict[str, Any]) -> str:
    c, v = s["counts"], s["server"]
    timeouts = f"{c['timeout'] + c['unfinished']}/{c['conn_error']}"
    cells = [
        name, f"{s['offered_rps']:g}{'*' if s['generator_bound'] else ''}",
        f"{s['sent_rps']:,.1f}", f"{s['achieved_rps']:,.1f}",
        s["p50_ms"], s["p95_ms"], s["p99_ms"], f"{v['p50_ms']}/{v['p99_ms']}", c["2xx"],
        c["429"], c["5xx"], timeouts,
        c["skipped"], f"{100 * s['fallback_share']:.1f}%",
        f"{100 * s['cached_share']:.1f}%", v["mean_batch_size"] or "–", s["lag_p99_ms"],
        f"{s['cpu_pct']['loadgen']:.0f}/{s['cpu_pct']['server']:.0f}",
    ]  # fmt: skip
    return "| " + " | ".join("–" if x is None else str(x) for x in cells) + " |"


def _table(rows: Iterator[tuple[str, dict[str, Any]]]) -> list[str]:
    return [_HEAD, _sep(), *(_row(n, s) for n, s in rows)]


def _sep() -> str:
    return "|:---|" + "---:|" * (_HEAD.count("|") - 2)


def _render_recommend(res: dict[str, Any]) -> list[str]:
    m, g = res["meta"], res["gains"]
    rows = ((n, s) for n, c in res["configs"].items() for s in c["recommend"])
    best = ", ".join(f"{n} {v}" for n, v in g["max_sustainable_rps"].items())
    lines = ["### /recommend", "", *_table(rows), ""]
    lines.append(
        f"Max sustainable rate (p99 ≤ {m['slo_ms']:g} ms, no errors, ≥ 95% kept up): {best}."
    )
    for name in ("cache_p99_ratio", "batching_p99_ratio"):
        if name in g:
            ratios = ", ".join(f"{r:g}/s ×{v}" for r, v in g[name].items())
            lines.append(f"{name.replace('_', ' ')} (without / with): {ratios}.")
    return lines


def _render_default(d: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    if "search" in d:
        lines += ["", "### /search (default)", "", *_table(("default", s) for s in d["search"])]
    if "overload" in d:
        lines += ["", "### Overload (default)", "", *_table(d["overload"].items()), ""]
        lines += [
            f"{r}: p99 of the 429 answers {s['p99_429_ms']} ms (max {s['max_429_ms']}); "
            f"the server drained its backlog {s.get('drain_s')} s after the step."
            for r, s in d["overload"].items()
        ]
    if "soak" in d:
        s, r = d["soak"]["step"], d["soak"]["rss"]
        pp = r["per_process_mb"]
        lines += ["", "### Soak (default, /recommend)", "", *_table([("soak", s)]), ""]
        lines.append(
            f"RSS of the server tree: start {r['start_mb']} MB, end {r['end_mb']} MB, max "
            f"{r['max_mb']} MB, slope {r['slope_mb_per_min']} MB/min "
            f"(per process start {pp['start']}, end {pp['end']})."
        )
    return lines


def render(res: dict[str, Any]) -> str:
    """The markdown report."""
    m = res["meta"]
    lines = [
        f"Commit {m['commit']}, {m['date']}, {m['machine']}, {m['workers']} worker(s), "
        f"load average {m['loadavg_start']} at the start; {m['users']:,} users (Zipf s = "
        f"{m['zipf']}), {m['queries']:,} queries; client timeout {m['client_timeout_s']} s. "
        "The load generator runs on the same cores as the server.",
        "",
        *_render_recommend(res),
        *_render_default(res["configs"].get("default", {})),
        "",
        f"`*`: the generator fell behind (lag p99 > {LAG_BOUND_MS:g} ms, or requests not "
        "sent at its cap): the client limited the step too, so its client-side latencies "
        "include the client's own queueing; the server columns come from its histogram.",
        "",
        "### Targets",
        "",
        "| target | verdict | evidence |",
        "|:---|:---|:---|",
    ]
    for t in res["targets"]:
        verdict = {True: "PASS", False: "MISS", None: "not measured"}[t["pass"]]
        lines.append(f"| {t['target']} | {verdict} | {t['evidence']} |")
    return "\n".join(lines) + "\n"


def meta(args: argparse.Namespace, users: list[str], queries: list[str]) -> dict[str, Any]:
    """Where and how the run was made."""
    git = ["git", "-C", str(REPO)]
    commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run([*git, "status", "--porcelain", "src"], capture_output=True, text=True)
    return {
        "commit": commit.stdout.strip() + (" (src modified)" if dirty.stdout.strip() else ""),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}",
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "workers": args.workers,
        "users": len(users),
        "queries": len(queries),
        "zipf": args.zipf,
        "client_timeout_s": args.client_timeout,
        "slo_ms": args.slo_ms,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    }


# -- main --------------------------------------------------------------------------------


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; the defaults make the full run (about 15 minutes)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    a = p.add_argument
    a("--home", type=Path, default=REPO / ".shopkeeper-demo", help="workspace (`make demo`)")
    a("--out", type=Path, default=REPO / "benchmarks" / "out")
    a("--workers", type=int, default=2)
    a("--configs", default=",".join(CONFIGS), help="subset of " + ",".join(CONFIGS))
    a("--rates", type=_floats, default=[50, 100, 200, 400, 800], help="/recommend req/s")
    a("--search-rates", type=_floats, default=[25, 50, 100, 200, 400])
    a("--steps-seconds", type=float, default=20.0, help="seconds per rate step")
    a("--warmup-seconds", type=float, default=5.0)
    a("--warmup-rate", type=float, default=50.0)
    a("--overload-rate", type=float, default=1000.0, help="past capacity (~600/s here)")
    a("--overload-seconds", type=float, default=10.0)
    a("--soak-seconds", type=float, default=300.0, help="0: no soak")
    a("--soak-rate", type=float, default=200.0)
    a("--rss-interval", type=float, default=5.0, help="seconds between RSS samples")
    a("--client-timeout", type=float, default=2.0)
    a("--max-outstanding", type=int, default=192, help="client connections / open requests")
    a("--start-timeout", type=float, default=180.0)
    a("--zipf", type=float, default=1.0, help="exponent of user and query popularity")
    a("--n-queries", type=int, default=2000)
    a("--typo-share", type=float, default=0.2)
    a("--seed", type=int, default=0)
    a("--slo-ms", type=float, default=30.0, help="the p99 target of /recommend")
    a("--target-rate", type=float, default=200.0, help="the rate the p99 target is checked at")
    a("--fast-429-ms", type=float, default=50.0, help="a 429 p99 at most this is fast")
    a("--rss-slope-max", type=float, default=1.0, help="MB/min counted as flat")
    args = p.parse_args(argv)
    unknown = set(args.configs.split(",")) - CONFIGS.keys()
    if unknown:
        p.error(f"unknown configs {sorted(unknown)}")
    return args


async def run(args: argparse.Namespace, key: str) -> dict[str, Any]:
    """Every configuration in turn, then the comparisons and verdicts.

    SIGTERM cancels it like Ctrl-C does, so every server is stopped on the way out.
    """
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    users = read_users()
    queries = make_queries(read_titles(args.home), args.n_queries, args.typo_share, args.seed)
    res: dict[str, Any] = {"meta": meta(args, users, queries), "configs": {}}
    for name in args.configs.split(","):
        res["configs"][name] = await bench_config(name, args, key, users, queries)
    res["gains"] = gains(res["configs"], args.slo_ms)
    res["targets"] = targets(res, args)
    return res


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; write JSON and markdown; print the markdown."""
    args = parse_args(argv)
    if not (args.home / "catalog.duckdb").exists():
        print(f"no workspace at {args.home}: run `make demo` first (or pass --home)")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    t0 = time.perf_counter()
    key = create_key(args.home)
    try:
        res = asyncio.run(run(args, key["key"]))
    finally:
        revoke_key(args.home, key["key_id"])
    res["meta"]["wall_s"] = round(time.perf_counter() - t0, 1)
    (args.out / "serve-results.json").write_text(json.dumps(res, indent=1, default=str))
    md = render(res)
    (args.out / "serve-results.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
