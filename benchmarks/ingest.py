"""Ingest benchmark: Shopkeeper vs the DuckDB floor vs a plain pandas script.

For each size it generates (and caches) a synthetic event CSV with planted anomalies, then
runs in separate subprocesses, measuring wall time and the peak RSS of the whole process
tree (psutil, polled every 50 ms):

* ours: `shopkeeper --home <fresh> ingest FILE --adapter generic --kind events --json`;
* floor: DuckDB reading the same CSV (all text, rejects stored, same memory limit and
  threads) and writing zstd Parquet, with no cleaning at all;
* pandas: `benchmarks/pandas_baseline.py` (the same rules, written plainly).

Counts of ours and pandas are checked against the planted ground truth. Results go to
`<out>/ingest-results.json` and `<out>/ingest-results.md`. `--profile` also runs ours
in-process at each size and reports where the time goes: every SQL statement with its
top DuckDB operators, and the cost of each column expression of the slowest statement.

    python benchmarks/ingest.py --sizes 1M,5M,20M --out benchmarks/out --skip-pandas-above 5M
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
TOOLS = ("ours", "floor", "pandas")
TARGET_FLOOR_RATIO = 2.5
TARGET_PANDAS_RATIO = 10.0
TARGET_RSS_20M = 1.5e9
_COUNTS = ("input_rows", "clean_rows", "quarantined_rows", "duplicate_rows")


def parse_size(text: str) -> int:
    """`1M` -> 1_000_000, `500K` -> 500_000, `2500` -> 2500."""
    t = text.strip().upper().replace("_", "")
    mult = {"K": 1_000, "M": 1_000_000, "G": 1_000_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def size_label(n: int) -> str:
    """1_000_000 -> `1M`."""
    for unit, div in (("M", 1_000_000), ("K", 1_000)):
        if n % div == 0:
            return f"{n // div}{unit}"
    return str(n)


def log(msg: str) -> None:
    """A progress line with the time of day."""
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class Run:
    """One measured subprocess."""

    label: str
    wall_s: float = 0.0
    peak_rss: int = 0
    """Peak of the summed RSS of the process and its children, bytes."""
    cpu_s: float = 0.0
    returncode: int | None = None
    timed_out: bool = False
    result: dict[str, Any] | None = None
    error: str | None = None
    check: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, float]] = field(default_factory=list)
    """Wall time and peak RSS of every repeat (the fields above: median wall, max RSS)."""

    @property
    def ok(self) -> bool:
        """Finished with exit status 0 and a parsed result."""
        return self.returncode == 0 and self.result is not None


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


def _kill_tree(proc: psutil.Process) -> None:
    for p in [*proc.children(recursive=True), proc]:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            continue


def measure(label: str, cmd: list[str], env: dict[str, str], timeout: float) -> Run:
    """Run `cmd`, polling the RSS of its process tree; stdout is parsed as JSON."""
    run = Run(label)
    log(f"{label}: {' '.join(cmd[:2])} … ")
    before = os.times()
    t0 = time.perf_counter()
    out_path = Path(env["BENCH_TMP"]) / "stdout.txt"
    err_path = Path(env["BENCH_TMP"]) / "stderr.txt"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        popen = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO)
        proc = psutil.Process(popen.pid)
        next_note = 15.0
        while popen.poll() is None:
            with contextlib.suppress(psutil.NoSuchProcess):
                run.peak_rss = max(run.peak_rss, _tree_rss(proc))
            elapsed = time.perf_counter() - t0
            if elapsed > timeout:
                _kill_tree(proc)
                popen.wait()
                run.timed_out = True
                break
            if elapsed > next_note:
                log(f"  … {label} running {elapsed:.0f} s, RSS {run.peak_rss / 1e6:.0f} MB")
                next_note += 15.0
            time.sleep(0.05)
    run.wall_s = time.perf_counter() - t0
    after = os.times()
    run.cpu_s = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    run.returncode = popen.returncode
    stdout = out_path.read_text(errors="replace")
    if run.returncode == 0:
        try:
            parsed = json.loads(stdout)
            run.result = parsed[0] if isinstance(parsed, list) else parsed
        except json.JSONDecodeError as exc:
            run.error = f"unparseable output: {exc}: {stdout[-500:]}"
    else:
        tail = err_path.read_text(errors="replace")[-2000:]
        run.error = "timed out" if run.timed_out else f"exit {run.returncode}: {tail}"
    status = "ok" if run.ok else f"FAILED ({(run.error or '')[:300]})"
    log(f"{label}: {status}; {run.wall_s:.2f} s, peak RSS {run.peak_rss / 1e6:.0f} MB")
    return run


def check_counts(result: dict[str, Any] | None, truth: dict[str, Any]) -> dict[str, Any]:
    """Compare a run's counts and reasons with the planted ground truth."""
    if result is None:
        return {"match": False, "diff": "no result"}
    diff: dict[str, Any] = {}
    for k in _COUNTS:
        if result.get(k) != truth[k]:
            diff[k] = {"got": result.get(k), "planted": truth[k]}
    got = result.get("reasons", {})
    for code in sorted(set(got) | set(truth["reasons"])):
        if got.get(code, 0) != truth["reasons"].get(code, 0):
            diff[code] = {"got": got.get(code, 0), "planted": truth["reasons"].get(code, 0)}
    return {"match": not diff, "diff": diff}


