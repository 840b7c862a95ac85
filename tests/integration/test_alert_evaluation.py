"""All of a machine's alert rules in one transaction (the ``evaluate_all`` and
``evaluate_machine`` services), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import event

from mmlw.alerts.config import AlertRule, AlertsConfig
from mmlw.alerts.engine import Event, Evidence
from mmlw.schemas import ReadingsBatch
from mmlw.schemas.alerts import SilenceIn
from mmlw.services.alert_evaluation import evaluate, evaluate_all
from mmlw.services.alerting import evaluate_machine, evaluate_machines
from mmlw.store import ScoreRecord, Store

T0 = datetime(2026, 5, 1, tzinfo=UTC)
CONFIG = AlertsConfig.model_validate(
    {
        "notifiers": {"mail": {"type": "email", "to": ["ops@example.com"]}},
        "rules": [
            {"name": "flagged", "condition": {"kind": "scores", "k": 2, "n": 3},
             "notify": ["mail"]},
            {"name": "slow", "condition": {"kind": "scores", "k": 1, "n": 1}, "for": "60s",
             "notify": ["mail"]},
            {"name": "silent", "condition": {"kind": "no_data", "seconds": 30},
             "labels": {"team": "night"}, "notify": ["mail"]},
        ],
    }
)  # fmt: skip
CHANNELS = {"mail": "email"}
HOLDS = Evidence(holds=True, summary="bad", score=5.0, threshold=1.0)
FINE = Evidence(holds=False, summary="fine")


class Dispatcher:
    """Records the notifications handed over (the Dispatcher protocol, no broker)."""

    def __init__(self) -> None:
        self.notified: list[int] = []

    def train(self, job_id: str) -> None: ...

    def predict(self, batch_id: int, version: int | None = None) -> None: ...

    def predict_many(self, batch_ids: Sequence[int], version: int | None = None) -> None: ...

    def score(self, batches: Sequence[tuple[int, str]]) -> None: ...

    def notify(self, delivery_id: int) -> None:
        self.notified.append(delivery_id)

    def tune(self, job_id: str) -> None: ...


def statements(store: Store) -> list[str]:
    seen: list[str] = []

    def note(*args: object) -> None:
        seen.append(str(args[2]).split()[0])

    event.listen(store.database.engine, "before_cursor_execute", note)
    return seen


def checks(*evidence: Evidence) -> list[tuple[AlertRule, Evidence]]:
    return list(zip(CONFIG.rules, evidence, strict=True))


def test_a_quiet_machine_costs_one_read_and_writes_nothing(store: Store) -> None:
    seen = statements(store)
    evaluations = evaluate_all(store.alerts, "m1", checks(FINE, FINE, FINE), T0, CHANNELS)
    assert [(e.alert, e.event, e.delivery_ids) for e in evaluations] == [(None, None, [])] * 3
    assert seen == ["SELECT"]
    assert store.alerts.list() == []


def test_every_rule_moves_as_it_would_on_its_own(store: Store) -> None:
    store.silences.create(
        SilenceIn(matchers={"team": "night"}, ends_at=T0 + timedelta(hours=1), created_by="bob"),
        T0,
    )
    first = evaluate_all(store.alerts, "m1", checks(HOLDS, HOLDS, HOLDS), T0, CHANNELS)
    assert [e.event for e in first] == [Event.FIRING, None, None]
    assert [e.alert.state if e.alert else None for e in first] == ["firing", "pending", "firing"]
    assert len(first[0].delivery_ids) == 1 and first[1].delivery_ids == first[2].delivery_ids == []
    assert first[2].alert is not None and first[2].alert.silenced  # fires, sends nothing

    later = T0 + timedelta(seconds=10)
    second = evaluate_all(store.alerts, "m1", checks(FINE, FINE, HOLDS), later, CHANNELS)
    assert [e.event for e in second] == [Event.RESOLVED, None, None]
    assert second[1].alert is None  # the pending one is dropped: it never fired
    assert len(second[0].delivery_ids) == 1
    states = {a.rule: a.state for a in store.alerts.list()}
    assert states == {"flagged": "resolved", "silent": "firing"}

    # one rule alone, through evaluate: the same engine, the same instances
    again = evaluate(store.alerts, CONFIG.rules[0], "m1", HOLDS, later, CHANNELS)
    assert again.event is Event.FIRING and again.alert is not None
    assert again.alert.id not in {e.alert.id for e in first if e.alert is not None}


def test_rules_are_evaluated_at_most_once_per_call(store: Store) -> None:
    rule = CONFIG.rules[0]
    with pytest.raises(ValueError, match="at most once"):
        evaluate_all(store.alerts, "m1", [(rule, HOLDS), (rule, FINE)], T0, CHANNELS)
    assert evaluate_all(store.alerts, "m1", [], T0, CHANNELS) == []


def test_evaluate_machine_scores_and_dispatches_once(store: Store) -> None:
    times = [T0 + timedelta(seconds=i) for i in range(3)]
    added = store.readings.add(ReadingsBatch.of_rows("m1", ["a", "b"], times, [[0.0, 0.0]] * 3))
    scores = np.array([0.1, 5.0, 6.0])  # two of the last three above the threshold (1.0)
    store.scores.add(
        ScoreRecord(store.readings.get(added.batch_id), "m-model", 1, "champion", 1.0, scores,
                    np.tile([0.9, 0.1], (3, 1)), ["a", "b"])
    )  # fmt: skip
    dispatcher = Dispatcher()
    now = T0 + timedelta(seconds=5)
    evaluations = evaluate_machine("m1", store=store, config=CONFIG, dispatcher=dispatcher, now=now)
    assert [e.event for e in evaluations] == [Event.FIRING, None, None]
    assert [e.alert.state if e.alert else None for e in evaluations] == ["firing", "pending", None]
    assert dispatcher.notified == evaluations[0].delivery_ids and len(dispatcher.notified) == 1
    assert store.deliveries.undispatched(older_than=now + timedelta(days=1)) == []
    fired = evaluations[0].alert
    assert fired is not None and fired.last_score == 6.0 and fired.top_sensors[0].sensor == "a"
    again = evaluate_machine("m1", store=store, config=CONFIG, dispatcher=dispatcher, now=now)
    assert [e.event for e in again] == [None, None, None] and len(dispatcher.notified) == 1


def add_scores(
    store: Store, machine_id: str, scores: Sequence[float], start: datetime = T0
) -> None:
    times = [start + timedelta(seconds=i) for i in range(len(scores))]
    values = [[0.0, 0.0]] * len(scores)
    added = store.readings.add(ReadingsBatch.of_rows(machine_id, ["a", "b"], times, values))
    store.scores.add(
        ScoreRecord(store.readings.get(added.batch_id), f"{machine_id}-model", 1, "champion",
                    1.0, np.asarray(scores), np.tile([0.9, 0.1], (len(scores), 1)), ["a", "b"])
    )  # fmt: skip


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # SQLite: one by one
def test_a_fleet_is_evaluated_in_a_number_of_queries_that_does_not_grow(store: Store) -> None:
    def quiet_fleet(n: int) -> dict[str, int]:
        for k in range(n):
            add_scores(store, f"q{n}-{k}", [0.1, 0.2, 0.3])
        return {f"q{n}-{k}": 3 for k in range(n)}

    seen = statements(store)
    now = T0 + timedelta(seconds=5)
    counts = []
    for fleet in (quiet_fleet(3), quiet_fleet(40)):
        seen.clear()
        out = evaluate_machines(fleet, store=store, config=CONFIG, dispatcher=Dispatcher(), now=now)
        assert out == {}  # nothing holds, nothing is open: nobody is stepped
        counts.append(len(seen))
    assert counts[0] == counts[1]
    assert store.alerts.list() == []


def test_a_fleet_moves_each_machine_as_it_would_on_its_own(store: Store) -> None:
    add_scores(store, "m1", [0.1, 5.0, 6.0])  # fires "flagged", "slow" pending
    add_scores(store, "m2", [0.1, 0.2, 0.3])  # quiet
    add_scores(store, "m3", [0.1, 0.2, 7.0])  # "slow" pending only
    now = T0 + timedelta(seconds=5)
    fleet, alone = Dispatcher(), Dispatcher()
    together = evaluate_machines(
        {"m1": 3, "m2": 3, "m3": 1}, store=store, config=CONFIG, dispatcher=fleet, now=now
    )
    assert set(together) == {"m1", "m3"}
    assert [e.event for e in together["m1"]] == [Event.FIRING, None, None]
    assert [e.alert.state if e.alert else None for e in together["m3"]] == [None, "pending", None]
    assert len(fleet.notified) == 1
    # the same machines evaluated again one by one: already where the fleet left them
    for machine_id, new in (("m1", 3), ("m2", 3), ("m3", 1)):
        again = evaluate_machine(
            machine_id, store=store, config=CONFIG, dispatcher=alone, now=now, new_readings=new
        )
        assert [e.event for e in again] == [None, None, None]
    assert alone.notified == []
    # an open alert is stepped even when nothing holds any more: it resolves
    add_scores(store, "m1", [0.1, 0.1, 0.1], start=T0 + timedelta(seconds=3))
    resolved = evaluate_machines({"m1": 3}, store=store, config=CONFIG, dispatcher=fleet, now=now)
    assert [e.event for e in resolved["m1"]] == [Event.RESOLVED, None, None]


def recent_reads(store: Store) -> list[list[str]]:
    """The machines of each read of recent scores from now on (a spy on the store)."""
    return _spy(store.scores, "recent_many")


def open_reads(store: Store) -> list[list[str]]:
    """The machines of each read of which machines have an open alert (a spy)."""
    return _spy(store.alerts, "machines_with_open")


def _spy(repository: object, method: str) -> list[list[str]]:
    read: list[list[str]] = []
    real = getattr(repository, method)

    def reading(by_machine: dict[str, object]) -> object:
        read.append(sorted(by_machine))
        return real(by_machine)

    setattr(repository, method, reading)
    return read


def test_new_readings_that_meet_no_rule_spare_the_read_of_recent_scores(store: Store) -> None:
    """``ratios``: a machine whose new readings cannot make a score rule hold and that has
    no open alert is not read; one whose readings could, or that has an open alert, is
    evaluated as without ``ratios`` (an open alert still resolves)."""
    add_scores(store, "calm", [0.1, 0.2, 0.3])
    add_scores(store, "hot", [0.1, 5.0, 6.0])
    add_scores(store, "nan", [0.1, 0.2, 0.3])
    read, open_read = recent_reads(store), open_reads(store)
    now = T0 + timedelta(seconds=5)
    ratios = {
        "calm": np.array([0.1, 0.2, 0.3]),
        "hot": np.array([0.1, 5.0, 6.0]),
        "nan": np.array([0.1, 0.2, np.nan]),
    }
    new = {"calm": 3, "hot": 3, "nan": 3}
    out = evaluate_machines(
        new, store=store, config=CONFIG, dispatcher=Dispatcher(), now=now, ratios=ratios
    )
    assert read == [["hot", "nan"]]  # a NaN meets every rule: read
    assert open_read == [["calm", "hot", "nan"]]  # one read of open alerts for all of them
    assert [e.event for e in out["hot"]] == [Event.FIRING, None, None]
    assert "calm" not in out and "nan" not in out
    # the machine with an open alert: calm new readings are read, and they resolve it
    add_scores(store, "hot", [0.1, 0.1, 0.1], start=T0 + timedelta(seconds=3))
    read.clear()
    resolved = evaluate_machines(
        {"hot": 3, "calm": 3}, store=store, config=CONFIG, dispatcher=Dispatcher(), now=now,
        ratios={"hot": np.array([0.1, 0.1, 0.1]), "calm": np.array([0.1, 0.2, 0.3])},
    )  # fmt: skip
    assert read == [["hot"]]
    assert [e.event for e in resolved["hot"]] == [Event.RESOLVED, None, None]


def test_a_rule_below_the_threshold_counts_in_the_ratios(store: Store) -> None:
    """A rule with a multiple under 1 is met by readings under the threshold: such a
    machine is read and fires."""
    config = AlertsConfig.model_validate(
        {"rules": [{"name": "half", "condition": {"kind": "scores", "k": 1, "n": 1,
                                                   "multiple": 0.5}}]}
    )  # fmt: skip
    add_scores(store, "m", [0.1, 0.2, 0.6])
    out = evaluate_machines(
        {"m": 3}, store=store, config=config, dispatcher=Dispatcher(),
        now=T0 + timedelta(seconds=5), ratios={"m": np.array([0.1, 0.2, 0.6])},
    )  # fmt: skip
    assert [e.event for e in out["m"]] == [Event.FIRING]


def test_a_lone_reading_above_the_threshold_spares_the_read_unless_older_ones_could_count(
    store: Store,
) -> None:
    """k of n: with no open alert fewer than k of the older readings were above, so a lone
    reading above far into the new ones cannot make the rule hold (not read); one among
    the first n - 1 could, with older ones (read, and judged on the stored scores)."""
    config = AlertsConfig.model_validate(
        {"rules": [{"name": "three", "condition": {"kind": "scores", "k": 3, "n": 5}}]}
    )
    lone_late, lone_early = np.full(20, 0.1), np.full(20, 0.1)
    lone_late[12], lone_early[2] = 2.0, 2.0
    for machine, ratios in (("late", lone_late), ("early", lone_early)):
        add_scores(store, machine, [2.0, 2.0, 0.1, 0.1])  # two of the older ones above
        add_scores(store, machine, ratios.tolist(), start=T0 + timedelta(seconds=4))
    read = recent_reads(store)
    out = evaluate_machines(
        {"late": 20, "early": 20}, store=store, config=config, dispatcher=Dispatcher(),
        now=T0 + timedelta(seconds=30), ratios={"late": lone_late, "early": lone_early},
    )  # fmt: skip
    assert read == [["early"]]
    assert out == {}  # read, and quiet: the two older ones above are out of its window


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_concurrent_evaluations_notify_each_event_once(store: Store) -> None:
    results = []

    def evaluate() -> None:
        results.append(evaluate_all(store.alerts, "m1", checks(HOLDS, HOLDS, FINE), T0, CHANNELS))

    threads = [threading.Thread(target=evaluate) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 6
    fired = [e for evaluations in results for e in evaluations if e.event is not None]
    assert [e.event for e in fired] == [Event.FIRING]  # one task sent it, the others saw it
    assert len(store.deliveries.list()) == 1
    assert sorted(a.rule for a in store.alerts.list()) == ["flagged", "slow"]
