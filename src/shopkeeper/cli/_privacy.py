"""`shopkeeper privacy …`: pseudonyms, key rotation and erasure of a user."""

from __future__ import annotations

import getpass

import click

from shopkeeper.cli._app import State, cli, console, emit_json, json_option
from shopkeeper.warehouse import forget_user, rotate_field_key, rotate_pseudonym_key


@cli.group("privacy")
def privacy() -> None:
    """Pseudonymization and field keys, lookups, erasure."""


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


@privacy.command("rotate-field-key")
@json_option
@click.pass_obj
def rotate_field_cmd(state: State) -> None:
    """Add a new field-encryption key and re-seal every encrypted column (new versions)."""
    out = rotate_field_key(state.workspace)
    if state.json:
        emit_json(out)
    else:
        for r in out:
            console().print(f"{r['asset']} → v{r['version']} ({r['rows']:,} rows re-sealed)")


@privacy.command("forget")
@click.argument("user_id")
@click.option("--actor", default=None, help="Who asks, for the audit log (default: OS user).")
@json_option
@click.pass_obj
def forget_cmd(state: State, user_id: str, actor: str | None) -> None:
    """Erase every stored row of USER_ID (as the source gave it), in every version."""
    if not user_id.strip():
        raise click.UsageError("USER_ID is empty")
    out = forget_user(state.workspace, user_id.strip(), actor=actor or getpass.getuser())
    if state.json:
        emit_json(out)
        return
    c = console()
    total = sum(out["rows_removed"].values())
    c.print(f"user {out['user']}: {total:,} rows removed, {out['files_rewritten']} files rewritten")
    for asset, n in out["rows_removed"].items():
        c.print(f"  {asset}: {n:,}")
