"""Stage a source file into a DuckDB table of raw values, plus its malformed lines.

Every staged row keeps its position: `rowid` of the stage table is the record's
ordinal among the accepted records, and `line_sql` turns it into the record's line
number in the file (header counted, malformed lines skipped over). The stage is a plain
table of the connection's default database (in memory, or for a large source the load's
work file: `warehouse._loader.processing_connection`); the small side tables are TEMP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb

from shopkeeper.errors import IngestError
from shopkeeper.ingest._files import SourceFile, readable_path
from shopkeeper.ingest._mapping import ReadOptions, quote_ident, sql_literal

if TYPE_CHECKING:
    from pathlib import Path

MALFORMED_SHARE_LIMIT = 0.5
"""Refuse a file when more than this share of its lines is malformed (wrong delimiter?)."""
_BLANK = "blank_line"
"""Marks blank lines among the rejects while line numbers are mapped (not a record)."""


@dataclass(frozen=True)
class StagedTable:
    """A source file staged into `table`; malformed lines in `rejects`."""

    table: str
    rejects: str
    """Table of malformed lines: line, column_name, reason, raw."""
    source: SourceFile
    columns: list[str]
    header_lines: int
    rows: int
    rejected: int
    delimiter: str | None = None
    line_adjust: str | None = None
    """Table of (a, i) for the ASOF join that maps ordinals to line numbers, if any rejects."""

    def ordinal_sql(self, alias: str = "s") -> str:
        """FROM clause that exposes `_ord`, the record's ordinal among accepted records."""
        return f"(SELECT *, rowid + 1 AS _ord FROM {self.table}) {alias}"

    def with_line_sql(self, relation: str, alias: str = "s") -> str:
        """Add `_line` (the record's line number in the file) to a relation with `_ord`.

        Cheap on the few quarantined rows; the malformed lines are skipped over.
        """
        if self.line_adjust is None:
            return f"(SELECT *, _ord + {self.header_lines} AS _line FROM {relation}) {alias}"
        return (
            f"(SELECT b.*, b._ord + {self.header_lines} + coalesce(j.i, 0) AS _line "
            f"FROM {relation} b ASOF LEFT JOIN {self.line_adjust} j ON b._ord > j.a) {alias}"
        )

    def from_sql(self, alias: str = "s") -> str:
        """FROM clause that exposes `_ord` and `_line` for every accepted record."""
        return self.with_line_sql(f"(SELECT *, rowid + 1 AS _ord FROM {self.table})", alias)


def _csv_options(opts: ReadOptions, encoding: str, name: str, rejects: str | None) -> str:
    parts = ["all_varchar = true"]
    if rejects is not None:
        parts += [
            "store_rejects = true",
            f"rejects_table = {sql_literal(rejects + '_raw')}",
            f"rejects_scan = {sql_literal(rejects + '_scan')}",
        ]
    parts += [f"encoding = {sql_literal(encoding)}", "max_line_size = 4194304"]
    if opts.delimiter is not None:
        parts.append(f"delim = {sql_literal(opts.delimiter)}")
    elif name.lower().removesuffix(".gz").endswith(".tsv"):
        parts.append("delim = '\\t'")
    if opts.quote is not None:
        parts.append(f"quote = {sql_literal(opts.quote)}")
    header = opts.header
    if opts.column_names:
        names = ", ".join(sql_literal(c) for c in opts.column_names)
        parts.append(f"names = [{names}]")
        header = False if header is None else header
    if header is not None:
        parts.append(f"header = {'true' if header else 'false'}")
    return ", ".join(parts)


def _stage_csv(
    con: duckdb.DuckDBPyConnection, src: SourceFile, opts: ReadOptions, table: str, tmp: Path
) -> StagedTable:
    path, encoding = readable_path(src, tmp)
    rejects = f"{table}_rej"
    options = _csv_options(opts, encoding, src.path.name, rejects)
    try:
        con.execute(
            f"CREATE TABLE {table} AS SELECT * FROM read_csv({sql_literal(str(path))}, {options})"
        )
        sniff = con.execute(
            f"SELECT delimiter, has_header, skip_rows FROM {rejects}_scan LIMIT 1"
        ).fetchone()
        if sniff is None:  # the scan table is only filled when some line was rejected
            plain = _csv_options(opts, encoding, src.path.name, None)
            sniff = con.execute(
                f"SELECT Delimiter, HasHeader, SkipRows FROM sniff_csv({sql_literal(str(path))}, "
                f"{plain})"
            ).fetchone()
    except duckdb.Error as exc:
        raise IngestError(f"cannot read as CSV: {_first_line(exc)}", path=src.display) from exc
    delim, has_header = (sniff[0], bool(sniff[1])) if sniff else (opts.delimiter, bool(opts.header))
    skipped = int(sniff[2] or 0) if sniff else 0  # leading blank lines the sniffer skips
    con.execute(
        f"""CREATE TEMP TABLE {rejects} AS
        SELECT line, arg_min(column_name, column_idx) AS column_name,
               CASE WHEN bool_or(error_type = 'INVALID ENCODING') THEN 'invalid_encoding'
                    ELSE 'malformed_row' END AS reason,
               arg_min(error_message, column_idx) AS detail,
               any_value(csv_line) AS raw
        FROM {rejects}_raw GROUP BY line"""
    )
    return _finish(con, src, table, rejects, skipped + (1 if has_header else 0), delim)


