"""What an operator reads: the alert e-mail as a real SMTP server receives it, the webhook
JSON as a real HTTP receiver gets it, and ``mmlw alerts list`` saying what it leaves out."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmlw.alerts.config import load_alerts_config
from mmlw.alerts.engine import Evidence
from mmlw.alerts.mailcatcher import MailCatcher
from mmlw.cli import main
from mmlw.services.alert_evaluation import evaluate
from mmlw.services.alerting import send_delivery
from mmlw.settings import Settings
from mmlw.store import Store
from mmlw.store.tables import utcnow
from tests.integration.receivers import webhook_receiver
from tests.integration.test_alerting import alert_settings, write_rules

# the worst reading scored 400 (threshold 10); its contributions sum to 400
EVIDENCE = Evidence(
    holds=True,
    summary="5 of the last 5 readings above threshold",
    score=400.0,
    threshold=10.0,
    model_version=3,
    top_sensors=(("Vibration1", 297.61), ("Current", 62.39), ("Pressure", 20.0)),
)
SHARES = {"Vibration1": 74.4, "Current": 15.6, "Pressure": 5.0}


@pytest.fixture
def catcher() -> Iterator[MailCatcher]:
    with MailCatcher() as running:
        yield running


def test_mail_and_webhook_show_each_sensors_share_of_the_score_and_mail_headers(
    make_settings: Callable[..., Settings],
    catcher: MailCatcher,
    tmp_path: Path,
    sqlite_store: Store,
) -> None:
    store = sqlite_store
    with webhook_receiver() as hook:
        settings = alert_settings(
            make_settings, write_rules(tmp_path / "a.yaml", hook.url), catcher.port
        )
        config = load_alerts_config(settings.alerts.rules_file)
        channels: dict[str, str] = {name: n.type for name, n in config.notifiers.items()}
        before = utcnow()
        deliveries = evaluate(
            store.alerts, config.rules[0], "pump-7", EVIDENCE, utcnow(), channels
        ).delivery_ids
        for delivery_id in deliveries:
            outcome = send_delivery(delivery_id, store=store, config=config, settings=settings)
            assert outcome.status == "delivered", outcome
        (request,) = hook.requests
    (mail,) = catcher.messages

    # headers every mail client needs to sort and thread it
    sent_at = parsedate_to_datetime(str(mail["Date"]))
    assert before - timedelta(seconds=2) <= sent_at <= utcnow() + timedelta(seconds=2)
    # a long Message-ID may be folded onto its own line (RFC 5322): compare it unfolded
    assert re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", str(mail["Message-ID"]).strip())
    assert "pump-7" in str(mail["Subject"])

    body = mail.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    (line,) = [row for row in text.splitlines() if row.startswith("Top sensors:")]
    assert line.split(":", 1)[1].strip() == (
        "Vibration1 74.4% of score, Current 15.6% of score, Pressure 5.0% of score"
    )
    percentages = [float(p) for p in re.findall(r"(\d+(?:\.\d+)?)%", line)]
    assert percentages == list(SHARES.values()) and sum(percentages) <= 100
    assert "29761%" not in text and "Score:" in text and "400 vs threshold 10" in text
    html = mail.get_body(preferencelist=("html",))
    assert html is not None and "Vibration1 74.4% of score" in html.get_content()

    document = json.loads(request.body)
    assert document["last_score"] == 400.0
    assert {s["sensor"]: s["share_of_score_pct"] for s in document["top_sensors"]} == SHARES
    assert {s["sensor"]: s["contribution"] for s in document["top_sensors"]} == {
        "Vibration1": 297.61,
        "Current": 62.39,
        "Pressure": 20.0,
    }


def test_a_score_that_is_not_positive_shows_raw_contributions_not_percentages(
    make_settings: Callable[..., Settings],
    catcher: MailCatcher,
    tmp_path: Path,
    sqlite_store: Store,
) -> None:
    with webhook_receiver() as hook:
        settings = alert_settings(
            make_settings, write_rules(tmp_path / "a.yaml", hook.url), catcher.port
        )
        config = load_alerts_config(settings.alerts.rules_file)
        channels: dict[str, str] = {name: n.type for name, n in config.notifiers.items()}
        evidence = Evidence(
            holds=True, summary="odd", score=0.0, threshold=-1.0, top_sensors=(("Temp", 0.0),)
        )
        for delivery_id in evaluate(
            sqlite_store.alerts, config.rules[0], "pump-8", evidence, utcnow(), channels
        ).delivery_ids:
            send_delivery(delivery_id, store=sqlite_store, config=config, settings=settings)
        (request,) = hook.requests
    (mail,) = catcher.messages
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None and "Temp (contribution 0)" in body.get_content()
    assert json.loads(request.body)["top_sensors"][0]["share_of_score_pct"] is None


def test_alerts_list_says_how_many_resolved_alerts_it_leaves_out(
    tmp_path: Path, sqlite_store: Store
) -> None:
    config = load_alerts_config(None)
    rule = config.rules[0]
    channels: dict[str, str] = {name: n.type for name, n in config.notifiers.items()}
    for machine in ("press-1", "press-2", "press-3"):
        evaluate(sqlite_store.alerts, rule, machine, EVIDENCE, utcnow(), channels)
    for alert in sqlite_store.alerts.list()[-2:]:
        sqlite_store.alerts.resolve(alert.id, "bob", None, utcnow())
    env: dict[str, str | None] = {name: None for name in os.environ if name.startswith("MMLW_")}
    env |= {
        "MMLW_ENVIRONMENT": "test",
        "MMLW_DATA_DIR": str(tmp_path / "data"),
        "MMLW_DATABASE_URL": str(sqlite_store.database.url),
        "MMLW_BROKER__URL": "memory://",
    }

    def lines(*args: str) -> list[str]:
        result = CliRunner().invoke(main, ["alerts", "list", *args], env=env)
        assert result.exit_code == 0, result.output
        return result.output.splitlines()

    open_only = lines("--state", "open")
    assert sum("firing" in row for row in open_only) == 1
    assert open_only[-1] == (
        "2 resolved alerts are not shown; --state resolved (or no --state for every state) "
        "shows them"
    )
    everything = lines()
    assert sum("resolved" in row for row in everything[1:]) == 2
    assert "not shown" not in everything[-1]
    newest = lines("--limit", "1")
    assert newest[-1].startswith("2 resolved alerts are not shown; --state resolved --limit 2")
    assert "not shown" not in lines("--state", "resolved")[-1]


def test_a_notify_task_for_a_delivery_this_store_lacks_is_dropped(
    make_settings: Callable[..., Settings], sqlite_store: Store
) -> None:
    """A notify task left in the queue by a replaced database (a demo restarted with a
    fresh data dir) names a delivery id this store never had: it is dropped, not raised
    (which would fail, and with retries re-fail, the task on every worker)."""
    settings = make_settings()
    config = load_alerts_config(settings.alerts.rules_file)
    outcome = send_delivery(987_654, store=sqlite_store, config=config, settings=settings)
    assert outcome.status == "unknown" and outcome.retry_in_s is None
