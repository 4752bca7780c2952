"""Quality metrics of one asset version: completeness, ranges, reasons, PII, freshness."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from shopkeeper.ingest import quote_ident, sql_literal
from shopkeeper.schema import AssetKind, columns, duckdb_type
from shopkeeper.warehouse._fields import encrypted_columns

if TYPE_CHECKING:
    import duckdb

_TS = {"events": "ts", "reviews": "ts", "items": "updated_at", "users": "created_at"}
STATUS_THRESHOLDS = {"ok": 0.05, "warning": 0.30}
"""Share of a load's input quarantined: below 5% ok, below 30% warning, else critical."""


def relation_of(paths: list[str]) -> str:
    """A SQL relation over Parquet files (an empty one yields no rows)."""
    return f"read_parquet([{', '.join(sql_literal(p) for p in paths)}])"


def column_profile(
    con: duckdb.DuckDBPyConnection, kind: AssetKind, paths: list[str]
) -> tuple[int, dict[str, dict[str, Any]]]:
    """Row count and per-column nulls, distinct count (approximate) and range.

    A sealed column (`encrypted_columns`) gets nulls only: lengths of its tokens would
    tell the plaintext's lengths, and its distinct count is the number of values.
    """
    if not paths:
        return 0, {}
    sealed = encrypted_columns(kind)
    parts = ["count(*)"]
    for c in columns(kind):
        q = quote_ident(c.name)
        parts += [f"count({q})"]
        if c.name in sealed:
            parts += ["NULL", "NULL", "NULL"]
            continue
        parts += [f"approx_count_distinct({q})"]
        if duckdb_type(c) == "VARCHAR[]":
            parts += [f"min(len({q}))", f"max(len({q}))"]
        elif duckdb_type(c) == "VARCHAR":
            parts += [f"min(length({q}))", f"max(length({q}))"]
        else:
            parts += [f"CAST(min({q}) AS VARCHAR)", f"CAST(max({q}) AS VARCHAR)"]
    row = con.execute(f"SELECT {', '.join(parts)} FROM {relation_of(paths)}").fetchone()
    assert row is not None
    n = int(row[0])
    out: dict[str, dict[str, Any]] = {}
    for i, c in enumerate(columns(kind)):
        nonnull, distinct, lo, hi = row[1 + 4 * i : 5 + 4 * i]
        if c.name in sealed:
            out[c.name] = {
                "nulls": n - int(nonnull),
                "null_rate": round((n - int(nonnull)) / n, 6) if n else 0.0,
                "encrypted": True,
            }
            continue
        is_text = duckdb_type(c) in ("VARCHAR", "VARCHAR[]")
        out[c.name] = {
            "nulls": n - int(nonnull),
            "null_rate": round((n - int(nonnull)) / n, 6) if n else 0.0,
            "distinct": min(int(distinct), int(nonnull)),  # HyperLogLog may overshoot
            ("min_length" if is_text else "min"): lo,
            ("max_length" if is_text else "max"): hi,
        }
    return n, out


def status_of(input_rows: int, quarantined: int) -> str:
    """ok, warning or critical by the quarantined share of the load.

    >>> status_of(100, 1), status_of(100, 10), status_of(100, 60)
    ('ok', 'warning', 'critical')
    """
    share = quarantined / input_rows if input_rows else 0.0
    if share < STATUS_THRESHOLDS["ok"]:
        return "ok"
    return "warning" if share < STATUS_THRESHOLDS["warning"] else "critical"


def build_quality(
    con: duckdb.DuckDBPyConnection,
    kind: AssetKind,
    paths: list[str],
    counts: dict[str, int],
    reasons: dict[str, int],
    pii: dict[str, int],
    source_nulls: dict[str, int],
    now: datetime,
) -> dict[str, Any]:
    """The quality report stored with a version."""
    rows, profile = column_profile(con, kind, paths)
    freshness = None
    ts = _TS.get(kind)
    if ts and ts in profile and profile[ts].get("max"):
        latest = datetime.fromisoformat(str(profile[ts]["max"]))
        freshness = {
            "column": ts,
            "latest": latest.isoformat(),
            "age_hours": round((now - latest).total_seconds() / 3600, 2),
        }
    return {
        "status": status_of(counts["input_rows"], counts["quarantined_rows"]),
        "rows": rows,
        "load": counts,
        "reasons": reasons,
        "columns": profile,
        "pii_masked": pii,
        "source_nulls": source_nulls,
        "freshness": freshness,
    }
