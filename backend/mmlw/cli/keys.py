"""``mmlw keys``: create, list and revoke API keys (only digests are stored)."""

from __future__ import annotations

import click

from mmlw.cli.core import main, one_line_errors, open_store, settings_of
from mmlw.security.keys import Scope

__all__ = ["keys"]


@main.group()
def keys() -> None:
    """API keys with scopes: ingest, read, operate (implies read), admin (everything)."""


@keys.command("create")
@click.option("--name", required=True, help="who or what uses it, e.g. press-line-3")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice([s.value for s in Scope]),
    help="repeat for several",
)
@click.pass_context
@one_line_errors
def keys_create(ctx: click.Context, name: str, scopes: tuple[str, ...]) -> None:
    """Create a key; it is printed once and cannot be shown again."""
    with open_store(settings_of(ctx)) as store:
        key, record = store.api_keys.create(name, list(scopes))
    click.echo(f"key {record.id} ({record.name}, scopes {','.join(record.scopes)}):")
    click.echo(key)


@keys.command("list")
@click.pass_context
@one_line_errors
def keys_list(ctx: click.Context) -> None:
    """Keys with their scopes, prefix and last use (never the key)."""
    with open_store(settings_of(ctx)) as store:
        found = store.api_keys.list()
    for k in found:
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        used = f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never"
        click.echo(
            f"{k.id:>4}  {k.prefix}...  {k.name:<20} {','.join(k.scopes):<24} "
            f"{state:<24} last used {used}"
        )


@keys.command("revoke")
@click.argument("key_id", type=int)
@click.pass_context
@one_line_errors
def keys_revoke(ctx: click.Context, key_id: int) -> None:
    """Revoke a key at once."""
    with open_store(settings_of(ctx)) as store:
        record = store.api_keys.revoke(key_id)
    click.echo(f"key {record.id} ({record.name}) revoked")
