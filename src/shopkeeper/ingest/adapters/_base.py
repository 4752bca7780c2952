"""The adapter interface and registry."""

from __future__ import annotations

import importlib
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from shopkeeper.errors import ConfigError, PluginNotFoundError
from shopkeeper.ingest._files import SourceFile, inspect_source
from shopkeeper.ingest._mapping import MappingConfig, ReadOptions
from shopkeeper.ingest._readers import StagedTable, stage_source

if TYPE_CHECKING:
    from pathlib import Path

    import duckdb

    from shopkeeper.ingest._plan import AssetPlan
    from shopkeeper.schema import AssetKind

_REGISTRY = {
    "generic": "shopkeeper.ingest.adapters._generic:GenericAdapter",
    "online-retail": "shopkeeper.ingest.adapters._online_retail:OnlineRetailAdapter",
    "movielens": "shopkeeper.ingest.adapters._movielens:MovieLensAdapter",
    "home-depot": "shopkeeper.ingest.adapters._home_depot:HomeDepotAdapter",
}


@dataclass
class AdapterContext:
    """What an adapter may use: the processing connection and a staging helper."""

    con: duckdb.DuckDBPyConnection
    tmp_dir: Path
    sources: list[SourceFile] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=itertools.count)

    def stage(self, path: Path, read: ReadOptions | None = None) -> StagedTable:
        """Inspect and stage one file; remembers it as a source of this load."""
        opts = read or ReadOptions()
        src = inspect_source(path, opts.encoding)
        self.sources.append(src)
        return stage_source(self.con, src, opts, f"stage_{next(self._counter)}", self.tmp_dir)


class Adapter(Protocol):
    """Turns source paths into asset plans."""

    name: str

    def plan(
        self,
        ctx: AdapterContext,
        path: Path,
        kind: AssetKind | None,
        mapping: MappingConfig | None,
    ) -> list[AssetPlan]:
        """Stage the files under `path` and return one plan per asset, in write order."""
        ...


def adapter_names() -> list[str]:
    """Names of the built-in adapters."""
    return sorted(_REGISTRY)


def get_adapter(name: str) -> Adapter:
    """Resolve an adapter by name.

    Raises:
        PluginNotFoundError: no adapter has that name.
    """
    target = _REGISTRY.get(name)
    if target is None:
        raise PluginNotFoundError("adapter", name, list(_REGISTRY))
    module, cls = target.split(":")
    adapter: Adapter = getattr(importlib.import_module(module), cls)()
    return adapter


def require_file(path: Path, names: list[str], adapter: str) -> Path:
    """`path` itself if it is a file, else the first of `names` inside the folder."""
    if path.is_file():
        return path
    if path.is_dir():
        for n in names:
            if (path / n).is_file():
                return path / n
    raise ConfigError(
        f"{adapter}: expected a file or a folder holding one of {names}", path=str(path)
    )
