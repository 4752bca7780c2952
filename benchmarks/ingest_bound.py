"""How close a DuckDB cleaning plan can get to the ingest floor: a lower bound.

The ingest benchmark's target is ours ≤ 2.5× the floor (DuckDB reading the CSV as text
and writing zstd Parquet). This script measures plans that do *less* than the cleaning
rules need:

- ``floor``: the benchmark's floor (``ingest.py --floor-worker``), read and write;
- ``typed``: the same read, the columns trimmed and cast to their types, one write;
- ``+dup`` / ``+near`` / ``+bots``: ``typed`` plus one of the three windows the rules
  need (exact duplicates by row hash, near-duplicates as the gap to the previous event of
  the same user, item and type, events per user in the trailing 60 seconds), each
  simplified below what the rule needs (no exact compare after the hash, no per-user
  maximum, no quarantine of what they drop), in the same statement;
- ``+windows``: ``typed`` with all three in one statement;
- ``+windows1``: the same with one sort shared by two of them: duplicates as a row hash
  equal to the previous row's in the user's time order (which misses a duplicate that a
  different event at the same second separates) and the bot window over the same order;
- ``+prefiltered``: the typed rows stored once (as ours stores its mapped table), the three
  windows only over the rows a hash aggregate picks (row hashes, user-item-type keys
  seen twice, users over the cap in some pair of adjacent minutes: ours's prefilters),
  then one write of the rows not flagged;
- ``ours``: ``shopkeeper ingest`` itself (the CLI, as in ``ingest.py``);
- ``pandas`` (with ``--pandas``): ``pandas_baseline.py``, the same rules in pandas; the
  benchmark's other target, ours at least 10× faster than it, puts a ceiling of a tenth
  of its time on ours.

Every plan runs in its own process, the rounds interleaved, and each is reported as a
ratio to the floor of its own round. The cheapest of the three plans with all the
windows is a lower bound for a pipeline that also pseudonymizes, normalizes text, masks
PII, checks the row rules, writes the quarantine and the quality report.

    .venv/bin/python benchmarks/ingest_bound.py --size 5M --out benchmarks/out --repeat 2 --pandas
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import (
    FLOOR_SOURCE,
    PARQUET,
    ensure_file,
    log,
    parse_size,
    size_label,
    tool_command,
    worker_connection,
)

_COLUMNS = "user_id, item_id, event_type, ts, session_id, query, value, quantity, price, currency"
_TYPED = f"""
    SELECT hash({_COLUMNS}) AS _h,
        hash(trim(user_id)) AS _u,
        TRY_CAST(item_id AS BIGINT) AS item_id,
        lower(trim(event_type)) AS event_type,
        TRY_CAST(ts AS TIMESTAMP) AS ts,
        nullif(trim(session_id), '') AS session_id,
        nullif(trim(query), '') AS query,
        TRY_CAST(value AS DOUBLE) AS value,
        TRY_CAST(quantity AS INTEGER) AS quantity,
        TRY_CAST(price AS DOUBLE) AS price,
        upper(trim(currency)) AS currency
    FROM {{src}}"""
_WINDOWS = {
    "dup": "row_number() OVER (PARTITION BY _h) > 1",
    "near": "ts - lag(ts) OVER (PARTITION BY _u, item_id, event_type ORDER BY ts)"
    " <= INTERVAL 2 SECONDS",
    "bots": "count(*) OVER (PARTITION BY _u ORDER BY ts"
    " RANGE BETWEEN INTERVAL 60 SECONDS PRECEDING AND CURRENT ROW) > 60",
}
PLANS = (
    "floor",
    "typed",
    "+dup",
    "+near",
    "+bots",
    "+windows",
    "+windows1",
    "+prefiltered",
    "ours",
)
_WITH_WINDOWS = ("+windows", "+windows1", "+prefiltered")


def plan_sql(plan: str, csv: Path, target: Path) -> list[str]:
    """The statements of `plan` (every plan but ``floor``, ``ours`` and ``pandas``)."""
    if plan == "+prefiltered":
        return _prefiltered(csv, target)
    return [_fused_sql(plan, csv, target)]


def _prefiltered(csv: Path, target: Path) -> list[str]:
    src = FLOOR_SOURCE.format(csv=csv)
    near = "_u, item_id, event_type"
    minutes = (
        "SELECT _u, floor(epoch(ts) / 60) AS _m, count(*) AS _n FROM t "
        "WHERE ts IS NOT NULL GROUP BY ALL"
    )
    return [
        f"CREATE TEMP TABLE t AS {_TYPED.format(src=src)}",
        "CREATE TEMP TABLE f AS "
        "SELECT rowid AS _r FROM t WHERE _h IN (SELECT _h FROM t GROUP BY 1 HAVING count(*) > 1) "
        "QUALIFY row_number() OVER (PARTITION BY _h ORDER BY rowid) > 1 "
        f"UNION ALL SELECT rowid FROM t WHERE hash({near}) IN "
        f"(SELECT hash({near}) FROM t GROUP BY 1 HAVING count(*) > 1) "
        f"QUALIFY ts - lag(ts) OVER (PARTITION BY {near} ORDER BY ts) <= INTERVAL 2 SECONDS "
        f"UNION ALL SELECT rowid FROM t WHERE _u IN (SELECT a._u FROM ({minutes}) a "
        f"LEFT JOIN ({minutes}) b ON b._u = a._u AND b._m = a._m + 1 "
        "WHERE a._n + coalesce(b._n, 0) > 60) "
        "QUALIFY count(*) OVER (PARTITION BY _u ORDER BY ts "
        "RANGE BETWEEN INTERVAL 60 SECONDS PRECEDING AND CURRENT ROW) > 60",
        f"COPY (SELECT * EXCLUDE (_h, _u) FROM t WHERE rowid NOT IN (SELECT _r FROM f)) "
        f"TO '{target}' {PARQUET}",
    ]


def _fused_sql(plan: str, csv: Path, target: Path) -> str:
    typed = _TYPED.format(src=FLOOR_SOURCE.format(csv=csv))
    if plan == "typed":
        return f"COPY (SELECT * EXCLUDE (_h, _u) FROM ({typed})) TO '{target}' {PARQUET}"
    if plan == "+windows1":
        return (
            f"COPY (SELECT * EXCLUDE (_h, _u, _dup, _near, _bots) FROM (SELECT *, "
            f"coalesce(_h = lag(_h) OVER w, false) AS _dup, "
            f"coalesce({_WINDOWS['near']}, false) AS _near, "
            f"count(*) OVER (w RANGE BETWEEN INTERVAL 60 SECONDS PRECEDING AND CURRENT ROW) > 60"
            f" AS _bots FROM ({typed}) WINDOW w AS (PARTITION BY _u ORDER BY ts)) "
            f"WHERE NOT (_dup OR _near OR _bots)) TO '{target}' {PARQUET}"
        )
    names = list(_WINDOWS) if plan == "+windows" else [plan.removeprefix("+")]
    flags = ", ".join(f"coalesce({_WINDOWS[n]}, false) AS _{n}" for n in names)
    keep = " AND ".join(f"NOT _{n}" for n in names)
    drop = ", ".join(["_h", "_u", *(f"_{n}" for n in names)])
    return (
        f"COPY (SELECT * EXCLUDE ({drop}) FROM (SELECT *, {flags} FROM ({typed})) "
        f"WHERE {keep}) TO '{target}' {PARQUET}"
    )


def worker(plan: str, csv: Path, out_dir: Path) -> None:
    """Run one plan under the ingest benchmark's DuckDB settings; print the rows written."""
    con = worker_connection(out_dir)
    target = out_dir / "events.parquet"
    for sql in plan_sql(plan, csv, target):
        con.execute(sql)
    row = con.execute(f"SELECT count(*) FROM read_parquet('{target}')").fetchone()
    print(json.dumps({"rows_written": int(row[0]) if row else 0}))


