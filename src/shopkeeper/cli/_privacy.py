"""`shopkeeper privacy …`: pseudonyms and key rotation."""

from __future__ import annotations

import click

from shopkeeper.cli._app import State, cli, console, emit_json, json_option
from shopkeeper.warehouse import rotate_pseudonym_key


@cli.group("privacy")
def privacy() -> None:
    """Pseudonymization keys and lookups."""


@privacy.command("pseudonym")
@click.argument("user_id")
@json_option
@click.pass_obj
def pseudonym_cmd(state: State, user_id: str) -> None:
    """The stored pseudonym of a raw USER_ID (as the source gave it)."""
    pseudo = state.workspace.keys.load(create=False)
    value = pseudo.pseudonymize(user_id.strip())
    if state.json:
        emit_json({"user_id": value})
    else:
        console().print(value)


@privacy.command("rotate-key")
@json_option
@click.pass_obj
def rotate_cmd(state: State) -> None:
    """Add a new pseudonymization key and re-key every stored user id (new versions)."""
    out = rotate_pseudonym_key(state.workspace)
    if state.json:
        emit_json(out)
    else:
        for r in out:
            console().print(f"{r['asset']} → v{r['version']} ({r['rows']:,} rows re-keyed)")