def _stage_jsonl(
    con: duckdb.DuckDBPyConnection, src: SourceFile, table: str, tmp: Path
) -> StagedTable:
    path, encoding = readable_path(src, tmp)
    rejects = f"{table}_rej"
    lines = f"{table}_lines"
    try:
        con.execute(
            f"CREATE TABLE {lines} AS SELECT column0 AS l FROM read_csv("
            f"{sql_literal(str(path))}, columns = {{'column0': 'VARCHAR'}}, delim = '\\x01', "
            f"quote = '', escape = '', header = false, skip = 0, "
            f"encoding = {sql_literal(encoding)}, "
            f"store_rejects = true, rejects_table = {sql_literal(rejects + '_raw')}, "
            f"rejects_scan = {sql_literal(rejects + '_scan')}, max_line_size = 16777216)"
        )
        keys = [
            r[0]
            for r in con.execute(
                f"SELECT k FROM (SELECT unnest(json_keys(l)) AS k, "
                f"generate_subscripts(json_keys(l), 1) AS p, rowid AS r FROM {lines} "
                f"WHERE json_valid(l) AND trim(l) LIKE '{{%') GROUP BY k ORDER BY min([r, p])"
            ).fetchall()
        ]
    except duckdb.Error as exc:
        raise IngestError(
            f"cannot read as JSON lines: {_first_line(exc)}", path=src.display
        ) from exc
    extract = ", ".join(
        f"json_extract_string(_j.l, {sql_literal('$.' + _json_path(k))}) AS {quote_ident(k)}"
        for k in keys
    )
    ok = "json_valid(l) AND trim(l) LIKE '{%'"
    blank = "coalesce(trim(l), '') = ''"  # read_csv gives an empty line as NULL
    numbered = _numbered_lines(con, lines, f"{rejects}_raw")
    con.execute(
        f"CREATE TABLE {table} AS SELECT {extract or 'NULL AS _empty'} FROM "
        f"{numbered} AS _j WHERE {ok} AND NOT {blank} ORDER BY _j.n"  # a key may be `n`
    )
    con.execute(
        f"""CREATE TEMP TABLE {rejects} AS
        SELECT n AS line, NULL::VARCHAR AS column_name, 'malformed_row' AS reason,
               'not a JSON object' AS detail, l AS raw
        FROM {numbered} WHERE NOT ({ok}) AND NOT {blank}
        UNION ALL
        SELECT line, column_name, 'invalid_encoding', error_message, csv_line
        FROM {rejects}_raw"""
    )
    # Blank lines are layout, not records; line numbers of later rows must skip them.
    con.execute(
        f"INSERT INTO {rejects} SELECT n, NULL, '{_BLANK}', NULL, NULL FROM {numbered} "
        f"WHERE {blank}"
    )
    con.execute(f"DROP TABLE {lines}")
    staged = _finish(con, src, table, rejects, 0, None)
    con.execute(f"DELETE FROM {rejects} WHERE reason = '{_BLANK}'")
    if not keys:
        raise IngestError("no JSON objects found", path=src.display)
    return staged


def _numbered_lines(con: duckdb.DuckDBPyConnection, lines: str, rejects_raw: str) -> str:
    """A relation of (l, n): each line read with its line number in the file.

    read_csv leaves out the lines it rejects (bad encoding), so `rowid` alone would
    undercount every line after one of them.
    """
    base = f"(SELECT l, rowid + 1 AS o FROM {lines})"
    row = con.execute(f"SELECT count(*) FROM {rejects_raw}").fetchone()
    if not row or not row[0]:
        return f"(SELECT l, o AS n FROM {base})"
    gaps = (
        f"(SELECT a, max(i) AS i FROM (SELECT line - row_number() OVER (ORDER BY line) AS a, "
        f"row_number() OVER (ORDER BY line) AS i FROM (SELECT DISTINCT line FROM "
        f"{rejects_raw})) GROUP BY a)"
    )
    return (
        f"(SELECT b.l, b.o + coalesce(j.i, 0) AS n FROM {base} b "
        f"ASOF LEFT JOIN {gaps} j ON b.o > j.a)"
    )