def _run(plan: str, csv: Path, work: Path, env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds of one plan in its own process, and the rows it wrote."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    if plan in ("floor", "ours", "pandas"):
        cmd = tool_command(plan, csv, work)
    else:
        cmd = [sys.executable, __file__, "--worker", plan, str(csv), str(work)]
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{plan} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout)
    if plan == "ours":
        rows = result[0]["clean_rows"]
    else:
        rows = result["clean_rows"] if plan == "pandas" else result["rows_written"]
    shutil.rmtree(work, ignore_errors=True)
    return seconds, int(rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        worker(argv[1], Path(argv[2]), Path(argv[3]))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="5M", help="rows of the synthetic events file (1M, 5M)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out"))
    ap.add_argument("--repeat", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pandas", action="store_true", help="also run pandas_baseline.py")
    args = ap.parse_args(argv)
    plans = (*PLANS, "pandas") if args.pandas else PLANS
    rows = parse_size(args.size)
    args.out.mkdir(parents=True, exist_ok=True)
    csv, _truth = ensure_file(args.out, rows, args.seed)
    env = {**os.environ, "SHOPKEEPER_MEMORY_LIMIT": "1GB"}
    samples: dict[str, list[float]] = {p: [] for p in plans}
    ratios: dict[str, list[float]] = {p: [] for p in plans}
    written: dict[str, int] = {}
    for i in range(args.repeat):
        for plan in plans:
            seconds, written[plan] = _run(plan, csv, args.out / "work" / f"bound-{plan}", env)
            samples[plan].append(seconds)
            log(f"round {i + 1}/{args.repeat} {plan}: {seconds:.2f} s, {written[plan]:,} rows")
        for plan in plans:
            ratios[plan].append(samples[plan][-1] / samples["floor"][-1])
    report: dict[str, Any] = {
        "size": size_label(rows),
        "file": str(csv),
        "plans": {
            p: {
                "median_s": round(statistics.median(samples[p]), 2),
                "median_ratio_to_floor": round(statistics.median(ratios[p]), 2),
                "samples_s": [round(s, 2) for s in samples[p]],
                "rows_written": written[p],
            }
            for p in plans
        },
    }
    (args.out / f"ingest-bound-{size_label(rows)}.json").write_text(json.dumps(report, indent=2))
    print("\n| plan | median s | ratio to floor | rows written |\n|---|---:|---:|---:|")
    for p, r in report["plans"].items():
        print(f"| {p} | {r['median_s']} | {r['median_ratio_to_floor']}× | {r['rows_written']:,} |")
    med = {p: r["median_s"] for p, r in report["plans"].items()}
    print(f"\nours may take: {2.5 * med['floor']:.2f} s (2.5 × the floor)", end="")
    if "pandas" in med:
        print(f", {med['pandas'] / 10:.2f} s (a tenth of pandas)", end="")
    least = min(med[p] for p in _WITH_WINDOWS)
    print(f"; reading, typing and three windows alone take {least} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
