"""The click group, shared options, output helpers and `main()` with exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from shopkeeper import __version__
from shopkeeper.config import ShopkeeperSettings
from shopkeeper.errors import ShopkeeperError
from shopkeeper.logging import set_progress_backend, setup_logging
from shopkeeper.warehouse import Workspace

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class State:
    """What every subcommand gets from the group."""

    settings: ShopkeeperSettings
    json: bool
    verbose: int

    @property
    def workspace(self) -> Workspace:
        """The selected workspace."""
        return Workspace.at(self.settings.home)


def _default(o: object) -> object:
    if isinstance(o, datetime | date):
        return o.isoformat()
    if isinstance(o, Decimal):
        return float(o)
    if isinstance(o, bytes):
        return o.hex()
    if isinstance(o, Path):
        return str(o)
    return str(o)


def emit_json(data: object) -> None:
    """Write machine-readable output to stdout."""
    click.echo(json.dumps(data, default=_default, indent=2, ensure_ascii=False))


def console() -> Console:
    """A console on stdout for human output."""
    return Console(soft_wrap=False)


def time_budget_option(help_text: str) -> Callable[[F], F]:
    """Add `--time-budget MINUTES` (exposed as `minutes`, None when not given)."""
    return click.option(
        "--time-budget",
        "minutes",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        metavar="MINUTES",
        help=help_text,
    )


def json_option(f: F) -> F:
    """Add `--json` to a subcommand (the group's `--json` works too)."""

    def _cb(ctx: click.Context, _p: click.Parameter, value: bool) -> bool:
        if value:
            ctx.ensure_object(State).json = True
        return value

    return click.option(
        "--json",
        "json_",
        is_flag=True,
        expose_value=False,
        callback=_cb,
        is_eager=False,
        help="Machine-readable JSON on stdout.",
    )(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(path_type=Path),
    envvar="SHOPKEEPER_HOME",
    default=None,
    help="Workspace folder (default ./.shopkeeper).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
@click.option("-v", "--verbose", count=True, help="More logs on stderr; -vv for debug.")
@click.version_option(__version__, prog_name="shopkeeper")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, as_json: bool, verbose: int) -> None:
    """Shopkeeper: raw shop exports in, governed data assets out."""
    settings = ShopkeeperSettings() if home is None else ShopkeeperSettings(home=home)
    ctx.obj = State(settings=settings, json=as_json, verbose=verbose)
    setup_logging(verbose)
    set_progress_backend("rich" if sys.stderr.isatty() and not as_json else "none")


def _register() -> None:
    import shopkeeper.cli._search  # noqa: F401
    from shopkeeper.cli import _catalog, _demo, _features, _ingest, _privacy, _rec, _serve  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    """Run the CLI: exit 0 ok, 2 usage or config error, 3 runtime failure."""
    _register()
    verbose = any(a.startswith("-v") or a == "--verbose" for a in (argv or sys.argv[1:]))
    err = Console(stderr=True, soft_wrap=True)
    try:
        cli.main(args=argv, prog_name="shopkeeper", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2)
    except ShopkeeperError as exc:
        if verbose:
            err.print_exception()
        click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(exc.exit_code)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: exit 3, no traceback
        if verbose:
            err.print_exception()
        click.echo(f"error: {type(exc).__name__}: {exc} (run with -v for details)", err=True)
        sys.exit(3)
    sys.exit(0)