def _json_path(key: str) -> str:
    return '"' + key.replace('"', '\\"') + '"'


def _stage_structured(
    con: duckdb.DuckDBPyConnection, src: SourceFile, table: str, tmp: Path
) -> StagedTable:
    path, _ = readable_path(src, tmp)
    reader = "read_parquet" if src.format == "parquet" else "read_json"
    extra = ", file_row_number = true" if src.format == "parquet" else ", format = 'array'"
    try:
        con.execute(
            f"CREATE TABLE {table} AS SELECT * FROM {reader}({sql_literal(str(path))}{extra})"
        )
        if src.format == "parquet":
            con.execute(f"ALTER TABLE {table} DROP COLUMN file_row_number")
    except duckdb.Error as exc:
        raise IngestError(
            f"cannot read as {src.format}: {_first_line(exc)}", path=src.display
        ) from exc
    _plain_text_columns(con, table)
    rejects = f"{table}_rej"
    con.execute(
        f"CREATE TEMP TABLE {rejects} (line BIGINT, column_name VARCHAR, reason VARCHAR, "
        "detail VARCHAR, raw VARCHAR)"
    )
    return _finish(con, src, table, rejects, 0, None)


def _plain_text_columns(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Store nested values as JSON text and JSON strings without their quotes.

    Cleaning reads every value as text: a LIST cast to VARCHAR is `[a, b, c]` (elements
    holding a comma cannot be told apart) and a JSON string keeps its quotes (`"B-2"`).
    """
    parts = []
    for name, typ, *_ in con.execute(f"DESCRIBE {table}").fetchall():
        q = quote_ident(name)
        if typ == "JSON":
            parts.append(
                f"CASE json_type({q}) WHEN 'VARCHAR' THEN json_extract_string({q}, '$') "
                f"WHEN 'NULL' THEN NULL ELSE CAST({q} AS VARCHAR) END AS {q}"
            )
        elif typ.endswith("]") or typ.startswith(("STRUCT", "MAP", "UNION")):
            parts.append(f"CAST(to_json({q}) AS VARCHAR) AS {q}")
    if parts:
        con.execute(
            f"CREATE OR REPLACE TABLE {table} AS SELECT * REPLACE ({', '.join(parts)}) FROM {table}"
        )


def _finish(
    con: duckdb.DuckDBPyConnection,
    src: SourceFile,
    table: str,
    rejects: str,
    header_lines: int,
    delimiter: str | None,
) -> StagedTable:
    cols = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
    rows_row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    rej_row = con.execute(
        f"SELECT count(*) FILTER (WHERE reason <> '{_BLANK}'), count(*) FROM {rejects}"
    ).fetchone()
    rows, rejected = int(rows_row[0]) if rows_row else 0, int(rej_row[0]) if rej_row else 0
    listed = int(rej_row[1]) if rej_row else 0  # rejected records and blank lines
    if rows + rejected == 0:
        raise IngestError("no records in the file", path=src.display)
    if rejected > MALFORMED_SHARE_LIMIT * (rows + rejected) and rejected > 10:
        sample = con.execute(
            f"SELECT line, column_name, detail FROM {rejects} WHERE reason <> '{_BLANK}' "
            "ORDER BY line LIMIT 1"
        ).fetchone()
        line, column, detail = sample if sample else (None, None, "")
        raise IngestError(
            f"{rejected} of {rows + rejected} records are malformed (wrong delimiter or "
            f"format?); first: {detail}",
            path=src.display,
            line=line,
            column=column,
        )
    adjust = None
    if listed:
        adjust = f"{table}_adj"
        # Consecutive malformed lines share `a`; keep the last (largest `i`) so the ASOF
        # join skips all of them.
        con.execute(
            f"CREATE TEMP TABLE {adjust} AS SELECT a, max(i) AS i FROM (SELECT line - "
            f"{header_lines} - row_number() OVER (ORDER BY line) AS a, "
            f"row_number() OVER (ORDER BY line) AS i FROM {rejects}) GROUP BY a"
        )
    return StagedTable(table, rejects, src, cols, header_lines, rows, rejected, delimiter, adjust)


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def stage_source(
    con: duckdb.DuckDBPyConnection, src: SourceFile, opts: ReadOptions, table: str, tmp: Path
) -> StagedTable:
    """Read `src` into temp table `table` with every value as DuckDB read it.

    Raises:
        IngestError: the file cannot be read at all, or most of it is malformed.
    """
    if src.format == "csv":
        return _stage_csv(con, src, opts, table, tmp)
    if src.format == "jsonl":
        return _stage_jsonl(con, src, table, tmp)
    return _stage_structured(con, src, table, tmp)
