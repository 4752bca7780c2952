"""Lineage: walk from an asset version back to the files it came from."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shopkeeper.warehouse._warehouse import Warehouse


def lineage_graph(wh: Warehouse, asset: str, version: int | None = None) -> dict[str, Any]:
    """Nodes and edges upstream of one asset version (latest by default).

    Nodes are `asset:NAME@vN` and `file:PATH`; an edge goes from input to output.
    """
    start = wh.version(asset, version)
    nodes: dict[str, dict[str, Any]] = {}
    edges: list[dict[str, str]] = []
    todo = [(start.asset, start.version)]
    while todo:
        a, v = todo.pop()
        node = f"asset:{a}@v{v}"
        if node in nodes:
            continue
        info = wh.version(a, v)
        nodes[node] = {
            "type": "asset",
            "asset": a,
            "version": v,
            "kind": info.kind,
            "transform": info.transform,
            "rows": info.row_count,
            "created_at": info.created_at.isoformat(),
        }
        for src in wh.sources(a, v):
            fnode = f"file:{src['path']}"
            nodes.setdefault(fnode, {"type": "file", **src})
            edges.append({"from": fnode, "to": node, "relation": "read_by"})
        for pa, pv, rel in wh.parents(a, v):
            edges.append({"from": f"asset:{pa}@v{pv}", "to": node, "relation": rel})
            todo.append((pa, pv))
    return {"root": f"asset:{start.asset}@v{start.version}", "nodes": nodes, "edges": edges}
