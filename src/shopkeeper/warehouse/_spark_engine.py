"""The Spark engine of ingest: the same cleaning SQL, run on a SparkSession.

Reading stays with the shared staging step (DuckDB's CSV/JSON reader), whose
malformed-line and encoding rules and line numbers the accounting and the quarantine
depend on; Spark's CSV reader decodes bad bytes to U+FFFD without saying which line
held them and numbers no lines, so it could not report the same reasons. The staged
rows (with their ordinals) go to Spark as Parquet, `classify` runs there through
`SparkSqlRunner` (the DuckDB SQL transpiled by SQLGlot), and the classified rows come
back as Parquet so the same writer writes data, quarantine, counts and lineage.
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
from shopkeeper.ingest import quote_ident, sql_literal
from shopkeeper.logging import get_logger
from shopkeeper.schema import columns, duckdb_type

if TYPE_CHECKING:
    from collections.abc import Iterator
    from datetime import datetime
    from pathlib import Path

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
    """Cleans plans on Spark and hands the classified rows back to DuckDB.

    Rows travel as Parquet files under the load's tmp folder (written by DuckDB, read
    by Spark's executors, and back), never through the Spark driver.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, spark: SparkSession, exchange: Path) -> None:
        self.con = con
        self.spark = spark
        self.runner = SparkSqlRunner(spark)
        self.exchange = exchange
        """Folder of the Parquet handed between the engines (shared storage on a cluster)."""
        register_spark_functions(spark)
        self._shipped: set[str] = set()

    def _to_spark(self, name: str, select: str) -> None:
        path = self.exchange / f"{name}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.con.execute(f"COPY ({select}) TO {sql_literal(str(path))} (FORMAT parquet)")
        self.runner.register(name, self.spark.read.parquet(str(path)))

    def _from_spark(self, view: str, table: str) -> None:
        path = self.exchange / f"{table}.out"
        self.spark.table(view).write.mode("overwrite").parquet(str(path))
        files = sql_literal(str(path / "*.parquet"))
        self.con.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM read_parquet({files})")

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
        if stage not in self._shipped:
            self._to_spark(stage, f"SELECT rowid, * FROM {stage}")
            self._shipped.add(stage)
        before = set(self.runner.views)
        known = None
        if items_source is not None:
            known = f"{table}_items"
            self._to_spark(
                known, f"SELECT DISTINCT CAST(item_id AS VARCHAR) AS item_id FROM {items_source}"
            )
        load = classify(self.runner, plan, pseudo, now, known, table)
        landed = f"{table}_spark"
        self._from_spark(load.classified, landed)
        for name in self.runner.views - before:
            if not name.endswith("_dup"):  # shared by the plans of one stage
                self.runner.drop(name)
        cols = ", ".join(
            f"CAST({quote_ident(c.name)} AS {duckdb_type(c)}) AS {quote_ident(c.name)}"
            for c in columns(plan.kind)
        )
        extra = ", ".join(["_ord", *(quote_ident(p) for p in load.pii_columns)])
        self.con.execute(
            f"CREATE TEMP VIEW {table} AS SELECT {cols}, {extra}, _reason, _column FROM {landed}"
        )
        _log.debug("cleaned on spark", asset=plan.asset)
        return CleanedLoad(table, load.pii_columns, (landed,))

    def close(self) -> None:
        """Drop the temp views this load made on Spark."""
        self.runner.close()
