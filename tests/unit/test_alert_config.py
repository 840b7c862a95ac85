"""Alert rules files: the shipped ones load, and mistakes name the file and field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmlw.alerts.conditions import ScoreWindow, no_data_evidence, scores_evidence
from mmlw.alerts.config import (
    FlagsCondition,
    NoDataCondition,
    WebhookNotifier,
    load_alerts_config,
    parse_duration,
)
from mmlw.alerts.messages import render_email, webhook_body
from mmlw.alerts.signing import sign, verify

REPO = Path(__file__).resolve().parents[2]
ENV = {"MMLW_WEBHOOK_URL": "http://127.0.0.1:9/hook", "MMLW_WEBHOOK_SECRET": "s3cret"}


def test_packaged_defaults_and_the_documented_example_load() -> None:
    default = load_alerts_config(None)
    assert default.rules[0].name == "anomalous-readings"
    example = load_alerts_config(REPO / "configs" / "alerts.yaml", environ=ENV)
    hook = example.notifiers["maintenance-hook"]
    assert isinstance(hook, WebhookNotifier)
    assert hook.secret.get_secret_value() == "s3cret" and "s3cret" not in repr(example)
    rule = example.rule("anomalous-readings")
    assert rule is not None and rule.timing.for_s == 10 and rule.timing.repeat_interval_s == 3600
    assert example.rules_for("press-1") == example.rules


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules: [{name: r, condition: {kind: scores, k: 3, n: 2}}]", "k (3) cannot exceed n (2)"),
        ("rules: [{name: r, condition: {kind: scores}, notify: [nobody]}]", "unknown notifier"),
        ("rules: [{name: r, condition: {kind: scores}, for: soon}]", "rules.0.for"),
        ("rules: [{name: r, condition: {kind: scores}, colour: red}]", "rules.0.colour"),
        ("rules: [{name: r, condition: {kind: sometimes}}]", "rules.0.condition"),
        (
            "rules: [{name: r, condition: {kind: scores}}, {name: r, condition: {kind: scores}}]",
            "duplicate rule name",
        ),
        ("notifiers: {h: {type: webhook, url: '${NOPE}', secret: x}}", "NOPE is not set"),
        ("notifiers: {m: {type: email, to: []}}", "notifiers.m.email.to"),
        ("- just a list", "expected a mapping"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"alerts\.yaml") as info:
        load_alerts_config(path, environ={})
    assert message in str(info.value)


def test_durations() -> None:
    assert [parse_duration(v) for v in (30, "30s", "5m", "1.5h", "1d", "250ms")] == [
        30.0,
        30.0,
        300.0,
        5400.0,
        86400.0,
        0.25,
    ]
    for bad in ("-1s", "5 minutes", True):
        with pytest.raises(ValueError):
            parse_duration(bad)


def _recent(scores: list[float], threshold: float = 1.0) -> ScoreWindow:
    n = len(scores)
    contributions = np.tile(np.array([0.2, 0.5, 0.3], dtype=np.float32), (n, 1))
    return ScoreWindow(
        columns=["a", "b", "c"],
        scores=np.array(scores),
        thresholds=np.full(n, threshold),
        versions=np.full(n, 3),
        contributions=contributions,
    )


def test_k_of_n_condition_on_recent_scores() -> None:
    condition = FlagsCondition(k=2, n=3)
    assert scores_evidence(condition, None).holds is False
    held = scores_evidence(condition, _recent([5.0, 0.1, 2.0, 0.5, 3.0]))  # last 3: 2 above
    assert held.holds and held.score == 3.0 and held.model_version == 3
    assert [s for s, _ in held.top_sensors] == ["b", "c", "a"]
    assert "2 of the last 3 readings above threshold" in held.summary
    assert not scores_evidence(condition, _recent([5.0, 5.0, 0.1, 0.5, 3.0])).holds
    # an episode that ended before the newest n readings of a batch still holds the rule
    episode = _recent([0.1, 2.0, 3.0, 0.1, 0.1, 0.1])
    assert not scores_evidence(condition, episode).holds
    inside = scores_evidence(condition, episode, new=5)
    assert inside.holds and "2 of 3 in a row (of the 5 newest)" in inside.summary
    assert not scores_evidence(condition, episode, new=2).holds  # windows ending at 5, 6
    spike = FlagsCondition(k=1, n=1, multiple=10)
    assert not scores_evidence(spike, _recent([9.0])).holds
    assert scores_evidence(spike, _recent([11.0])).holds


def test_no_data_condition() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime(2026, 1, 1, tzinfo=UTC)
    condition = NoDataCondition(kind="no_data", seconds=60)
    assert not no_data_evidence(condition, None, now).holds
    assert not no_data_evidence(condition, now - timedelta(seconds=59), now).holds
    assert no_data_evidence(condition, now - timedelta(seconds=60), now).holds


PAYLOAD = {
    "event": "firing",
    "id": 7,
    "rule": "anomalous-readings",
    "machine_id": "press-1",
    "severity": "warning",
    "state": "firing",
    "started_at": "2026-01-01T00:00:00Z",
    "last_score": 12.0,
    "threshold": 3.0,
    "model_version": 2,
    "top_sensors": [{"sensor": "temp<1>", "contribution": 0.75}],
    "summary": "5 of the last 10 readings above threshold",
    "dashboard_url": "http://dash/machines/press-1",
}


def test_email_names_everything_and_escapes_html() -> None:
    email = render_email(PAYLOAD)
    assert email.subject == "[MMLW] FIRING: anomalous-readings on press-1 (warning)"
    for fact in ("press-1", "12 vs threshold 3 (4.0x)", "v2", "temp<1> 6.2% of score", "dashboard"):
        assert fact in email.text or fact.lower() in email.text.lower()
    assert "temp&lt;1&gt;" in email.html and "temp<1>" not in email.html
    assert "http://dash/machines/press-1" in email.html


def test_signature_round_trip_and_replay_window() -> None:
    body = webhook_body(PAYLOAD, delivery_id=3)
    signature = sign("k", body, 1_000)
    assert verify("k", body, "1000", signature, now=1_100, tolerance_s=300)
    assert not verify("other", body, "1000", signature, now=1_100, tolerance_s=300)
    assert not verify("k", body + b" ", "1000", signature, now=1_100, tolerance_s=300)
    assert not verify("k", body, "1000", signature, now=1_400, tolerance_s=300)  # too old
    assert not verify("k", body, "1001", signature, now=1_100, tolerance_s=300)  # re-stamped
