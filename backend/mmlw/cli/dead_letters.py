"""``mmlw dlq``: dead letters (rejected messages) listed, shown, replayed and purged."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from mmlw.cli.core import (
    main,
    one_line_errors,
    open_store,
    require_broker,
    settings_of,
)

__all__ = ["dlq"]


@main.group()
def dlq() -> None:
    """Dead letters: rejected messages, kept for inspection, replay and purge."""


@dlq.command("list")
@click.option("--limit", default=20, show_default=True)
@click.option("--pending", is_flag=True, help="only those not replayed yet")
@click.pass_context
@one_line_errors
def dlq_list(ctx: click.Context, limit: int, pending: bool) -> None:
    """List dead letters, newest first, with the reason each was rejected."""
    store = open_store(settings_of(ctx))
    try:
        for d in store.dead_letters.list(limit, include_replayed=not pending):
            replayed = f"replayed x{d.replay_count}" if d.replayed_at else "pending"
            click.echo(
                f"{d.id:>6}  {d.received_at:%Y-%m-%d %H:%M:%S}  {d.source:<5} "
                f"{d.routing_key or '-':<16} {len(d.body):>8} B  {replayed:<12} {d.reason}"
            )
    finally:
        store.close()


@dlq.command("show")
@click.argument("dead_letter_id", type=int)
@click.pass_context
@one_line_errors
def dlq_show(ctx: click.Context, dead_letter_id: int) -> None:
    """Show one dead letter whole; the body as text if UTF-8, else base64."""
    store = open_store(settings_of(ctx))
    try:
        d = store.dead_letters.get(dead_letter_id)
    finally:
        store.close()
    body, encoding = d.decoded_body()
    record = {
        "id": d.id,
        "received_at": d.received_at.isoformat(),
        "source": d.source,
        "routing_key": d.routing_key,
        "message_id": d.message_id,
        "reason": d.reason,
        "headers": d.headers,
        "replayed_at": d.replayed_at.isoformat() if d.replayed_at else None,
        "replay_count": d.replay_count,
        "body_encoding": encoding,
        "body_bytes": len(d.body),
        "body": body,
    }
    click.echo(json.dumps(record, indent=2, default=str))


@dlq.command("replay")
@click.argument("dead_letter_id", type=int)
@click.option(
    "--body-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="a fixed readings message (JSON) to send instead of the stored body",
)
@click.pass_context
@one_line_errors
def dlq_replay(ctx: click.Context, dead_letter_id: int, body_file: Path | None) -> None:
    """Validate and publish a dead letter again through the readings exchange."""
    from mmlw.messaging.dead_queue import DeadQueue
    from mmlw.messaging.sink import sink_from_settings
    from mmlw.services.dead_letters import replay

    settings = settings_of(ctx)
    require_broker(settings, "dlq replay")
    body = body_file.read_bytes() if body_file is not None else None
    store = open_store(settings)
    try:
        sink = sink_from_settings(settings.broker)
        try:
            done = replay(
                dead_letter_id,
                store=store,
                publisher=sink,
                body_override=body,
                max_readings=settings.broker.max_batch_readings,
                dead_queue=DeadQueue.from_settings(settings.broker),
            )
        finally:
            sink.close()
    finally:
        store.close()
    click.echo(
        f"replayed dead letter {dead_letter_id} as message {done.batch.message_id} "
        f"({len(done.batch)} readings of {done.batch.machine_id}), "
        f"replay {done.dead_letter.replay_count}"
    )


@dlq.command("purge")
@click.option("--all", "purge_all", is_flag=True, help="every dead letter")
@click.option("--older-than-hours", type=float, default=None, help="received over H hours ago")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
@click.pass_context
@one_line_errors
def dlq_purge(
    ctx: click.Context, purge_all: bool, older_than_hours: float | None, yes: bool
) -> None:
    """Delete dead letters: --all, or those older than --older-than-hours; their copies
    in <ns>.dead go too (and any an earlier purge could not reach)."""
    from mmlw.messaging.dead_queue import DeadQueue
    from mmlw.services.dead_letters import purge

    if purge_all == (older_than_hours is not None):
        raise click.ClickException("dlq purge: give exactly one of --all or --older-than-hours")
    if older_than_hours is not None and older_than_hours < 0:
        raise click.ClickException("dlq purge: --older-than-hours must be >= 0")
    older_than = (
        None if older_than_hours is None else datetime.now(UTC) - timedelta(hours=older_than_hours)
    )
    what = "all dead letters" if purge_all else f"dead letters older than {older_than_hours} h"
    if not yes and not click.confirm(f"delete {what}?", err=True):
        raise click.ClickException("dlq purge: not confirmed; nothing deleted")
    settings = settings_of(ctx)
    store = open_store(settings)
    try:
        done = purge(
            store,
            older_than=older_than,
            everything=purge_all,
            dead_queue=DeadQueue.from_settings(settings.broker),
        )
    finally:
        store.close()
    click.echo(f"purged {done.count} dead letters")
    if done.broker is not None and not done.broker.complete:
        click.echo(
            f"warning: {settings.broker.namespace}.dead not swept (broker away?); "
            "the next purge removes what is left there",
            err=True,
        )
