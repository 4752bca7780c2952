"""`shopkeeper ingest PATH --adapter NAME [--kind KIND] [--mapping FILE]`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from shopkeeper.cli._app import State, cli, console, emit_json, json_option
from shopkeeper.ingest import adapter_names
from shopkeeper.schema import ASSET_KINDS, AssetKind
from shopkeeper.warehouse import IngestRequest, ingest
from shopkeeper.warehouse._loader import ENGINES, Engine


def render_results(results: list[dict[str, Any]]) -> None:
    """Print ingest results as a table with the top reasons."""
    table = Table(title="Ingest", show_lines=False)
    for col in (
        "asset",
        "version",
        "status",
        "input",
        "clean",
        "quarantined",
        "duplicates",
        "rows now",
    ):
        table.add_column(col, justify="left" if col in ("asset", "status") else "right")
    for r in results:
        table.add_row(
            r["asset"],
            f"v{r['version']}",
            r["status"],
            f"{r['input_rows']:,}",
            f"{r['clean_rows']:,}",
            f"{r['quarantined_rows']:,}",
            f"{r['duplicate_rows']:,}",
            f"{r.get('rows', 0):,}",
        )
    console().print(table)
    for r in results:
        if r["reasons"]:
            top = ", ".join(f"{k} {v:,}" for k, v in r["reasons"].items())
            console().print(f"  {r['asset']}: {top}", highlight=False)
    if any(r["status"] == "unchanged" for r in results):
        console().print("Already ingested (same content hash): nothing changed.")


@cli.command("ingest")
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--adapter",
    type=click.Choice(adapter_names()),
    default="generic",
    show_default=True,
    help="How to read the source.",
)
@click.option(
    "--kind",
    type=click.Choice(list(ASSET_KINDS)),
    default=None,
    help="What the file holds (generic adapter).",
)
@click.option(
    "--mapping",
    "mapping_path",
    type=click.Path(path_type=Path),
    default=None,
    help="YAML mapping: renames, casts, formats, time zones, value maps.",
)
@click.option(
    "--engine",
    type=click.Choice(list(ENGINES)),
    default="duckdb",
    show_default=True,
    help="Where cleaning runs: in-process DuckDB, or Spark (needs the spark extra and Java).",
)
@json_option
@click.pass_obj
def ingest_cmd(
    state: State,
    path: Path,
    adapter: str,
    kind: AssetKind | None,
    mapping_path: Path | None,
    engine: Engine,
) -> None:
    """Ingest PATH: clean it and write new versions of the assets it holds."""
    results = ingest(
        state.workspace, IngestRequest(path, adapter, kind, mapping_path, engine), state.settings
    )
    if state.json:
        emit_json(results)
    else:
        render_results(results)
