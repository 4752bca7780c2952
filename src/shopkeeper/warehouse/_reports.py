"""The catalog and quality reports as JSON data: shared by the CLI and the service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shopkeeper.warehouse._warehouse import Warehouse


def catalog_entries(wh: Warehouse) -> list[dict[str, Any]]:
    """Every asset's latest version: summary, version count, PII tags, schema, sources."""
    rows = []
    for v in wh.latest_versions():
        entry = v.summary()
        entry["versions"] = len(wh.versions(v.asset))
        entry["pii"] = {k: p for k, p in v.pii.items() if p != "none"}
        entry["schema"] = v.schema
        entry["sources"] = wh.sources(v.asset, v.version)
        rows.append(entry)
    return rows


def quality_report(wh: Warehouse, asset: str, version: int | None = None) -> dict[str, Any]:
    """The quality metrics of one version (the latest by default), with the history.

    Raises:
        NotFoundError: no such asset or version.
    """
    v = wh.version(asset, version)
    history = [
        {
            "version": x.version,
            "status": x.quality.get("status"),
            "rows": x.row_count,
            **x.quality.get("load", {}),
        }
        for x in wh.versions(asset)
    ]
    return {"asset": v.asset, "version": v.version, **v.quality, "history": history}
