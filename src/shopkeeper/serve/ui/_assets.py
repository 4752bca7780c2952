"""Page data of the catalog, an asset (schema, samples, quality, quarantine) and lineage."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import duckdb

from shopkeeper.ingest import quote_ident
from shopkeeper.serve.ui._svg import GraphNode, bar_chart, graph_svg, line_chart
from shopkeeper.warehouse import Warehouse, catalog_entries, lineage_graph

if TYPE_CHECKING:
    from shopkeeper.warehouse import AssetVersion, Workspace

ENCRYPTED = "[encrypted]"
"""What a sealed value shows as."""
SAMPLE_ROWS = 20
QUARANTINE_ROWS = 50
_CELL_CHARS = 120


def catalog_rows(ws: Workspace) -> list[dict[str, Any]]:
    """Every asset's latest version: versions, rows, freshness, quality, quarantine, PII."""
    with Warehouse(ws, read_only=True) as wh:
        rows = catalog_entries(wh)
    for entry in rows:
        entry["quarantined"] = entry["quarantined_rows"]
        entry["pii"] = sorted(entry["pii"])
        entry["latest_data"] = (entry.get("freshness") or {}).get("latest")
    return rows


def encrypted_columns(v: AssetVersion) -> set[str]:
    """The columns sealed at rest in one version (from its params)."""
    marker = v.params.get("encrypted") or {}
    return set(marker.get("columns", [])) if isinstance(marker, dict) else set()


def mask_cell(value: Any, sealed: bool) -> str:
    """One sample cell as shown: sealed values hidden, long ones shortened."""
    if value is None:
        return ""
    if sealed or (isinstance(value, str) and value.startswith("enc:v")):
        return ENCRYPTED
    if isinstance(value, list | tuple) and len(value) > 8:
        return f"[{len(value)} values]"
    if isinstance(value, float):
        return f"{value:.10g}"
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= _CELL_CHARS else text[: _CELL_CHARS - 1] + "…"


def _sample(wh: Warehouse, v: AssetVersion) -> tuple[list[str], list[list[str]]]:
    """A few rows of one version, masked; no rows when it has no table view."""
    view = quote_ident(f"{v.asset}_v{v.version}")
    try:
        cur = wh.con.execute(f"SELECT * FROM {view} LIMIT {SAMPLE_ROWS}")
    except duckdb.Error:
        return [], []
    names = [d[0] for d in cur.description or []]
    sealed = encrypted_columns(v)
    rows = [
        [mask_cell(x, n in sealed) for n, x in zip(names, r, strict=True)] for r in cur.fetchall()
    ]
    return names, rows


