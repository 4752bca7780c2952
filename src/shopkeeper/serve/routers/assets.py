"""`GET /assets`, `/assets/{name}`, `/assets/{name}/quality`, `/assets/{name}/lineage`."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from shopkeeper.serve._service import Service
from shopkeeper.serve.deps import get_service, require
from shopkeeper.warehouse import Warehouse, catalog_entries, lineage_graph, quality_report

router = APIRouter(prefix="/assets", tags=["assets"], dependencies=[Depends(require("admin"))])

_Name = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_]+$")]
_Version = Annotated[int | None, Query(ge=1, description="Version (default: latest).")]


def _catalog(service: Service) -> list[dict[str, Any]]:
    with Warehouse(service.ws, read_only=True) as wh:
        return catalog_entries(wh)


def _asset(service: Service, name: str) -> dict[str, Any]:
    with Warehouse(service.ws, read_only=True) as wh:
        versions = wh.versions(name)
        latest = wh.version(name)
        return {
            **latest.summary(),
            "schema": latest.schema,
            "pii": latest.pii,
            "params": latest.params,
            "sources": wh.sources(name, latest.version),
            "versions": [v.summary() for v in versions],
        }


def _quality(service: Service, name: str, version: int | None) -> dict[str, Any]:
    with Warehouse(service.ws, read_only=True) as wh:
        return quality_report(wh, name, version)


def _lineage(service: Service, name: str, version: int | None) -> dict[str, Any]:
    with Warehouse(service.ws, read_only=True) as wh:
        return lineage_graph(wh, name, version)


@router.get("")
async def list_assets(service: Annotated[Service, Depends(get_service)]) -> list[dict[str, Any]]:
    """Every asset: latest version, rows, freshness, quality status, schema, PII tags."""
    return await asyncio.to_thread(_catalog, service)


@router.get("/{name}")
async def get_asset(
    service: Annotated[Service, Depends(get_service)], name: _Name
) -> dict[str, Any]:
    """One asset: its latest version in full and every version's summary."""
    return await asyncio.to_thread(_asset, service, name)


@router.get("/{name}/quality")
async def get_quality(
    service: Annotated[Service, Depends(get_service)], name: _Name, version: _Version = None
) -> dict[str, Any]:
    """The quality report: null rates, distinct counts, ranges, reasons, PII, freshness."""
    return await asyncio.to_thread(_quality, service, name, version)


@router.get("/{name}/lineage")
async def get_lineage(
    service: Annotated[Service, Depends(get_service)], name: _Name, version: _Version = None
) -> dict[str, Any]:
    """Where the asset came from: versions, checked assets, source files with hashes."""
    return await asyncio.to_thread(_lineage, service, name, version)
