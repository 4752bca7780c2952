"""Process-wide settings read from the environment (`SHOPKEEPER_*`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import PositiveInt
from pydantic_settings import BaseSettings, SettingsConfigDict


class ShopkeeperSettings(BaseSettings):
    """Settings shared by the CLI and the library."""

    model_config = SettingsConfigDict(env_prefix="SHOPKEEPER_", extra="forbid")

    home: Path = Path(".shopkeeper")
    """The workspace folder: catalog, versioned Parquet assets, keys."""
    memory_limit: str = "768MB"
    """DuckDB memory limit; larger work spills to the workspace's tmp folder."""
    work_on_disk: Literal["auto", "always", "never"] = "auto"
    """Where an ingest keeps its staged and cleaned tables: in memory, or compressed in a
    DuckDB file in the workspace's tmp folder. `auto`: on disk when the source's text is
    more than half the memory limit (there the tables would spill uncompressed)."""
    threads: PositiveInt | None = None
    """DuckDB worker threads (default: all cores)."""
    spark_master: str = "local[2]"
    """Spark master of a session the Spark engine starts (`ingest --engine spark`)."""
    spark_driver_memory: str = "1g"
    """Driver memory of that session."""
    spark_shuffle_partitions: PositiveInt = 2
    """`spark.sql.shuffle.partitions` of that session (small loads: few partitions)."""