def _quarantine(
    wh: Warehouse, asset: str, admin: bool, reason: str | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Counts per (version, reason), and (admins only) the raw rows of one reason."""
    counts = [
        {"version": v, "reason": r, "rows": n}
        for v, r, n in wh.con.execute(
            "SELECT version, reason, count(*) FROM quarantine WHERE asset = ? "
            "GROUP BY ALL ORDER BY version DESC, 3 DESC",
            [asset],
        ).fetchall()
    ]
    if not admin or not counts:
        return counts, []
    sql = (
        "SELECT version, reason, column_name, detail, source_file, source_line, raw "
        "FROM quarantine WHERE asset = ?"
    )
    args: list[Any] = [asset]
    if reason:
        sql += " AND reason = ?"
        args.append(reason)
    sql += f" ORDER BY version DESC, source_file, source_line LIMIT {QUARANTINE_ROWS}"
    cols = ["version", "reason", "column", "detail", "source_file", "source_line", "raw"]
    rows = [dict(zip(cols, r, strict=True)) for r in wh.con.execute(sql, args).fetchall()]
    for r in rows:
        r["raw"] = _pretty_raw(r["raw"])
    return counts, rows


def _pretty_raw(raw: str | None) -> str:
    """The raw source row as `key=value` pairs, sealed values hidden."""
    if not raw:
        return ""
    try:
        data = json.loads(raw)
    except ValueError:
        return raw
    if not isinstance(data, dict):
        return raw
    return ", ".join(f"{k}={mask_cell(v, False)}" for k, v in data.items())


def _charts(versions: list[AssetVersion]) -> list[Any]:
    """Quality over versions: row accounting and each column's null rate."""
    counts = {
        "rows": [(float(v.version), float(v.row_count)) for v in versions],
        "quarantined": [(float(v.version), float(v.quarantined_rows)) for v in versions],
        "duplicates": [(float(v.version), float(v.duplicate_rows)) for v in versions],
    }
    nulls: dict[str, list[tuple[float, float]]] = {}
    for v in versions:
        for col, prof in (v.quality.get("columns") or {}).items():
            rate = prof.get("null_rate") if isinstance(prof, dict) else None
            if rate is not None:
                nulls.setdefault(col, []).append((float(v.version), float(rate)))
    charts = [line_chart(counts, title="Rows per version", x_label="version")]
    if nulls:
        charts.append(line_chart(nulls, title="Null rate per column", x_label="version"))
    return charts


def asset_detail(ws: Workspace, name: str, *, admin: bool, reason: str | None) -> dict[str, Any]:
    """Everything the asset page shows (quarantined raw rows only for admins).

    Raises:
        NotFoundError: no such asset.
    """
    with Warehouse(ws, read_only=True) as wh:
        versions = wh.versions(name)
        latest = versions[-1]
        columns, sample = _sample(wh, latest)
        counts, qrows = _quarantine(wh, name, admin, reason)
        sources = wh.sources(name, latest.version)
    sealed = encrypted_columns(latest)
    schema = [
        {**c, "pii": latest.pii.get(c["name"], c.get("pii", "none")), "sealed": c["name"] in sealed}
        for c in latest.schema
    ]
    per_reason: dict[str, int] = {}
    for c in counts:
        per_reason[c["reason"]] = per_reason.get(c["reason"], 0) + c["rows"]
    return {
        "summary": latest.summary(),
        "latest": latest,
        "versions": [{**v.summary(), "quarantined": v.quarantined_rows} for v in versions],
        "schema": schema,
        "columns": columns,
        "sample": sample,
        "sources": sources,
        "quality": latest.quality,
        "charts": _charts(versions),
        "quarantine_counts": counts,
        "quarantine_chart": bar_chart(
            sorted(per_reason.items(), key=lambda kv: -kv[1]), title="Quarantined rows by reason"
        )
        if per_reason
        else None,
        "quarantine_rows": qrows,
        "reasons": sorted(per_reason),
        "reason": reason,
    }


def _downstream(wh: Warehouse, asset: str, version: int) -> tuple[set[tuple[str, int]], list[Any]]:
    """Asset versions built from (asset, version), transitively, and the edges to them."""
    rows = wh.con.execute(
        "SELECT parent_asset, parent_version, asset, version, relation FROM meta.parents"
    ).fetchall()
    children: dict[tuple[str, int], list[tuple[str, int, str]]] = {}
    for pa_, pv, a, v, rel in rows:
        children.setdefault((pa_, pv), []).append((a, v, rel))
    seen: set[tuple[str, int]] = set()
    edges = []
    todo = [(asset, version)]
    while todo:
        cur = todo.pop()
        for a, v, rel in children.get(cur, []):
            edges.append((f"asset:{cur[0]}@v{cur[1]}", f"asset:{a}@v{v}", rel))
            if (a, v) not in seen:
                seen.add((a, v))
                todo.append((a, v))
    return seen, edges


def lineage_view(
    ws: Workspace, name: str, version: int | None, served: dict[str, int]
) -> dict[str, Any]:
    """The graph around one asset version: every input back to raw files, every output.

    Raises:
        NotFoundError: no such asset or version.
    """
    with Warehouse(ws, read_only=True) as wh:
        up = lineage_graph(wh, name, version)
        root = wh.version(name, version)
        down, down_edges = _downstream(wh, root.asset, root.version)
        info = {f"asset:{a}@v{v}": wh.version(a, v) for a, v in down}
        all_versions = [v.version for v in wh.versions(name)]
    nodes: dict[str, dict[str, Any]] = dict(up["nodes"])
    for nid, v in info.items():
        nodes.setdefault(
            nid,
            {
                "type": "asset",
                "asset": v.asset,
                "version": v.version,
                "kind": v.kind,
                "transform": v.transform,
                "rows": v.row_count,
            },
        )
    edges = [(e["from"], e["to"], e["relation"]) for e in up["edges"]] + down_edges
    edges = list(dict.fromkeys(edges))
    drawn = [_graph_node(nid, n, up["root"], served) for nid, n in nodes.items()]
    return {
        "asset": root.asset,
        "version": root.version,
        "versions": all_versions,
        "nodes": nodes,
        "edges": edges,
        "svg": graph_svg(drawn, edges, title=lambda g: g.label + " — " + g.sub),
        "upstream": len(up["nodes"]) - 1,
        "downstream": len(info),
    }


def _graph_node(nid: str, n: dict[str, Any], root: str, served: dict[str, int]) -> GraphNode:
    if n["type"] == "file":
        path = str(n.get("path", nid[5:]))
        return GraphNode(
            nid, path.rsplit("/", 1)[-1], f"raw file · {n.get('bytes', 0):,} B", "file", None
        )
    live = served.get(n["asset"]) == n["version"]
    sub = f"v{n['version']} · {n['kind']} · {n['rows']:,} rows" + (" · live" if live else "")
    href = (
        f"/ui/assets/{n['asset']}"
        if nid == root
        else (f"/ui/lineage/{n['asset']}?version={n['version']}")
    )
    return GraphNode(
        nid, f"{n['asset']} v{n['version']}", sub, "root" if nid == root else "asset", href
    )
