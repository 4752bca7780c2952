"""`catalog`, `quality`, `lineage`, `sql`, `quarantine` and `export`: reading the warehouse."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.tree import Tree

from shopkeeper.cli._app import State, cli, console, emit_json, json_option
from shopkeeper.warehouse import Warehouse, catalog_entries, lineage_graph, quality_report


@cli.command("catalog")
@json_option
@click.pass_obj
def catalog_cmd(state: State) -> None:
    """List every asset: latest version, rows, freshness and quality status."""
    with Warehouse(state.workspace, read_only=True) as wh:
        rows = catalog_entries(wh)
    if state.json:
        emit_json(rows)
        return
    table = Table(title=f"Catalog of {state.workspace.home}")
    for col in ("asset", "kind", "version", "rows", "quality", "freshest", "created"):
        table.add_column(col)
    for r in rows:
        fresh = (r["freshness"] or {}).get("latest", "-")
        table.add_row(
            r["asset"],
            r["kind"],
            f"v{r['version']} of {r['versions']}",
            f"{r['rows']:,}",
            r["quality_status"],
            str(fresh)[:19],
            r["created_at"][:19],
        )
    console().print(table)


@cli.command("quality")
@click.argument("asset")
@click.option("--version", type=int, default=None, help="Version (default: latest).")
@json_option
@click.pass_obj
def quality_cmd(state: State, asset: str, version: int | None) -> None:
    """Quality report of ASSET: completeness, ranges, reasons, PII masked, freshness."""
    with Warehouse(state.workspace, read_only=True) as wh:
        report = quality_report(wh, asset, version)
    if state.json:
        emit_json(report)
        return
    c = console()
    c.print(
        f"[bold]{report['asset']}[/] v{report['version']}: status [bold]{report['status']}[/], "
        f"{report['rows']:,} rows"
    )
    load = report.get("load", {})
    c.print(
        f"last load: {load.get('input_rows', 0):,} in → {load.get('clean_rows', 0):,} clean, "
        f"{load.get('quarantined_rows', 0):,} quarantined, "
        f"{load.get('duplicate_rows', 0):,} duplicates"
    )
    if report.get("reasons"):
        t = Table(title="reasons")
        t.add_column("code")
        t.add_column("rows", justify="right")
        for k, n in report["reasons"].items():
            t.add_row(k, f"{n:,}")
        c.print(t)
    t = Table(title="columns")
    for col in ("column", "null rate", "distinct", "min", "max"):
        t.add_column(col)
    for name, p in report.get("columns", {}).items():
        t.add_row(
            name,
            f"{p['null_rate']:.2%}",
            f"{p['distinct']:,}",
            str(p.get("min", p.get("min_length"))),
            str(p.get("max", p.get("max_length"))),
        )
    c.print(t)
    if report.get("pii_masked"):
        c.print(f"PII masked in free text: {report['pii_masked']}")
    if report.get("freshness"):
        c.print(f"freshness: {report['freshness']}")


@cli.command("lineage")
@click.argument("asset")
@click.option("--version", type=int, default=None, help="Version (default: latest).")
@json_option
@click.pass_obj
def lineage_cmd(state: State, asset: str, version: int | None) -> None:
    """Where ASSET came from: earlier versions, checked assets and source files."""
    with Warehouse(state.workspace, read_only=True) as wh:
        graph = lineage_graph(wh, asset, version)
    if state.json:
        emit_json(graph)
        return
    inputs: dict[str, list[tuple[str, str]]] = {}
    for e in graph["edges"]:
        inputs.setdefault(e["to"], []).append((e["from"], e["relation"]))

    def add(tree: Tree, node: str, seen: set[str]) -> None:
        for src, rel in inputs.get(node, []):
            info = graph["nodes"].get(src, {})
            label = (
                src
                if info.get("type") != "file"
                else f"{src} (sha256 {info['sha256'][:12]}…, {info['bytes']:,} bytes)"
            )
            child = tree.add(f"[dim]{rel}[/] {label}")
            if src not in seen:
                add(child, src, seen | {src})

    root = Tree(f"[bold]{graph['root']}[/]")
    add(root, graph["root"], {graph["root"]})
    console().print(root)


def _jsonable_rows(names: list[str], rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [dict(zip(names, r, strict=True)) for r in rows]


@cli.command("sql")
@click.argument("query")
@click.option("--limit", type=int, default=None, help="At most this many rows.")
@json_option
@click.pass_obj
def sql_cmd(state: State, query: str, limit: int | None) -> None:
    """Run a read-only SELECT; each asset's latest version is a view named after it."""
    with Warehouse(state.workspace, read_only=True) as wh:
        names, rows = wh.query(query, limit)
    data = _jsonable_rows(names, rows)
    if state.json:
        emit_json(data)
        return
    t = Table()
    for n in names:
        t.add_column(n)
    for r in rows[:200]:
        t.add_row(*("" if x is None else str(x) for x in r))
    console().print(t)
    if len(rows) > 200:
        console().print(f"… {len(rows) - 200:,} more rows (use --json for all)")


