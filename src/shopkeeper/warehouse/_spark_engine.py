"""The Spark engine of ingest: the same cleaning SQL, run on a SparkSession.

Reading stays with the shared staging step (DuckDB's CSV/JSON reader), whose
malformed-line and encoding rules and line numbers the accounting and the quarantine
depend on; Spark's CSV reader decodes bad bytes to U+FFFD without saying which line
held them and numbers no lines, so it could not report the same reasons. The staged
rows (with their ordinals) are shipped to Spark as Arrow, `classify` runs there through
`SparkSqlRunner` (the DuckDB SQL transpiled by SQLGlot), and the classified rows come
back as Arrow so the same writer writes data, quarantine, counts and lineage.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING

from shopkeeper.clean import CleanedLoad, classify
from shopkeeper.clean._spark import (
    SparkSqlRunner,
    register_spark_functions,
    require_spark,
    start_spark,
)
from shopkeeper.ingest import quote_ident
from shopkeeper.logging import get_logger
from shopkeeper.schema import columns, duckdb_type

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime

    import duckdb
    from pyspark.sql import SparkSession

    from shopkeeper.clean import Pseudonymizer
    from shopkeeper.config import ShopkeeperSettings
    from shopkeeper.ingest import AssetPlan

_log = get_logger(__name__)


@contextmanager
def spark_session(settings: ShopkeeperSettings) -> Iterator[SparkSession]:
    """The active SparkSession, or a new one (stopped on exit) from the settings."""
    require_spark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        yield active
        return
    spark = start_spark(
        settings.spark_master, settings.spark_driver_memory, settings.spark_shuffle_partitions
    )
    try:
        yield spark
    finally:
        spark.stop()


class SparkCleaner:
    """Cleans plans on Spark and hands the classified rows back to DuckDB."""

    def __init__(self, con: duckdb.DuckDBPyConnection, spark: SparkSession) -> None:
        self.con = con
        self.runner = SparkSqlRunner(spark)
        register_spark_functions(spark)
        self._shipped: set[str] = set()

    def classify(
        self,
        plan: AssetPlan,
        pseudo: Pseudonymizer,
        now: datetime,
        items_source: str | None,
        table: str,
    ) -> CleanedLoad:
        """`classify` on Spark; returns the load as DuckDB relations for the writer."""
        stage = plan.stage.table
        self.con.complete()  # finish an earlier execute() result before relational queries
        if stage not in self._shipped:
            staged = self.con.sql(f"SELECT rowid, * FROM {stage}").to_arrow_table()
            self.runner.register_arrow(stage, staged)
            self._shipped.add(stage)
        before = set(self.runner.views)
        known = None
        if items_source is not None:
            known = f"{table}_items"
            ids = self.con.sql(
                f"SELECT DISTINCT CAST(item_id AS VARCHAR) AS item_id FROM {items_source}"
            ).to_arrow_table()
            self.runner.register_arrow(known, ids)
        load = classify(self.runner, plan, pseudo, now, known, table)
        rows = self.runner.fetch_arrow(load.classified)
        for name in self.runner.views - before:
            if not name.endswith("_dup"):  # shared by the plans of one stage
                self.runner.drop(name)
        landed = f"{table}_spark"
        self.con.register(f"{landed}_arrow", rows)
        self.con.execute(f"CREATE TEMP TABLE {landed} AS SELECT * FROM {landed}_arrow")
        self.con.unregister(f"{landed}_arrow")
        cols = ", ".join(
            f"CAST({quote_ident(c.name)} AS {duckdb_type(c)}) AS {quote_ident(c.name)}"
            for c in columns(plan.kind)
        )
        extra = ", ".join(["_ord", *(quote_ident(p) for p in load.pii_columns)])
        self.con.execute(
            f"CREATE TEMP VIEW {table} AS SELECT {cols}, {extra}, _reason, _column FROM {landed}"
        )
        _log.debug("cleaned on spark", asset=plan.asset, rows=rows.num_rows)
        return CleanedLoad(table, load.pii_columns, (landed,))

    def close(self) -> None:
        """Drop the temp views this load made on Spark."""
        self.runner.close()
