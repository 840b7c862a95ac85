"""The rule engine on hand-computed timelines (seconds after t0)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from mmlw.alerts.engine import (
    AlertSnapshot,
    AlertState,
    Event,
    Evidence,
    RuleTiming,
    labels_match,
    step,
)
from mmlw.schemas.alerts import DeliveryStatus
from mmlw.services.alert_evaluation import progress, snapshot
from mmlw.store.alerts import AlertRecord

T0 = datetime(2026, 1, 1, tzinfo=UTC)
HOLDS = Evidence(holds=True, summary="bad", score=9.0, threshold=1.0)
CLEAR = Evidence(holds=False, summary="fine")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def run(
    timing: RuleTiming,
    timeline: list[tuple[float, Evidence]],
    *,
    silenced_between: tuple[float, float] | None = None,
    ack_at: float | None = None,
) -> tuple[list[tuple[float, str | None, str | None]], AlertSnapshot | None]:
    """Feed evaluations in order; return (t, state after, event) and the last instance."""
    current: AlertSnapshot | None = None
    seen = []
    for t, evidence in timeline:
        if ack_at is not None and t >= ack_at and current is not None and current.is_open:
            current = replace(current, acknowledged=True)
        silenced = silenced_between is not None and silenced_between[0] <= t < silenced_between[1]
        transition = step(timing, current, evidence, at(t), silenced=silenced)
        if transition.discard:
            current = None
        elif transition.after is not None:
            current = transition.after
        state = current.state.value if current is not None else None
        seen.append((t, state, transition.event.value if transition.event else None))
    return seen, current


def test_pending_firing_repeat_keep_firing_resolved() -> None:
    timing = RuleTiming(for_s=30, keep_firing_for_s=60, repeat_interval_s=300)
    timeline = [(0, HOLDS), (10, HOLDS), (30, HOLDS), (40, HOLDS), (329, HOLDS), (330, HOLDS)]
    timeline += [(340, CLEAR), (389, CLEAR), (390, CLEAR), (400, CLEAR)]
    seen, last = run(timing, timeline)
    assert seen == [
        (0, "pending", None),
        (10, "pending", None),
        (30, "firing", "firing"),  # held for the whole 30 s pending period
        (40, "firing", None),
        (329, "firing", None),  # 299 s since the last notice
        (330, "firing", "repeat"),  # 300 s: repeat interval reached
        (340, "firing", None),  # keep firing: quiet for 10 s of 60
        (389, "firing", None),
        (390, "resolved", "resolved"),  # quiet 60 s since the last bad evaluation (330)
        (400, "resolved", None),  # nothing more, no new instance
    ]
    assert last is not None
    assert (last.fired_at, last.resolved_at, last.last_active_at) == (at(30), at(390), at(330))


def test_pending_that_stops_holding_is_dropped_without_a_notice() -> None:
    timing = RuleTiming(for_s=30)
    seen, last = run(timing, [(0, HOLDS), (20, CLEAR), (25, HOLDS), (54, HOLDS), (55, HOLDS)])
    # the pending period restarts at 25 after the drop at 20; fires at 25 + 30
    assert seen == [
        (0, "pending", None),
        (20, None, None),
        (25, "pending", None),
        (54, "pending", None),
        (55, "firing", "firing"),
    ]
    assert last is not None and last.started_at == at(25)


def test_zero_pending_period_fires_on_the_first_bad_evaluation() -> None:
    transition = step(RuleTiming(), None, HOLDS, at(0))
    assert transition.created and transition.event is Event.FIRING
    assert transition.after is not None and transition.after.state is AlertState.FIRING
    assert step(RuleTiming(), None, CLEAR, at(0)).after is None


def test_condition_returning_within_keep_firing_for_continues_the_same_alert() -> None:
    timing = RuleTiming(keep_firing_for_s=60, repeat_interval_s=3600)
    seen, last = run(timing, [(0, HOLDS), (30, CLEAR), (59, HOLDS), (100, CLEAR), (159, CLEAR)])
    assert [e for _, _, e in seen] == ["firing", None, None, None, "resolved"]
    assert last is not None and last.started_at == at(0) and last.resolved_at == at(159)


def test_silence_mutes_firing_and_repeat_then_the_alert_notifies_when_it_ends() -> None:
    timing = RuleTiming(repeat_interval_s=100)
    timeline = [(0, HOLDS), (50, HOLDS), (150, HOLDS), (200, HOLDS), (250, HOLDS), (300, HOLDS)]
    seen, _ = run(timing, timeline, silenced_between=(0, 200))
    assert [e for _, _, e in seen] == [None, None, None, "firing", None, "repeat"]


def test_silenced_alert_that_never_notified_resolves_without_a_notice() -> None:
    seen, last = run(RuleTiming(), [(0, HOLDS), (10, CLEAR)], silenced_between=(0, 1000))
    assert seen == [(0, "firing", None), (10, "resolved", None)]
    assert last is not None and last.last_notified_at is None


def test_acknowledged_alert_sends_no_repeat_and_no_resolved_notice() -> None:
    timing = RuleTiming(repeat_interval_s=100)
    timeline = [(0, HOLDS), (60, HOLDS), (150, HOLDS), (300, HOLDS), (310, CLEAR)]
    seen, last = run(timing, timeline, ack_at=60)
    assert [e for _, _, e in seen] == ["firing", None, None, None, None]
    assert last is not None and last.state is AlertState.RESOLVED


def test_a_new_instance_opens_after_a_resolved_one() -> None:
    timing = RuleTiming()
    first = step(timing, None, HOLDS, at(0)).after
    assert first is not None
    resolved = step(timing, first, CLEAR, at(10)).after
    assert resolved is not None and resolved.state is AlertState.RESOLVED
    again = step(timing, resolved, HOLDS, at(20))
    assert again.created and again.event is Event.FIRING and again.after is not None
    assert again.after.started_at == at(20)


def test_evidence_is_updated_only_while_the_condition_holds() -> None:
    worse = Evidence(holds=True, summary="worse", score=20.0, threshold=1.0)
    firing = step(RuleTiming(keep_firing_for_s=60), None, HOLDS, at(0)).after
    updated = step(RuleTiming(keep_firing_for_s=60), firing, worse, at(5)).after
    assert updated is not None and updated.evidence.score == 20.0
    kept = step(RuleTiming(keep_firing_for_s=60), updated, CLEAR, at(6)).after
    assert kept is not None and kept.evidence.summary == "worse"


@pytest.mark.parametrize(
    ("matchers", "expected"),
    [
        ({"machine_id": "press-*"}, True),
        ({"machine_id": "press-1", "severity": "critical"}, True),
        ({"machine_id": "pump-*"}, False),
        ({"team": "*"}, False),  # a matcher on a label the alert lacks never matches
        ({"rule": "anomalous-?eadings"}, True),
    ],
)
def test_labels_match(matchers: dict[str, str], expected: bool) -> None:
    labels = {"machine_id": "press-1", "severity": "critical", "rule": "anomalous-readings"}
    assert labels_match(matchers, labels) is expected


def test_a_stored_instance_reaches_the_engine_and_comes_back_unchanged() -> None:
    record = AlertRecord(
        id=7, rule="r", machine_id="m", severity="critical", labels={}, state="firing",
        started_at=at(0), last_active_at=at(30), fired_at=at(10), resolved_at=None,
        resolved_by=None, last_notified_at=at(10), acknowledged_at=at(20),
        acknowledged_by="alice", ack_comment=None, summary="bad", score=9.0, threshold=1.0,
        model_version=3, top_sensors=(("temp", 0.75),),
    )  # fmt: skip
    before = snapshot(record)
    assert before.state is AlertState.FIRING and before.acknowledged
    assert before.evidence.holds and before.evidence.top_sensors == (("temp", 0.75),)
    written = progress(before)
    assert (written.state, written.fired_at, written.last_notified_at) == ("firing", at(10), at(10))
    assert (written.score, written.model_version, written.summary) == (9.0, 3, "bad")
    # a quiet (acknowledged) firing alert that stops holding resolves without a notice
    after = step(RuleTiming(), before, CLEAR, at(40)).after
    assert after is not None and progress(after).state == "resolved"


def test_delivery_statuses_keep_their_stored_values() -> None:
    stored = ["queued", "retrying", "delivered", "failed", "suppressed", "skipped"]
    assert [s.value for s in DeliveryStatus] == stored  # no migration for existing rows
    assert [s for s in DeliveryStatus if not s.finished] == ["queued", "retrying"]
