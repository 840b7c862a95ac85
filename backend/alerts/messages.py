"""What a notification says: e-mail (plain text + HTML) and the webhook JSON body,
rendered from the alert snapshot stored with the delivery."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["EmailContent", "render_email", "webhook_body"]

WEBHOOK_SCHEMA = "mmlw.alert/1"

_VERB = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED"}


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str


def _facts(payload: dict[str, Any]) -> list[tuple[str, str]]:
    score, threshold = payload.get("last_score"), payload.get("threshold")
    score_line = (
        f"{score:.4g} vs threshold {threshold:.4g} ({score / threshold:.1f}x)"
        if isinstance(score, int | float) and isinstance(threshold, int | float) and threshold
        else "-"
    )
    sensors = ", ".join(
        f"{s['sensor']} ({s['contribution']:.0%})" for s in payload.get("top_sensors", [])
    )
    version = payload.get("model_version")
    facts = [
        ("Machine", str(payload["machine_id"])),
        ("Rule", str(payload["rule"])),
        ("Severity", str(payload["severity"])),
        ("State", str(payload["state"])),
        ("Started", str(payload["started_at"])),
        ("Score", score_line),
        ("Model version", f"v{version}" if version is not None else "-"),
        ("Top sensors", sensors or "-"),
        ("Details", str(payload.get("summary") or "-")),
    ]
    if payload.get("resolved_at"):
        facts.insert(5, ("Resolved", str(payload["resolved_at"])))
    return facts


def render_email(payload: dict[str, Any], subject_prefix: str = "[MMLW]") -> EmailContent:
    event = str(payload["event"])
    subject = (
        f"{subject_prefix} {_VERB.get(event, event.upper())}: {payload['rule']} on "
        f"{payload['machine_id']} ({payload['severity']})"
    ).strip()
    facts = _facts(payload)
    link = str(payload.get("dashboard_url") or "")
    text = "\n".join(f"{k + ':':<15}{v}" for k, v in facts)
    if link:
        text += f"\n\nDashboard: {link}\n"
    rows = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in facts
    )
    link_html = (
        f"<p><a href='{html.escape(link, quote=True)}'>Open the machine's dashboard</a></p>"
        if link
        else ""
    )
    body = f"<h2>{html.escape(subject)}</h2><table>{rows}</table>{link_html}"
    return EmailContent(subject=subject, text=text, html=f"<html><body>{body}</body></html>")


def webhook_body(payload: dict[str, Any], delivery_id: int) -> bytes:
    """The JSON a webhook receives; ``delivery_id`` lets a receiver drop duplicates."""
    document = {"schema": WEBHOOK_SCHEMA, "delivery_id": delivery_id, **payload}
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
