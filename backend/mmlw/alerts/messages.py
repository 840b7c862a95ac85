"""What a notification says: e-mail (plain text + HTML) and the webhook JSON body,
rendered from the alert snapshot stored with the delivery.

A top sensor's ``contribution`` is its part of the worst reading's score (a detector's
contributions sum to the row's score), in the score's units. An operator reads it as a
share of that score: ``Vibration1 74.4% of score``; the webhook carries the share as
``share_of_score_pct`` next to the raw ``contribution``.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from typing import Any

__all__ = ["EmailContent", "render_email", "sensor_shares", "webhook_body"]

WEBHOOK_SCHEMA = "mmlw.alert/1"

_VERB = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED"}


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str


def sensor_shares(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The top sensors, each with ``share_of_score_pct``: its contribution as a percentage
    of the reading's score (None when the score is not positive). Negative contributions
    count as none, so the shares of the top sensors sum to at most 100."""
    score = payload.get("last_score")
    positive = isinstance(score, int | float) and score > 0
    shares = []
    for entry in payload.get("top_sensors") or []:
        contribution = float(entry["contribution"])
        share = (
            round(min(100.0, max(0.0, contribution) / score * 100.0), 1)
            if positive and isinstance(score, int | float)
            else None
        )
        shares.append({**entry, "share_of_score_pct": share})
    return shares


def _sensor_text(entry: dict[str, Any]) -> str:
    share = entry["share_of_score_pct"]
    if share is None:
        return f"{entry['sensor']} (contribution {float(entry['contribution']):.4g})"
    return f"{entry['sensor']} {share:.1f}% of score"


def _facts(payload: dict[str, Any]) -> list[tuple[str, str]]:
    score, threshold = payload.get("last_score"), payload.get("threshold")
    score_line = (
        f"{score:.4g} vs threshold {threshold:.4g} ({score / threshold:.1f}x)"
        if isinstance(score, int | float) and isinstance(threshold, int | float) and threshold
        else "-"
    )
    sensors = ", ".join(_sensor_text(entry) for entry in sensor_shares(payload))
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
    """The JSON a webhook receives; ``delivery_id`` lets a receiver drop duplicates. Each
    of ``top_sensors`` has ``sensor``, ``contribution`` (score units) and
    ``share_of_score_pct`` (see :func:`sensor_shares`)."""
    document = {"schema": WEBHOOK_SCHEMA, "delivery_id": delivery_id, **payload}
    if "top_sensors" in payload:
        document["top_sensors"] = sensor_shares(payload)
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
