"""Write one cleaned load as Parquet files of a new asset version (not yet committed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shopkeeper.clean import CleanedLoad, Pseudonymizer, mask_pii_sql, norm_id
from shopkeeper.clean._reasons import is_duplicate_code
from shopkeeper.ingest import AssetPlan, quote_ident, sql_literal
from shopkeeper.ingest._plan import UPSERT_KEYS
from shopkeeper.schema import columns
from shopkeeper.warehouse._fields import SEAL_FUNCTION, encrypted_columns

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

_PARQUET = "(FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 122880)"


@dataclass
class WrittenVersion:
    """Files and counts of a version written to the tmp folder."""

    asset: str
    kind: str
    version: int
    data_files: list[Path] = field(default_factory=list)
    """New files written by this load (in tmp until committed)."""
    inherited_files: list[str] = field(default_factory=list)
    """Relative paths of earlier files this version still holds (append)."""
    quarantine_file: Path | None = None
    quarantine_rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    pii: dict[str, int] = field(default_factory=dict)
    row_count: int = 0
    file_rows: dict[str, int] = field(default_factory=dict)
    quality: dict[str, Any] = field(default_factory=dict)
    """The quality report stored with the version."""


def _copy(con: duckdb.DuckDBPyConnection, select: str, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"COPY ({select}) TO {sql_literal(str(path))} {_PARQUET}")
    row = con.execute(f"SELECT count(*) FROM read_parquet({sql_literal(str(path))})").fetchone()
    return int(row[0]) if row else 0


def _canon_cols(kind: str) -> str:
    """The canonical columns of `kind`, sealed ones wrapped in the sealing function."""
    sealed = encrypted_columns(kind)
    return ", ".join(
        f"{SEAL_FUNCTION}({quote_ident(c.name)}) AS {quote_ident(c.name)}"
        if c.name in sealed
        else quote_ident(c.name)
        for c in columns(kind)  # type: ignore[arg-type]
    )


def sealed_source_columns(plan: AssetPlan) -> set[str]:
    """Source columns that feed a sealed column (sealed in the quarantine's `raw` too)."""
    out: set[str] = set()
    for name in encrypted_columns(plan.kind):
        src = plan.sources.get(name)
        if src is not None:
            out.update(src.source_columns)
        elif name == "attributes" and plan.pack_attributes:
            used = {c for s in plan.sources.values() for c in s.source_columns}
            out.update(c for c in plan.stage.columns if c not in used)
    return out


def _counts(
    con: duckdb.DuckDBPyConnection, plan: AssetPlan, load: CleanedLoad
) -> tuple[dict[str, int], int, dict[str, int]]:
    """Rows per reason (the stage's rejects included), clean rows, and PII masks per kind.

    One pass over the classified view, grouped by reason (the NULL group is the clean
    rows), instead of one per figure: each pass joins the mapped table with the flagged
    rows again (5M rows: three passes took 0.53 s).
    """
    sums = "".join(
        f", coalesce(sum(CAST({quote_ident(p)} AS INTEGER)), 0)" for p in load.pii_columns
    )
    groups = con.execute(
        f"SELECT _reason, count(*){sums} FROM {load.outcomes} GROUP BY 1"
    ).fetchall()
    rejects = con.execute(
        f"SELECT reason, count(*) FROM {plan.stage.rejects} GROUP BY 1"
    ).fetchall()
    kinds = [name.rsplit("_", 1)[-1] for name in load.pii_columns]  # _pii_query_email
    reasons: dict[str, int] = {}
    clean = 0
    pii = dict.fromkeys(kinds, 0)
    for code, n, *masked in groups:
        if code is None:
            clean = int(n)
        else:
            reasons[code] = int(n)
        for kind, m in zip(kinds, masked, strict=True):
            pii[kind] += int(m)
    for code, n in rejects:  # a code may also come from the rules (invalid_encoding)
        reasons[code] = reasons.get(code, 0) + int(n)
    ordered = dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])))
    return ordered, clean, pii


def _raw_json(plan: AssetPlan, pseudo: Pseudonymizer) -> str:
    """A quarantined row's source values as JSON: user ids pseudonymized, PII masked.

    Values of source columns feeding a sealed column are sealed one by one.
    """
    users = set(plan.user_source_columns)
    sealed = sealed_source_columns(plan)
    parts = []
    for c in plan.stage.columns:
        v = mask_pii_sql(f"CAST(s.{quote_ident(c)} AS VARCHAR)")
        if c in users:
            v = pseudo.sql(norm_id(f"s.{quote_ident(c)}"))
        elif c in sealed:
            v = f"{SEAL_FUNCTION}({v})"
        parts.append(f"{sql_literal(c)}, {v}")
    return f"CAST(json_object({', '.join(parts)}) AS VARCHAR)"


def _raw_line(plan: AssetPlan, pseudo: Pseudonymizer) -> str:
    """A malformed line as stored, or NULL where a raw user id could hide in it.

    The user field is found by position, which is only trustworthy when the line has
    no quotes and at least as many fields as the header (extra fields come after).
    Otherwise the line is withheld; its file and line number still point at it. A line
    that may hold values of a sealed column is stored sealed as a whole.
    """
    if sealed_source_columns(plan):
        return f"{SEAL_FUNCTION}({_raw_line_text(plan, pseudo)})"
    return _raw_line_text(plan, pseudo)