def ensure_file(out: Path, rows: int, seed: int) -> tuple[Path, dict[str, Any]]:
    """The cached synthetic file of `rows` rows and its ground truth (generated if needed)."""
    from shopkeeper.testing import SyntheticEventsConfig, generate_events

    cfg = SyntheticEventsConfig(rows=rows, seed=seed)
    path = out / f"events-{size_label(rows)}-seed{seed}.csv"
    truth_path = path.with_suffix(".truth.json")
    if path.exists() and truth_path.exists():
        truth = json.loads(truth_path.read_text())
        if truth["config"] == cfg.model_dump(mode="json") and (
            truth["size_bytes"] == path.stat().st_size
        ):
            log(f"{size_label(rows)}: cached {path.name} ({truth['size_bytes'] / 1e6:.0f} MB)")
            return path, truth
    log(f"{size_label(rows)}: generating {path.name} …")
    t0 = time.perf_counter()
    planted = generate_events(path, cfg)
    truth = planted.to_dict()
    truth["generate_s"] = round(time.perf_counter() - t0, 2)
    truth_path.write_text(json.dumps(truth, indent=2))
    log(f"{size_label(rows)}: generated {planted.size_bytes / 1e6:.0f} MB in "
        f"{truth['generate_s']} s")  # fmt: skip
    return path, truth


def _fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def _shopkeeper_cmd() -> list[str]:
    script = Path(sys.executable).with_name("shopkeeper")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from shopkeeper.cli import main; sys.exit(main())"]


def tool_command(tool: str, csv: Path, out_dir: Path) -> list[str]:
    """The command line of `tool` (ours, floor or pandas) cleaning `csv` into `out_dir`."""
    if tool == "ours":
        return [*_shopkeeper_cmd(), "--home", str(out_dir), "ingest", str(csv), "--adapter",
                "generic", "--kind", "events", "--json"]  # fmt: skip
    if tool == "floor":
        return [sys.executable, str(Path(__file__).resolve()), "--floor-worker", str(csv),
                str(out_dir)]  # fmt: skip
    return [sys.executable, str(REPO / "benchmarks" / "pandas_baseline.py"), str(csv),
            "--out", str(out_dir)]  # fmt: skip


