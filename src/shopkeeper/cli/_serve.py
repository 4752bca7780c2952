"""`shopkeeper serve`, `shopkeeper keys …` and `shopkeeper events compact`."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from shopkeeper.cli._app import State, cli, console, emit_json, json_option
from shopkeeper.errors import NotFoundError
from shopkeeper.logging import get_logger

_log = get_logger(__name__)


def _require_serve() -> Any:
    try:
        import uvicorn
    except ImportError as exc:
        raise ImportError('the service needs its extra: pip install "shopkeeper[serve]"') from exc
    return uvicorn


def _prepare(state: State) -> None:
    """Build what workers only read (the search index, the snapshot files), once."""
    from shopkeeper.serve._live import LiveEventStore
    from shopkeeper.serve._snapshot import prepare_snapshot, snapshot_key

    ws = state.workspace
    if not ws.exists():
        raise NotFoundError(f"no Shopkeeper workspace at {ws.home}; run `shopkeeper ingest` first")
    try:
        from shopkeeper.search import build_search_index

        build_search_index(ws)
    except (ImportError, NotFoundError) as exc:
        _log.warning("search not available", error=str(exc))
    live = LiveEventStore.of(ws)
    ws.field_cipher.load()
    prepare_snapshot(ws, snapshot_key(ws, live.erased_count()))


@cli.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.option("--no-cache", is_flag=True, help="Turn the response cache off.")
@click.option("--no-batching", is_flag=True, help="Score every request alone.")
@click.option(
    "--compact-every",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="SECONDS",
    help="Fold live events into the warehouse this often (0: only `events compact`).",
)
@click.pass_obj
def serve_cmd(
    state: State,
    host: str,
    port: int,
    workers: int,
    no_cache: bool,
    no_batching: bool,
    compact_every: float,
) -> None:
    """Serve /search, /recommend, /similar, /events, /assets, /health and /metrics."""
    uvicorn = _require_serve()
    _prepare(state)
    env = {
        "SHOPKEEPER_SERVE_HOME": str(state.workspace.home),
        "SHOPKEEPER_SERVE_MODEL_THREADS": str(max(1, (os.cpu_count() or 1) // workers)),
    }
    if no_cache:
        env["SHOPKEEPER_SERVE_CACHE_SIZE"] = "0"
    if no_batching:
        env["SHOPKEEPER_SERVE_BATCHING"] = "false"
    if compact_every:
        env["SHOPKEEPER_SERVE_COMPACT_INTERVAL_S"] = str(compact_every)
    if workers > 1:
        metrics_dir = state.workspace.home / "tmp-metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    os.environ.update(env)
    click.echo(
        f"serving {state.workspace.home} on http://{host}:{port} with {workers} worker(s); "
        f"docs at /docs",
        err=True,
    )
    uvicorn.run(
        "shopkeeper.serve:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=False,  # our access line names the route, not a path holding an id
        log_level="warning" if state.verbose == 0 else "info",
        http="httptools",
        loop="uvloop",
        timeout_graceful_shutdown=10,
    )


@cli.command("nginx-config")
@click.option(
    "--upstream",
    "upstreams",
    multiple=True,
    required=True,
    metavar="HOST:PORT",
    help="A replica (`shopkeeper serve --port …`); repeat for each.",
)
@click.option("--listen", default="127.0.0.1:8080", show_default=True, metavar="HOST:PORT")
@click.option(
    "--prefix",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep nginx's pid, logs and temporary files here (run it as `nginx -p PREFIX`).",
)
@click.option("--least-conn", is_flag=True, help="Fewest open requests first, not round-robin.")
def nginx_config_cmd(
    upstreams: tuple[str, ...], listen: str, prefix: Path | None, least_conn: bool
) -> None:
    """Print an nginx.conf that load-balances serving replicas (retrying reads on failure)."""
    from shopkeeper.serve._nginx import TEMP_KINDS, nginx_config

    if prefix is not None:
        prefix = prefix.resolve()
        for kind in TEMP_KINDS:
            (prefix / "tmp" / kind).mkdir(parents=True, exist_ok=True)
    click.echo(
        nginx_config(upstreams, listen=listen, prefix=prefix, least_conn=least_conn), nl=False
    )


@cli.group("keys")
def keys() -> None:
    """API keys of the service: create (shown once), list, revoke."""


def _store(state: State) -> Any:
    from shopkeeper.serve import ApiKeyStore

    return ApiKeyStore.of(state.workspace)


@keys.command("create")
@click.option(
    "--role",
    type=click.Choice(["reader", "writer", "admin"]),
    required=True,
    help="What it may do.",
)
@json_option
@click.pass_obj
def keys_create(state: State, role: str) -> None:
    """Make a key; it is printed once and stored only as a hash."""
    state.workspace.create()
    key, record = _store(state).create(role)
    if state.json:
        emit_json({"key": key, "role": record.role, "key_id": record.key_id})
    else:
        console().print(f"{key}\n[dim]role {record.role}, id {record.key_id}: shown once[/]")


@keys.command("list")
@json_option
@click.pass_obj
def keys_list(state: State) -> None:
    """Every key's id, role and creation time (never the key)."""
    records = [r.__dict__ for r in _store(state).list()]
    if state.json:
        emit_json(records)
        return
    t = Table(title="API keys")
    for c in ("key_id", "role", "created_at"):
        t.add_column(c)
    for r in records:
        t.add_row(r["key_id"], r["role"], r["created_at"])
    console().print(t)


@keys.command("revoke")
@click.argument("key_id")
@json_option
@click.pass_obj
def keys_revoke(state: State, key_id: str) -> None:
    """Revoke the key with KEY_ID (running servers notice at their next request)."""
    _store(state).revoke(key_id)
    if state.json:
        emit_json({"revoked": key_id})
    else:
        console().print(f"revoked {key_id}")


@cli.group("events")
def events() -> None:
    """Live events posted to the service."""


@events.command("compact")
@json_option
@click.pass_obj
def events_compact(state: State) -> None:
    """Fold live events into the warehouse as a new events version (cleaned like ingest)."""
    from shopkeeper.serve._compact import compact_live_events
    from shopkeeper.serve._live import LiveEventStore

    ws = state.workspace
    live = LiveEventStore.of(ws)
    out = compact_live_events(ws, live, ws.field_cipher.load())
    if state.json:
        emit_json(out)
    elif not out["events"]:
        console().print("no live events to fold")
    else:
        console().print(
            f"events v{out['version']}: {out['events']:,} live events → "
            f"{out['clean_rows']:,} clean, {out['quarantined_rows']:,} quarantined, "
            f"{out['duplicate_rows']:,} duplicates"
        )
