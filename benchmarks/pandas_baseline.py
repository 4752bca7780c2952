"""A plain pandas implementation of Shopkeeper's event cleaning rules: the benchmark baseline.

It does what a straightforward script would: `read_csv` everything as text, normalize
with `.str` methods, pseudonymize user ids with `hmac` one value at a time, NFKC with
`unicodedata` one value at a time, find duplicates with `duplicated`, the set-based rules
with `groupby().transform`, and write the clean rows and the quarantine as Parquet.

The rules, thresholds and precedence are Shopkeeper's (see `shopkeeper.clean`), so on the
same file the counts must match the pipeline's. Known differences, none of which the
synthetic generator produces: DuckDB accepts a line that ends in one extra empty field
(`...,EUR,`) and numbers such as `1_000`; pandas rejects both; pandas timestamps end in
2262.

Usage: `python benchmarks/pandas_baseline.py FILE --out DIR` prints the counts as JSON.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import hmac
import json
import secrets
import sys
import time
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shopkeeper.clean import CleaningConfig
from shopkeeper.clean._pii import PII_PATTERNS, PSEUDONYM_HEX

COLUMNS = [
    "user_id", "item_id", "event_type", "ts", "session_id", "query", "value", "quantity",
    "price", "currency",
]  # fmt: skip
SPARE = [f"_extra{i}" for i in range(1, 6)]
"""Room for lines with too many fields (read_csv fails on more fields than names)."""
MARKERS = ["", "nan", "null", "none", "n/a", "\\n", "nat"]
ENTITIES = [("&nbsp;", " "), ("&lt;", "<"), ("&gt;", ">"), ("&quot;", '"'), ("&#39;", "'"),
            ("&apos;", "'"), ("&amp;", "&")]  # fmt: skip


def _first_reason(conds: list[pd.Series], codes: list[str], index: pd.Index) -> pd.Series:
    """The code of the first true condition of each row (None when none holds)."""
    masks = [np.asarray(pd.Series(c).fillna(False), dtype=bool) for c in conds]
    out = np.select(masks, codes, default="")
    return pd.Series(out, index=index, dtype=object).where(out != "", None)


def _null_if_marker(s: pd.Series) -> pd.Series:
    t = s.str.strip()
    return t.mask(t.str.lower().isin(MARKERS))


def _norm_id(s: pd.Series) -> pd.Series:
    return _null_if_marker(s).str.replace(r"^(-?[0-9]+)\.0+$", r"\1", regex=True)


def _pseudonymize(s: pd.Series, key: bytes) -> pd.Series:
    """HMAC-SHA256 of each normalized id, one value at a time."""
    return _norm_id(s).map(
        lambda v: hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_HEX],
        na_action="ignore",
    )


def _number(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(normalized raw text, parsed finite value) of a numeric column."""
    raw = _null_if_marker(s)
    text = raw.str.replace(r"^[£$€]|\s", "", regex=True)
    v = pd.to_numeric(text, errors="coerce").astype("float64")
    return raw, v.where(np.isfinite(v))


def _norm_text(s: pd.Series) -> pd.Series:
    t = s.map(lambda v: unicodedata.normalize("NFKC", v), na_action="ignore")
    t = t.str.replace(r"<[^>]*>", " ", regex=True)
    for entity, char in ENTITIES:
        t = t.str.replace(entity, char, regex=False)
    t = t.str.replace(r"[ \t\n\r\f\v]+", " ", regex=True)
    return _null_if_marker(t)


def _mask_pii(s: pd.Series) -> pd.Series:
    for _, pattern, placeholder in PII_PATTERNS:
        s = s.str.replace(pattern, placeholder, regex=True)
    return s