@cli.command("quarantine")
@click.argument("asset")
@click.option("--reason", default=None, help="Only this reason code.")
@click.option("--limit", type=int, default=20, show_default=True)
@json_option
@click.pass_obj
def quarantine_cmd(state: State, asset: str, reason: str | None, limit: int) -> None:
    """Rejected rows of ASSET with reason, source file and line (user ids pseudonymized)."""
    with Warehouse(state.workspace, read_only=True) as wh:
        wh.version(asset)
        where = "asset = ?" + (" AND reason = ?" if reason else "")
        params = [asset] + ([reason] if reason else [])
        cur = wh.con.execute(
            f"SELECT version, reason, column_name, source_file, source_line, raw, detail "
            f"FROM quarantine WHERE {where} ORDER BY version, source_line LIMIT {int(limit)}",
            params,
        )
        names = [d[0] for d in cur.description or []]
        rows = _jsonable_rows(names, cur.fetchall())
    if state.json:
        emit_json(rows)
        return
    t = Table(title=f"quarantine of {asset}")
    for n in ("v", "reason", "column", "file:line", "raw"):
        t.add_column(n, overflow="fold")
    for r in rows:
        raw = r["raw"]
        with contextlib.suppress(ValueError):
            raw = json.dumps(json.loads(raw), ensure_ascii=False) if raw else ""
        t.add_row(
            str(r["version"]),
            r["reason"],
            r["column_name"] or "",
            f"{r['source_file']}:{r['source_line']}",
            raw[:120],
        )
    console().print(t)


@cli.command("export")
@click.argument("asset")
@click.option(
    "--out",
    "dest",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The Delta table's folder (created; a later export adds only new versions).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["delta"]),
    default="delta",
    show_default=True,
    help="Table format a cluster reads (Spark, Trino, DuckDB's delta extension).",
)
@json_option
@click.pass_obj
def export_cmd(state: State, asset: str, dest: Path, fmt: str) -> None:
    """Write ASSET's versions as a Delta Lake table, one commit per version."""
    from shopkeeper.warehouse._delta import export_delta

    out = export_delta(state.workspace, asset, dest)
    if state.json:
        emit_json(out)
        return
    if not out["written"]:
        console().print(f"{out['path']} already holds {asset} v{out['shopkeeper_version']}")
        return
    how = ", ".join(f"v{w['version']} ({w['mode']})" for w in out["written"])
    note = (
        " after an erasure: older Delta versions vacuumed" if out["rewritten_after_erasure"] else ""
    )
    console().print(
        f"{asset} → {out['path']} ({fmt}): {how}{note}; Delta version {out['delta_version']}, "
        f"{out['rows']:,} rows"
    )
