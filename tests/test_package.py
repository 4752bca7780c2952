"""Package hygiene: curated exports, import direction, and SQL that Spark can run."""

from __future__ import annotations

import ast
import importlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlglot

from shopkeeper.clean import Pseudonymizer, build_mapped_sql
from shopkeeper.clean._classify import _dedup_case, _near_duplicates_sql, _set_rules_sql
from shopkeeper.clean._config import CleaningConfig
from shopkeeper.ingest import AdapterContext, get_adapter
from tests.conftest import SAMPLES

SRC = Path(__file__).resolve().parents[1] / "src" / "shopkeeper"
PACKAGES = [
    "shopkeeper",
    "shopkeeper.clean",
    "shopkeeper.config",
    "shopkeeper.ingest",
    "shopkeeper.logging",
    "shopkeeper.schema",
    "shopkeeper.warehouse",
    "shopkeeper.features",
    "shopkeeper.rec",
    "shopkeeper.search",
    "shopkeeper.serve",
    "shopkeeper.cli",
    "shopkeeper.testing",
]


def _isort_key(name: str) -> tuple[int, str]:
    """Constants, then classes, then functions: the order ruff's RUF022 keeps."""
    if name.isupper() or (name.upper() == name and "_" in name):
        return 0, name
    return (1, name) if name[:1].isupper() else (2, name)


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_complete(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=_isort_key)
    public = {n for n in vars(module) if not n.startswith("_")} - {"annotations"}
    submodules = {n for n in public if type(getattr(module, n)).__name__ == "module"}
    assert public - submodules - set(exported) == set()
    assert all(hasattr(module, n) for n in exported)


_ORDER = ["ingest", "clean", "warehouse", "features", "rec", "search", "serve", "cli"]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("shopkeeper.")
        ):
            found.add(node.module.split(".")[1])
    return found


@pytest.mark.parametrize("stage", _ORDER)
def test_imports_go_downstream_only(stage: str) -> None:
    later = set(_ORDER[_ORDER.index(stage) + 1 :])
    for path in (SRC / stage).rglob("*.py"):
        assert not (_imports(path) & later), f"{path} imports a later stage"
        if stage in ("ingest", "clean"):
            text = path.read_text(encoding="utf-8")
            assert "import torch" not in text
            assert "fastapi" not in text


def test_cleaning_sql_transpiles_to_spark(duckdb_con: object) -> None:
    """The cleaning SQL is portable: SQLGlot turns every statement into Spark SQL."""
    import duckdb

    assert isinstance(duckdb_con, duckdb.DuckDBPyConnection)
    ctx = AdapterContext(duckdb_con, Path("/tmp/shopkeeper-transpile"))
    plans = get_adapter("online-retail").plan(
        ctx, SAMPLES / "online-retail-2010-12.csv.gz", None, None
    )
    pseudo = Pseudonymizer((b"k" * 32,))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for plan in plans:
        cfg = CleaningConfig.model_validate(plan.cleaning)
        stmts, sqls = build_mapped_sql(plan, pseudo, cfg, now, f"m_{plan.asset}")
        present = {n for n in sqls if not n.startswith("_")}
        ctes, _, case = _set_rules_sql(plan, cfg, present, "items_src")
        dedup, _ = _dedup_case(plan, cfg, present)
        near = _near_duplicates_sql(plan, cfg, present, "t", "f")
        assert (near is not None) == (plan.kind == "events")
        for sql in [
            *stmts,
            f"WITH {', '.join(ctes) or 'x AS (SELECT 1)'} SELECT {case}",
            f"SELECT {dedup} FROM t",
            *([near] if near else []),
        ]:
            spark = sqlglot.transpile(
                sql, read="duckdb", write="spark", unsupported_level=sqlglot.ErrorLevel.RAISE
            )
            assert spark
            assert spark[0]