def read_events(path: Path) -> tuple[pd.DataFrame, pd.Series]:
    """All records as text, and the rule-1 reason (malformed / invalid bytes) of each."""
    lines = pd.read_csv(path, sep="\x1f", header=None, names=["line"], skiprows=1, dtype=str,
                        keep_default_na=False, quoting=csv.QUOTE_NONE,
                        encoding_errors="backslashreplace")["line"]  # fmt: skip
    fields = lines.str.replace(r'"[^"]*"', "", regex=True).str.count(",") + 1
    bad_bytes = lines.str.contains("\\x", regex=False)
    reason = _first_reason(
        [bad_bytes, fields != len(COLUMNS)], ["invalid_encoding", "malformed_row"], lines.index
    )
    df = pd.read_csv(path, header=None, skiprows=1, names=COLUMNS + SPARE, dtype=str,
                     keep_default_na=False, encoding_errors="backslashreplace")  # fmt: skip
    if len(df) != len(lines):
        raise RuntimeError(f"line count {len(lines)} != record count {len(df)}")
    return df[COLUMNS], reason


def _row_rules(df: pd.DataFrame, cfg: CleaningConfig, now: datetime,
               key: bytes) -> tuple[pd.DataFrame, pd.Series]:  # fmt: skip
    """Parsed columns and the first failing row-local rule (rules 2-8) of each row."""
    out = pd.DataFrame(index=df.index)
    out["user_id"] = _pseudonymize(df["user_id"], key)
    out["item_id"] = _norm_id(df["item_id"])
    out["event_type"] = (
        _null_if_marker(df["event_type"]).str.lower().str.replace(r"[ -]+", "_", regex=True)
    )
    ts_raw = _null_if_marker(df["ts"])
    out["ts"] = pd.to_datetime(ts_raw, format="ISO8601", utc=True, errors="coerce")
    out["session_id"] = _norm_id(df["session_id"])
    out["query"] = _mask_pii(_norm_text(df["query"]))
    value_raw, out["value"] = _number(df["value"])
    qty_raw, qty = _number(df["quantity"])
    out["quantity"] = qty.where((qty == qty.round()) & (qty.abs() < 9e18)).astype("Int64")
    price_raw, out["price"] = _number(df["price"])
    out["currency"] = _null_if_marker(df["currency"]).str.upper()
    horizon = now + timedelta(hours=cfg.future_tolerance_hours)
    rules = [
        (df.duplicated(keep="first"), "exact_duplicate"),
        (out["user_id"].isna(), "missing_user_id"),
        (out["item_id"].isna(), "missing_item_id"),
        (out["event_type"].isna(), "missing_event_type"),
        (ts_raw.isna(), "missing_ts"),
        (ts_raw.notna() & out["ts"].isna(), "unparseable_ts"),
        (value_raw.notna() & out["value"].isna(), "unparseable_value"),
        (qty_raw.notna() & out["quantity"].isna(), "unparseable_quantity"),
        (price_raw.notna() & out["price"].isna(), "unparseable_price"),
        (df["query"].str.contains("\ufffd", regex=False), "invalid_encoding"),
        (~out["event_type"].isin(cfg.event_types), "invalid_event_type"),
        (out["currency"].notna() & ~out["currency"].str.fullmatch("[A-Z]{3}").fillna(False),
         "invalid_currency"),
        (out["ts"] > horizon, "future_timestamp"),
        (out["ts"] < cfg.data_start, "timestamp_before_start"),
        (out["price"] <= 0, "nonpositive_price"),
        (out["quantity"].abs() > cfg.max_abs_quantity, "absurd_quantity"),
    ]  # fmt: skip
    return out, _first_reason([c for c, _ in rules], [code for _, code in rules], df.index)