def run_size(args: argparse.Namespace, rows: int, env: dict[str, str]) -> dict[str, Any]:
    """Generate, then measure ours, the floor and (if small enough) pandas at one size."""
    label = size_label(rows)
    path, truth = ensure_file(args.out, rows, args.seed)
    work = args.out / "work"
    runs: dict[str, Run] = {}
    env = {**env, "BENCH_TMP": str(_fresh_dir(work / "tmp"))}
    tools = {name: functools.partial(tool_command, name, path) for name in TOOLS}
    if rows > args.skip_pandas_above:
        del tools["pandas"]
        log(f"{label} pandas: skipped (--skip-pandas-above {size_label(args.skip_pandas_above)})")
    samples: dict[str, list[Run]] = {name: [] for name in tools}
    for i in range(args.repeat):  # interleaved, so that every tool sees the same load
        for name, make_cmd in tools.items():
            if samples[name] and not samples[name][-1].ok:
                continue  # a tool that failed once is reported as failed
            tag = f" (run {i + 1}/{args.repeat})" if args.repeat > 1 else ""
            workdir = work / f"{name}-{label}"
            cmd = make_cmd(_fresh_dir(workdir))
            samples[name].append(measure(f"{label} {name}{tag}", cmd, env, args.timeout))
            shutil.rmtree(workdir, ignore_errors=True)
    for name, taken in samples.items():
        if name != "floor":
            for r in taken:
                r.check = check_counts(r.result, truth)
        runs[name] = aggregate(f"{label} {name}", taken)
        if name != "floor":
            runs[name].check["all_runs_match"] = all(r.check["match"] for r in taken)
    for name in ("ours", "pandas"):
        if name in runs and runs[name].ok and not runs[name].check["match"]:
            log(f"{label} {name}: COUNTS DIFFER from ground truth: {runs[name].check['diff']}")
    entry: dict[str, Any] = {
        "git": _git_state(),
        "rows": rows, "size": label, "file": str(path), "file_bytes": truth["size_bytes"],
        "truth": {k: truth[k] for k in (*_COUNTS, "reasons")},
        "runs": {k: asdict(v) for k, v in runs.items()},
    }  # fmt: skip
    if args.profile:
        entry["profile"] = run_profile(path, work, label, env, args.timeout)
    return entry


