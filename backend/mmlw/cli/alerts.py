"""``mmlw alerts``: list, show, acknowledge, resolve, silence; the delivery log; rules."""

from __future__ import annotations

import getpass
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import click

from mmlw.cli.core import main, one_line_errors, open_store, settings_of

if TYPE_CHECKING:
    from mmlw.schemas.alerts import AlertOut
    from mmlw.store import Store

__all__ = ["alerts"]

STATES = click.Choice(["pending", "firing", "resolved", "open"])
SEVERITIES = click.Choice(["info", "warning", "critical"])


def utcnow() -> datetime:
    """The store's clock, imported on first use (the store pulls in SQLAlchemy)."""
    from mmlw.store.tables import utcnow as store_utcnow

    return store_utcnow()


def _by_option(func):  # type: ignore[no-untyped-def]
    return click.option(
        "--by", default=getpass.getuser, show_default="current user", help="who does it"
    )(func)


def _line(a: AlertOut) -> str:
    flags = "".join(
        (("A" if a.acknowledged else "-"), ("S" if a.silenced else "-"))
    )  # acknowledged, silenced
    score = (
        f"{a.last_score:.3g}/{a.threshold:.3g}" if a.last_score is not None and a.threshold else "-"
    )
    sensors = ",".join(s.sensor for s in a.top_sensors) or "-"
    return (
        f"{a.id:>6}  {a.started_at:%Y-%m-%d %H:%M:%S}  {a.state:<8} {flags}  {a.severity:<8} "
        f"{a.machine_id:<14} {a.rule:<26} {score:<14} {sensors}"
    )


@main.group()
def alerts() -> None:
    """Alerts: list, show, ack/unack, resolve, silences, the delivery log, rules.

    List flags: A = acknowledged, S = silenced.
    """


@alerts.command("list")
@click.option("--machine", "machine_id", default=None)
@click.option("--state", type=STATES, default=None, help="open = pending or firing")
@click.option("--severity", type=SEVERITIES, default=None)
@click.option("--limit", default=50, show_default=True)
@click.pass_context
@one_line_errors
def alerts_list(
    ctx: click.Context, machine_id: str | None, state: str | None, severity: str | None, limit: int
) -> None:
    """Alerts, newest first: every state unless --state. A last line says how many
    resolved alerts the listing leaves out (by --state or --limit) and how to see them."""
    from mmlw.services.alert_views import list_alerts

    with open_store(settings_of(ctx)) as store:
        found = list_alerts(
            store, utcnow(), machine_id=machine_id, state=state, severity=severity, limit=limit
        )
        resolved = _count_resolved(store, machine_id=machine_id, severity=severity)
    click.echo(
        f"{'id':>6}  {'started (UTC)':<19}  {'state':<8} AS  {'severity':<8} "
        f"{'machine':<14} {'rule':<26} {'score/thr':<14} top sensors"
    )
    for alert in found:
        click.echo(_line(alert))
    hidden = resolved - sum(1 for a in found if a.state == "resolved")
    if hidden > 0:
        how = (
            f"--state resolved --limit {max(limit, resolved)}"
            if state in (None, "resolved")
            else "--state resolved (or no --state for every state)"
        )
        noun = "alert is" if hidden == 1 else "alerts are"
        click.echo(f"{hidden} resolved {noun} not shown; {how} shows them")


def _count_resolved(store: Store, *, machine_id: str | None, severity: str | None) -> int:
    """Resolved alerts of the machine and severity (any when None)."""
    from sqlalchemy import func, select

    from mmlw.alerts.engine import AlertState
    from mmlw.store.tables import Alert

    query = select(func.count()).select_from(Alert).where(Alert.state == AlertState.RESOLVED)
    if machine_id is not None:
        query = query.where(Alert.machine_id == machine_id)
    if severity is not None:
        query = query.where(Alert.severity == severity)
    with store.database.session() as session:
        return int(session.scalar(query) or 0)


@alerts.command("show")
@click.argument("alert_id", type=int)
@click.pass_context
@one_line_errors
def alerts_show(ctx: click.Context, alert_id: int) -> None:
    """One alert whole, with its deliveries and every attempt (JSON)."""
    from mmlw.services.alert_views import delivery_out, get_alert

    settings = settings_of(ctx)
    with open_store(settings) as store:
        alert = get_alert(store, alert_id, utcnow())
        deliveries = store.deliveries.list(alert_id=alert_id, limit=1000)
    record = alert.model_dump(mode="json")
    record["dashboard_url"] = settings.dashboard.machine_url(alert.machine_id)
    record["deliveries"] = [delivery_out(d).model_dump(mode="json") for d in deliveries]
    click.echo(json.dumps(record, indent=2))


@alerts.command("ack")
@click.argument("alert_id", type=int)
@_by_option
@click.option("--comment", default=None)
@click.pass_context
@one_line_errors
def alerts_ack(ctx: click.Context, alert_id: int, by: str, comment: str | None) -> None:
    """Acknowledge: someone is on it; no repeats, no resolved notice."""
    with open_store(settings_of(ctx)) as store:
        alert = store.alerts.acknowledge(alert_id, by, comment, utcnow())
    click.echo(f"alert {alert.id} acknowledged by {alert.acknowledged_by}")


@alerts.command("unack")
@click.argument("alert_id", type=int)
@click.pass_context
@one_line_errors
def alerts_unack(ctx: click.Context, alert_id: int) -> None:
    """Take an acknowledgement back: repeats resume."""
    with open_store(settings_of(ctx)) as store:
        alert = store.alerts.unacknowledge(alert_id)
    click.echo(f"alert {alert.id} no longer acknowledged ({alert.state})")