def _set_rules(ok: pd.DataFrame, cfg: CleaningConfig) -> pd.Series:
    """Price outliers, then bot users, over the rows that passed rules 1-8."""
    lp = np.log(ok["price"].where(ok["price"] > 0))
    n = lp.groupby(ok["item_id"]).transform("count")
    med = lp.groupby(ok["item_id"]).transform("median")
    # Quartiles by nearest rank (the value at rank ceil(p * n)), as the pipeline does.
    priced = pd.DataFrame({"item": ok["item_id"], "lp": lp, "n": n}).dropna()
    priced = priced.sort_values(["item", "lp"])
    rank = priced.groupby("item").cumcount() + 1
    quart = {}
    for p in (0.25, 0.75):
        at = rank == np.maximum(1, np.ceil(p * priced["n"]))
        quart[p] = ok["item_id"].map(priced.loc[at].groupby("item")["lp"].max())
    spread = (quart[0.75] - quart[0.25]) / 1.349  # a robust standard deviation (IQR)
    threshold = np.maximum(cfg.price_outlier_k * spread, np.log(cfg.price_outlier_factor))
    outlier = (n >= cfg.price_outlier_min_observations) & ((lp - med).abs() > threshold)
    counted = ok.loc[ok["event_type"].isin(cfg.bot_event_types), ["user_id", "ts"]]
    counted = counted.sort_values(["user_id", "ts"]).assign(one=1)
    # Events in the 60 seconds up to each event: (t - 60 s, t], as the pipeline counts.
    per_window = counted.groupby("user_id").rolling("60s", on="ts")["one"].sum()
    bots = per_window[per_window > cfg.bot_max_events_per_minute].index.get_level_values(0)
    bot = ok["user_id"].isin(set(bots))
    return _first_reason([outlier, bot], ["price_outlier", "bot_user"], ok.index)


def _near_duplicates(ok: pd.DataFrame, cfg: CleaningConfig) -> pd.Series:
    """Same user, item and type within the window of the previous such event."""
    cand = ok[ok["event_type"].isin(cfg.near_duplicate_event_types)]
    cand = cand.assign(_ord=cand.index).sort_values(
        ["user_id", "item_id", "event_type", "ts", "_ord"]
    )
    gap = cand.groupby(["user_id", "item_id", "event_type"], sort=False)["ts"].diff()
    near = gap.dt.total_seconds() <= cfg.near_duplicate_window_seconds
    return near.reindex(ok.index, fill_value=False)


def clean_events(path: Path, out_dir: Path, now: datetime | None = None,
                 key: bytes | None = None) -> dict[str, Any]:  # fmt: skip
    """Clean one event CSV; write clean and quarantine Parquet; return the counts."""
    cfg = CleaningConfig()
    now = now or datetime.now(UTC)
    key = key or secrets.token_bytes(32)
    raw, reason = read_events(path)
    staged = raw[reason.isna()]
    parsed, r1 = _row_rules(staged, cfg, now, key)
    reason.loc[staged.index] = r1
    ok = parsed[r1.isna()]
    r2 = _set_rules(ok, cfg)
    reason.loc[ok.index] = r2
    passed = ok[r2.isna()]
    near = _near_duplicates(passed, cfg)
    reason.loc[near[near].index] = "near_duplicate"
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = parsed.loc[reason.loc[parsed.index].isna()]
    clean.to_parquet(out_dir / "clean.parquet", compression="zstd", index=False)
    dups = {"exact_duplicate", "near_duplicate"}
    bad = reason[reason.notna() & ~reason.isin(dups)]
    quarantine = raw.loc[bad.index].assign(reason=bad, line=bad.index + 2)
    quarantine["user_id"] = _pseudonymize(quarantine["user_id"], key)
    quarantine["query"] = _mask_pii(quarantine["query"])
    quarantine.to_parquet(out_dir / "quarantine.parquet", compression="zstd", index=False)
    counts = reason.value_counts()
    reasons = {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}
    n_dup = sum(v for k, v in reasons.items() if k in dups)
    return {"input_rows": len(raw), "clean_rows": len(clean),
            "quarantined_rows": sum(reasons.values()) - n_dup, "duplicate_rows": n_dup,
            "reasons": reasons}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Command line: clean FILE into --out and print the counts as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("file", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="folder for the Parquet output")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    result = clean_events(args.file, args.out)
    result["elapsed_s"] = round(time.perf_counter() - t0, 3)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