def _raw_line_text(plan: AssetPlan, pseudo: Pseudonymizer) -> str:
    delim = plan.stage.delimiter
    users = plan.user_source_columns
    if not users:
        return mask_pii_sql("r.raw")
    if not delim or users[0] not in plan.stage.columns:
        return "NULL"
    idx = plan.stage.columns.index(users[0]) + 1
    fields = f"string_split(r.raw, {sql_literal(delim)})"
    rebuilt = (
        f"array_to_string(list_transform({fields}, lambda x, i: CASE WHEN i = {idx} "
        f"THEN {pseudo.sql(norm_id('x'))} ELSE x END), {sql_literal(delim)})"
    )
    safe = f"NOT contains(r.raw, '\"') AND len({fields}) >= {len(plan.stage.columns)}"
    return f"CASE WHEN {safe} THEN {mask_pii_sql(rebuilt)} END"


def write_quarantine(
    con: duckdb.DuckDBPyConnection,
    plan: AssetPlan,
    load: CleanedLoad,
    pseudo: Pseudonymizer,
    version: int,
    path: Path,
) -> int:
    """Write every quarantined row of the load, with reason, source file and line."""
    dup_codes = ", ".join(
        sql_literal(c) for c in ("exact_duplicate", "near_duplicate", "superseded")
    )
    src = sql_literal(plan.stage.source.display)
    bad = (
        f"(SELECT _ord, _reason, _column FROM {load.outcomes} "
        f"WHERE _reason IS NOT NULL AND _reason NOT IN ({dup_codes}))"
    )
    select = (
        f"SELECT {sql_literal(plan.asset)} AS asset, {version} AS version, c._reason AS reason, "
        f"c._column AS column_name, NULL::VARCHAR AS detail, {src} AS source_file, "
        f"CAST(c._line AS BIGINT) AS source_line, {_raw_json(plan, pseudo)} AS raw "
        f"FROM {plan.stage.with_line_sql(bad, 'c')} "
        # Joined on the bare rowid, DuckDB fetches just the matching stage rows instead
        # of scanning every column of the stage (5M rows: 1.1 s -> 0.2 s).
        f"JOIN {plan.stage.table} s ON s.rowid = c._ord - 1 "
        f"UNION ALL SELECT {sql_literal(plan.asset)}, {version}, r.reason, r.column_name, "
        f"r.detail, {src}, CAST(r.line AS BIGINT), {_raw_line(plan, pseudo)} "
        f"FROM {plan.stage.rejects} r "
        f"ORDER BY source_line"
    )
    return _copy(con, select, path)


def write_version(
    con: duckdb.DuckDBPyConnection,
    plan: AssetPlan,
    load: CleanedLoad,
    pseudo: Pseudonymizer,
    version: int,
    previous_files: list[str],
    workspace_home: Path,
    out_dir: Path,
) -> WrittenVersion:
    """Write data and quarantine files of `plan`'s new version under `out_dir`."""
    wv = WrittenVersion(plan.asset, plan.kind, version)
    wv.reasons, n_clean, wv.pii = _counts(con, plan, load)
    dups = sum(n for code, n in wv.reasons.items() if is_duplicate_code(code))
    quarantined = sum(wv.reasons.values()) - dups
    total = plan.stage.rows + plan.stage.rejected
    clean_sql = f"SELECT {_canon_cols(plan.kind)} FROM {load.classified} WHERE _reason IS NULL"
    data = out_dir / "data" / f"part-{version:06d}.parquet"
    prev_abs = [str(workspace_home / p) for p in previous_files]
    if plan.mode == "upsert" and prev_abs:
        key = UPSERT_KEYS[plan.kind]
        keys = ", ".join(key)
        prev = f"read_parquet([{', '.join(sql_literal(p) for p in prev_abs)}])"
        new_rows = f"({clean_sql})"
        created = ""
        if plan.kind == "users":
            created = (
                ", n.* REPLACE (least(n.created_at, p.created_at) AS created_at, "
                "coalesce(n.attributes, p.attributes) AS attributes)"
            )
        merged = (
            f"SELECT {'n.*' if not created else created[2:]} FROM {new_rows} n "
            f"LEFT JOIN {prev} p USING ({keys}) "
            f"UNION ALL SELECT p.* FROM {prev} p ANTI JOIN {new_rows} n USING ({keys})"
        )
        wv.file_rows[str(data)] = _copy(con, merged, data)
        wv.data_files = [data]
    else:
        if n_clean:
            wv.file_rows[str(data)] = _copy(con, clean_sql, data)
            wv.data_files = [data]
        if plan.mode == "append":
            wv.inherited_files = list(previous_files)
    clean = total - quarantined - dups
    wv.counts = {
        "input_rows": total,
        "clean_rows": clean,
        "quarantined_rows": quarantined,
        "duplicate_rows": dups,
    }
    if quarantined:
        qpath = out_dir / "quarantine" / f"quarantine-{version:06d}.parquet"
        wv.quarantine_rows = write_quarantine(con, plan, load, pseudo, version, qpath)
        wv.quarantine_file = qpath
    return wv


def counts_add_up(counts: dict[str, Any]) -> bool:
    """The accounting invariant: every input row is clean, quarantined or a duplicate.

    >>> counts = {"input_rows": 5, "clean_rows": 3, "quarantined_rows": 1, "duplicate_rows": 1}
    >>> counts_add_up(counts)
    True
    """
    return bool(
        counts["input_rows"]
        == counts["clean_rows"] + counts["quarantined_rows"] + counts["duplicate_rows"]
    )