@alerts.command("resolve")
@click.argument("alert_id", type=int)
@_by_option
@click.option("--comment", default=None)
@click.pass_context
@one_line_errors
def alerts_resolve(ctx: click.Context, alert_id: int, by: str, comment: str | None) -> None:
    """Close by hand; a condition that still holds opens a new alert."""
    with open_store(settings_of(ctx)) as store:
        alert = store.alerts.resolve(alert_id, by, comment, utcnow())
    click.echo(f"alert {alert.id} resolved by {alert.resolved_by}")


def _matchers(pairs: Sequence[str]) -> dict[str, str]:
    matchers: dict[str, str] = {}
    for pair in pairs:
        name, sep, pattern = pair.partition("=")
        if not sep or not name.strip() or not pattern.strip():
            raise ValueError(f"--match: expected LABEL=PATTERN, got {pair!r}")
        matchers[name.strip()] = pattern.strip()
    if not matchers:
        raise ValueError("--match: give at least one LABEL=PATTERN (machine_id, rule, severity)")
    return matchers


@alerts.command("silence")
@click.option("--match", "pairs", multiple=True, help="LABEL=PATTERN, e.g. machine_id=press-*")
@click.option("--for", "duration", default="1h", show_default=True, help="e.g. 30m, 2h")
@_by_option
@click.option("--comment", default=None)
@click.pass_context
@one_line_errors
def alerts_silence(
    ctx: click.Context, pairs: tuple[str, ...], duration: str, by: str, comment: str | None
) -> None:
    """Mute notifications of matching alerts, from now for --for."""
    from mmlw.alerts.config import parse_duration
    from mmlw.schemas.alerts import SilenceIn

    now = utcnow()
    seconds = parse_duration(duration)
    if seconds <= 0:
        raise ValueError("--for: must be longer than 0")
    silence = SilenceIn(
        matchers=_matchers(pairs),
        starts_at=now,
        ends_at=now + timedelta(seconds=seconds),
        created_by=by,
        comment=comment,
    )
    with open_store(settings_of(ctx)) as store:
        out = store.silences.create(silence, now)
    click.echo(f"silence {out.id} until {out.ends_at:%Y-%m-%d %H:%M:%S} UTC: {out.matchers}")


@alerts.command("silences")
@click.option("--active", is_flag=True, help="only silences in force now")
@click.pass_context
@one_line_errors
def alerts_silences(ctx: click.Context, active: bool) -> None:
    """Silences, newest first."""
    with open_store(settings_of(ctx)) as store:
        found = store.silences.list(utcnow(), active_only=active)
    for s in found:
        state = "active" if s.active else "inactive"
        click.echo(
            f"{s.id:>5}  {state:<8} {s.starts_at:%Y-%m-%d %H:%M} -> {s.ends_at:%Y-%m-%d %H:%M}  "
            f"{s.created_by:<12} {json.dumps(s.matchers)}  {s.comment or ''}"
        )


@alerts.command("unsilence")
@click.argument("silence_id", type=int)
@click.pass_context
@one_line_errors
def alerts_unsilence(ctx: click.Context, silence_id: int) -> None:
    """End a silence now."""
    with open_store(settings_of(ctx)) as store:
        store.silences.expire(silence_id, utcnow())
    click.echo(f"silence {silence_id} ended")


@alerts.command("deliveries")
@click.option("--alert", "alert_id", type=int, default=None)
@click.option(
    "--status",
    type=click.Choice(["queued", "retrying", "delivered", "failed", "suppressed", "skipped"]),
    default=None,
)
@click.option("--limit", default=50, show_default=True)
@click.pass_context
@one_line_errors
def alerts_deliveries(
    ctx: click.Context, alert_id: int | None, status: str | None, limit: int
) -> None:
    """The delivery log: every notification and each attempt."""
    with open_store(settings_of(ctx)) as store:
        found = store.deliveries.list(alert_id=alert_id, status=status, limit=limit)
    for d in found:
        click.echo(
            f"{d.id:>6}  alert {d.alert_id:<5} {d.event:<8} {d.notifier:<18} {d.channel:<7} "
            f"{d.status:<10} {len(d.attempts)} attempt(s)  {d.last_error or ''}"
        )
        for a in d.attempts:
            outcome = "ok" if a.ok else (a.error or "failed")
            code = f" HTTP {a.status_code}" if a.status_code else ""
            click.echo(
                f"          #{a.attempt} {a.at:%H:%M:%S} {a.duration_ms:7.1f} ms{code}  {outcome}"
            )


@alerts.command("rules")
@click.option("--file", "path", default=None, help="check this file instead of the configured one")
@click.pass_context
@one_line_errors
def alerts_rules(ctx: click.Context, path: str | None) -> None:
    """Validate and print the alert rules."""
    from mmlw.alerts.config import load_alerts_config

    source = path or settings_of(ctx).alerts.rules_file
    config = load_alerts_config(source)
    click.echo(
        f"{source or 'built-in defaults'}: {len(config.rules)} rules, "
        f"{len(config.notifiers)} notifiers"
    )
    for rule in config.rules:
        condition = rule.condition.model_dump(exclude={"kind"})
        click.echo(
            f"  {rule.name:<28} {rule.machines:<10} {rule.condition.kind}{condition} "
            f"for={rule.for_s:g}s keep={rule.keep_firing_for:g}s repeat={rule.repeat_interval:g}s "
            f"{rule.severity} -> {', '.join(rule.notify) or '(no notifiers)'}"
        )