def aggregate(label: str, samples: list[Run]) -> Run:
    """The run with the median wall time (the failed one if any failed), with the max RSS."""
    if not samples[-1].ok:
        best = samples[-1]
    else:
        best = sorted(samples, key=lambda r: r.wall_s)[(len(samples) - 1) // 2]
    best.samples = [{"wall_s": round(r.wall_s, 3), "peak_rss": r.peak_rss,
                     "cpu_s": round(r.cpu_s, 3)} for r in samples]  # fmt: skip
    best.peak_rss = max(r.peak_rss for r in samples)
    if len(samples) > 1 and best.ok:
        walls = ", ".join(f"{w:.2f}" for w in sorted(r.wall_s for r in samples))
        log(f"{label}: median {best.wall_s:.2f} s of {walls}; max peak RSS "
            f"{best.peak_rss / 1e6:.0f} MB")  # fmt: skip
    return best


def _failure(run: Run) -> str:
    if run.timed_out:
        return f"timed out after {run.wall_s:.0f} s"
    first = (run.error or "").split(":", 1)[-1].strip().splitlines()
    return f"failed after {run.wall_s:.0f} s: {first[0][:120] if first else 'no output'}"


def _all_match(run: Run | None) -> bool | None:
    if run is None or not run.ok:
        return None
    return bool(run.check.get("all_runs_match", run.check.get("match")))


def _ratio(a: Run | None, b: Run | None) -> float | None:
    if a is None or b is None or not a.ok or not b.ok or b.wall_s <= 0:
        return None
    return a.wall_s / b.wall_s


def summarize(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary row per size with rates, RSS and the two ratios."""
    rows = []
    for e in entries:
        runs = {k: Run(**{f: v[f] for f in Run.__dataclass_fields__ if f in v}) for k, v in
                e["runs"].items()}  # fmt: skip
        ours, floor, pdr = runs.get("ours"), runs.get("floor"), runs.get("pandas")
        row: dict[str, Any] = {
            "size": e["size"],
            "rows": e["rows"],
            "file_mb": e["file_bytes"] / 1e6,
        }
        for name, r in (("ours", ours), ("floor", floor), ("pandas", pdr)):
            row[f"{name}_s"] = r.wall_s if r and r.ok else None
            row[f"{name}_rows_per_s"] = e["rows"] / r.wall_s if r and r.ok else None
            row[f"{name}_rss_mb"] = r.peak_rss / 1e6 if r and r.ok else None
            row[f"{name}_cpu_s"] = r.cpu_s if r and r.ok else None
        row["ours_over_floor"] = _ratio(ours, floor)
        row["pandas_over_ours"] = _ratio(pdr, ours)
        row["ours_counts_match"] = _all_match(ours)
        row["pandas_counts_match"] = _all_match(pdr)
        row["failures"] = {k: _failure(r) for k, r in runs.items() if not r.ok}
        rows.append(row)
    return rows


def _fmt(v: Any, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def markdown(summary: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The results table, the targets and how they fare."""
    head = (
        "| rows | file MB | ours s | ours rows/s | ours peak RSS MB | floor s | floor RSS MB "
        "| ours/floor | pandas s | pandas rows/s | pandas RSS MB | pandas/ours | counts |"
    )
    lines = [head, "|" + "---:|" * 12 + ":---|"]
    for r in summary:
        word = {True: "exact", False: "DIFFER", None: "–"}
        counts = "ours " + word[r["ours_counts_match"]]
        if r["pandas_counts_match"] is not None:
            counts += ", pandas " + word[r["pandas_counts_match"]]
        for name, why in r.get("failures", {}).items():
            counts += f"; **{name} {why}**"
        lines.append(
            f"| {r['size']} | {r['file_mb']:.0f} | {_fmt(r['ours_s'], '.1f')} | "
            f"{_fmt(r['ours_rows_per_s'], ',.0f')} | {_fmt(r['ours_rss_mb'], ',.0f')} | "
            f"{_fmt(r['floor_s'], '.1f')} | {_fmt(r['floor_rss_mb'], ',.0f')} | "
            f"{_fmt(r['ours_over_floor'], '.2f')}× | {_fmt(r['pandas_s'], '.1f')} | "
            f"{_fmt(r['pandas_rows_per_s'], ',.0f')} | {_fmt(r['pandas_rss_mb'], ',.0f')} | "
            f"{_fmt(r['pandas_over_ours'], '.2f')}× | {counts} |"
        )
    lines += ["", "Targets:", *(f"- {t}" for t in verdicts(summary))]
    lines += ["", f"Times: median of {meta.get('repeat', 1)} run(s); RSS: the highest peak. "
              f"Machine: {meta['machine']}; memory limit {meta['memory_limit']}, threads "
              f"{meta['threads']}; shopkeeper at {meta['git']}."]  # fmt: skip
    return "\n".join(lines) + "\n"


def verdicts(summary: list[dict[str, Any]]) -> list[str]:
    """PASS/MISS per target and size."""
    out = []
    for r in summary:
        for name, why in r.get("failures", {}).items():
            out.append(f"{r['size']}: {name} {why} MISS")
        ratio = r["ours_over_floor"]
        if ratio is not None:
            ok = "PASS" if ratio <= TARGET_FLOOR_RATIO else "MISS"
            out.append(
                f"{r['size']}: ours/floor {ratio:.2f}× (target ≤ {TARGET_FLOOR_RATIO}×) {ok}"
            )
        speedup = r["pandas_over_ours"]
        if speedup is not None:
            ok = "PASS" if speedup >= TARGET_PANDAS_RATIO else "MISS"
            out.append(f"{r['size']}: pandas/ours {speedup:.2f}× (target ≥ "
                       f"{TARGET_PANDAS_RATIO:.0f}×) {ok}")  # fmt: skip
        if r["rows"] >= 20_000_000 and r["ours_rss_mb"] is not None:
            ok = "PASS" if r["ours_rss_mb"] * 1e6 < TARGET_RSS_20M else "MISS"
            out.append(f"{r['size']}: ours peak RSS {r['ours_rss_mb']:,.0f} MB (target < "
                       f"{TARGET_RSS_20M / 1e6:,.0f} MB) {ok}")  # fmt: skip
    return out


def _git_state() -> str:
    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True,
                              check=False).stdout.strip()  # fmt: skip

    diff = git("diff", "HEAD", "--", "src")
    state = git("rev-parse", "--short", "HEAD") or "unknown"
    if diff:
        state += f"+dirty:{hashlib.sha256(diff.encode()).hexdigest()[:8]}"
    return state


def _meta(env: dict[str, str]) -> dict[str, Any]:
    import duckdb
    import pandas
    import pyarrow

    return {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {psutil.cpu_count()} CPUs, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, Python {platform.python_version()}, "
        f"DuckDB {duckdb.__version__}, pandas {pandas.__version__}, pyarrow {pyarrow.__version__}",
        "memory_limit": env.get("SHOPKEEPER_MEMORY_LIMIT", "1GB"),
        "threads": env.get("SHOPKEEPER_THREADS", "all cores"),
        "git": _git_state(),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
    }


# -- workers (run in their own process) ---------------------------------------------------


FLOOR_SOURCE = "read_csv('{csv}', all_varchar = true, store_rejects = true)"
"""The floor's read of the CSV (format with `csv`)."""
PARQUET = "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"
"""The floor's Parquet options."""


def worker_connection(out_dir: Path) -> Any:
    """A DuckDB connection under the pipeline's settings, spilling into `out_dir`."""
    import duckdb

    config: dict[str, Any] = {
        "memory_limit": os.environ.get("SHOPKEEPER_MEMORY_LIMIT", "1GB"),
        "temp_directory": str(out_dir / "spill"),
        "preserve_insertion_order": True,
    }
    if os.environ.get("SHOPKEEPER_THREADS"):
        config["threads"] = int(os.environ["SHOPKEEPER_THREADS"])
    return duckdb.connect(":memory:", config=config)


def floor_worker(csv: Path, out_dir: Path) -> None:
    """CSV -> Parquet with DuckDB and no cleaning, under the pipeline's settings."""
    con = worker_connection(out_dir)
    target = out_dir / "events.parquet"
    con.execute(f"COPY (SELECT * FROM {FLOOR_SOURCE.format(csv=csv)}) TO '{target}' {PARQUET}")
    n = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()
    print(json.dumps({"rows_written": int(n[0]) if n else 0}))


class _TimedConnection:
    """Wraps the pipeline's DuckDB connection: times statements, keeps operator profiles."""

    def __init__(self, con: Any, profile_file: Path, explode: str | None) -> None:
        self._con = con
        self._file = profile_file
        self._explode = explode
        self.statements: list[dict[str, Any]] = []
        self.expressions: list[dict[str, Any]] = []
        self.failed: dict[str, Any] | None = None
        con.execute("SET enable_profiling = 'json'")
        con.execute(f"SET profiling_output = '{profile_file}'")

    def execute(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        if self._explode and _head(sql) == self._explode:
            self.expressions = expression_costs(self._con, sql)
        self._file.unlink(missing_ok=True)
        t0 = time.perf_counter()
        try:
            res = self._con.execute(sql, *args, **kwargs)
        except Exception:
            self.failed = {"after_s": round(time.perf_counter() - t0, 3), "sql": _head(sql, 300)}
            raise
        dt = time.perf_counter() - t0
        ops: list[dict[str, Any]] = []
        if self._file.exists():
            with contextlib.suppress(json.JSONDecodeError):
                _operators(json.loads(self._file.read_text()).get("operator", []), ops)
        ops.sort(key=lambda o: -o["cpu_s"])
        self.statements.append({"seconds": round(dt, 3), "sql": _head(sql, 160),
                                "sql_chars": len(sql), "top_operators": ops[:4]})  # fmt: skip
        return res

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)


def _head(sql: str, n: int = 60) -> str:
    return re.sub(r"\s+", " ", sql).strip()[:n]


def _operators(nodes: list[dict[str, Any]], out: list[dict[str, Any]]) -> None:
    for node in nodes:
        extra = node.get("extra_info") or {}
        detail = {k: v for k, v in extra.items() if k in ("Function", "Table", "Projections",
                  "Aggregates", "Groups", "Partition By", "Join Type", "Conditions")}  # fmt: skip
        cpu = round(float(node.get("timing", 0)), 3)
        rows = node.get("intermediate_rows")
        out.append({"operator": node.get("name"), "cpu_s": cpu, "rows": rows,
                    "detail": str(detail)[:300]})  # fmt: skip
        _operators(node.get("children", []), out)


def expression_costs(con: Any, sql: str) -> list[dict[str, Any]]:
    """Seconds to evaluate each projection of the statement's widest SELECT on its input.

    Each projection runs alone as `SELECT count(expr) FROM (input)`; the time of a bare
    scan of the input is subtracted.
    """
    import sqlglot
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        return [{"error": f"cannot parse: {exc}"}]
    selects = list(tree.find_all(exp.Select))
    widest = max(selects, key=lambda s: len(s.expressions))
    source = widest.copy()
    source.set("expressions", [exp.Star()])
    base = source.sql("duckdb")
    out = []
    t0 = time.perf_counter()
    con.execute(f"SELECT count(*) FROM ({base})").fetchall()
    scan = time.perf_counter() - t0
    out.append({"expression": "(scan of the input)", "seconds": round(scan, 3)})
    for proj in widest.expressions:
        name = proj.alias_or_name
        body = proj.this if isinstance(proj, exp.Alias) else proj
        q = f"SELECT count({body.sql('duckdb')}) FROM ({base})"
        t0 = time.perf_counter()
        try:
            con.execute(q).fetchall()
            net = max(time.perf_counter() - t0 - scan, 0.0)
            out.append({"expression": name, "seconds": round(net, 3)})
        except Exception as exc:  # noqa: BLE001 - a profile reports, never fails
            out.append({"expression": name, "error": str(exc).splitlines()[0][:200]})
    return out


def profile_worker(csv: Path, home: Path, result_file: Path, explode: str | None) -> None:
    """Ingest in-process with every statement timed; write the profile as JSON."""
    import shopkeeper.warehouse._loader as loader
    from shopkeeper.warehouse import IngestRequest, Workspace, ingest

    original = loader.processing_connection
    wrapped: list[_TimedConnection] = []

    def timed(*a: Any, **k: Any) -> Any:
        con = _TimedConnection(original(*a, **k), result_file.with_suffix(".op.json"), explode)
        wrapped.append(con)
        return con

    loader.processing_connection = timed
    t0 = time.perf_counter()
    report: dict[str, Any] = {}
    try:
        report["result"] = ingest(Workspace.at(home), IngestRequest(csv, "generic", "events"))[0]
    except Exception as exc:  # noqa: BLE001 - report which statement failed, and how
        report["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        report["failed_statement"] = wrapped[0].failed if wrapped else None
    finally:
        total = time.perf_counter() - t0
        stmts = wrapped[0].statements if wrapped else []
        failed = wrapped[0].failed if wrapped else None
        sql_s = sum(s["seconds"] for s in stmts) + (failed["after_s"] if failed else 0.0)
        report.update({
            "total_s": round(total, 3), "sql_s": round(sql_s, 3),
            "python_s": round(total - sql_s, 3),
            "statements": sorted(stmts, key=lambda s: -s["seconds"]),
            "expressions": wrapped[0].expressions if wrapped else [],
        })  # fmt: skip
        result_file.write_text(json.dumps(report, indent=2))


def run_profile(path: Path, work: Path, label: str, env: dict[str, str],
                timeout: float) -> dict[str, Any]:  # fmt: skip
    """Two profiled in-process runs: statements, then the slowest statement's expressions."""
    out = _fresh_dir(work / f"profile-{label}")
    profile: dict[str, Any] = {}
    explode = None
    for attempt in ("statements", "expressions"):
        home = _fresh_dir(out / f"home-{attempt}")
        result_file = out / f"{attempt}.json"
        cmd = [sys.executable, __file__, "--profile-worker", str(path), str(home),
               str(result_file), explode or ""]  # fmt: skip
        log(f"{label} profile ({attempt}) …")
        proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True,
                              timeout=timeout, check=False)  # fmt: skip
        if not result_file.exists():
            profile[attempt] = {"error": proc.stderr[-2000:]}
            break
        data = json.loads(result_file.read_text())
        if "error" in data:
            profile.update({k: data[k] for k in ("total_s", "sql_s", "python_s", "statements",
                                                 "error", "failed_statement")})  # fmt: skip
            log(f"{label} profile: FAILED {data['error']}; in statement "
                f"{data['failed_statement']}")  # fmt: skip
            _print_statements(label, data)
            break
        if attempt == "statements":
            profile.update({k: data[k] for k in ("total_s", "sql_s", "python_s", "statements")})
            explode = _head(data["statements"][0]["sql"]) if data["statements"] else None
            _print_statements(label, data)
        else:
            profile["slowest_statement_expressions"] = data["expressions"]
            _print_expressions(label, data["expressions"])
    shutil.rmtree(out, ignore_errors=True)
    return profile


def _print_statements(label: str, data: dict[str, Any]) -> None:
    log(f"{label} profile: {data['total_s']:.2f} s in-process, SQL {data['sql_s']:.2f} s, "
        f"Python {data['python_s']:.2f} s (with DuckDB profiling on)")  # fmt: skip
    for s in data["statements"][:8]:
        print(f"  {s['seconds']:7.2f} s  {s['sql'][:110]}")
        for op in s["top_operators"][:3]:
            print(f"             {op['operator']:<22} cpu {op['cpu_s']:7.2f} s  rows {op['rows']}")


def _print_expressions(label: str, expressions: list[dict[str, Any]]) -> None:
    log(f"{label} profile: cost of each expression of the slowest statement, net of the scan")
    ranked = sorted(expressions, key=lambda e: -e.get("seconds", 0))
    for e in ranked[:15]:
        value = f"{e['seconds']:7.2f} s" if "seconds" in e else f"error {e.get('error')}"
        print(f"  {value}  {e['expression']}")


def main(argv: list[str] | None = None) -> int:
    """Command line; see the module docstring."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--floor-worker"]:
        floor_worker(Path(argv[1]), Path(argv[2]))
        return 0
    if argv[:1] == ["--profile-worker"]:
        profile_worker(Path(argv[1]), Path(argv[2]), Path(argv[3]), argv[4] or None)
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--sizes", default="1M,5M,20M", help="comma-separated, e.g. 1M,5M,20M")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out")
    ap.add_argument("--skip-pandas-above", type=parse_size, default=parse_size("5M"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per tool and size, interleaved; the median is reported")  # fmt: skip
    ap.add_argument("--profile", action="store_true", help="also profile ours at each size")
    args = ap.parse_args(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("SHOPKEEPER_MEMORY_LIMIT", "1GB")
    meta = _meta(env)
    meta["repeat"] = args.repeat
    log(f"ingest benchmark: sizes {args.sizes}; {meta['machine']}; shopkeeper {meta['git']}")
    entries = []
    for rows in (parse_size(s) for s in args.sizes.split(",")):
        entries.append(run_size(args, rows, env))
        summary = summarize(entries)  # written after every size: a partial run still counts
        report = {"meta": meta, "summary": summary, "sizes": entries}
        (args.out / "ingest-results.json").write_text(json.dumps(report, indent=2))
        (args.out / "ingest-results.md").write_text(markdown(summary, meta))
    shutil.rmtree(args.out / "work", ignore_errors=True)
    print()
    print((args.out / "ingest-results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
