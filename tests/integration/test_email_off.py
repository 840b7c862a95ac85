"""Alert e-mail is off until an SMTP host is configured: an e-mail delivery is then recorded
as skipped with the reason (never attempted, never retried), and the API says once at
start how to turn it on. With a host (the demo's catcher, a real server) mail goes out."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from mmlw.alerts.config import EmailNotifier, load_alerts_config
from mmlw.alerts.engine import Evidence
from mmlw.alerts.mailcatcher import MailCatcher
from mmlw.alerts.notifiers import EMAIL_OFF, EmailSender, log_email_status
from mmlw.api.app import create_app
from mmlw.cli import main
from mmlw.registry.mlflow_registry import MlflowRegistry
from mmlw.services.alert_evaluation import evaluate
from mmlw.services.alerting import send_delivery
from mmlw.settings import AlertSettings, Settings, SmtpSettings
from mmlw.store import Store
from mmlw.store.tables import utcnow

RULES = (
    "notifiers: {mail: {type: email, to: [ops@example.com], max_attempts: 5}}\n"
    "rules: [{name: hot, condition: {kind: scores, k: 1, n: 1}, notify: [mail]}]\n"
)
BAD = Evidence(holds=True, summary="bad", score=5.0, threshold=1.0)


def open_alert(store: Store, rules: Path, machine_id: str = "press-1") -> int:
    config = load_alerts_config(rules)
    (delivery_id,) = evaluate(
        store.alerts, config.rules[0], machine_id, BAD, utcnow(), {"mail": "email"}
    ).delivery_ids
    return delivery_id


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    path = tmp_path / "alerts.yaml"
    path.write_text(RULES)
    return path


def test_the_env_var_turns_email_on(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("MMLW_")]:
        monkeypatch.delenv(name)
    assert not Settings().alerts.smtp.enabled
    monkeypatch.setenv("MMLW_ALERTS__SMTP__HOST", "")
    assert not Settings().alerts.smtp.enabled
    monkeypatch.setenv("MMLW_ALERTS__SMTP__HOST", "mail.example.com")
    assert Settings().alerts.smtp.enabled
    assert "MMLW_ALERTS__SMTP__HOST" in EMAIL_OFF


def test_an_email_delivery_is_skipped_with_the_reason_while_smtp_is_off(
    make_settings: Callable[..., Settings], sqlite_store: Store, rules: Path
) -> None:
    settings = make_settings(alerts=AlertSettings(rules_file=rules))
    config = load_alerts_config(rules)
    delivery_id = open_alert(sqlite_store, rules)

    outcome = send_delivery(delivery_id, store=sqlite_store, config=config, settings=settings)
    assert outcome.status == "skipped" and outcome.retry_in_s is None  # not retried
    delivery = sqlite_store.deliveries.get(delivery_id)
    assert delivery.status == "skipped" and delivery.last_error == EMAIL_OFF
    assert delivery.attempts == []  # nothing was tried
    again = send_delivery(delivery_id, store=sqlite_store, config=config, settings=settings)
    assert again.status == "done"
    assert [d.id for d in sqlite_store.deliveries.list(status="skipped")] == [delivery_id]


def test_with_a_host_the_same_delivery_is_sent(
    make_settings: Callable[..., Settings], sqlite_store: Store, rules: Path
) -> None:
    with MailCatcher() as catcher:
        smtp = SmtpSettings(host="127.0.0.1", port=catcher.port)
        settings = make_settings(alerts=AlertSettings(rules_file=rules, smtp=smtp))
        delivery_id = open_alert(sqlite_store, rules)
        config = load_alerts_config(rules)
        outcome = send_delivery(delivery_id, store=sqlite_store, config=config, settings=settings)
        assert outcome.status == "delivered"
        assert len(catcher.messages) == 1


def test_the_email_sender_never_connects_while_off() -> None:
    sender = EmailSender(EmailNotifier(type="email", to=["ops@example.com"]), SmtpSettings())
    result = sender.send({"machine_id": "m"}, delivery_id=1)
    assert not result.ok and result.error == EMAIL_OFF and result.duration_ms == 0.0


def test_the_api_says_once_at_start_that_email_is_off(
    make_settings: Callable[..., Settings],
    sqlite_store: Store,
    registry: MlflowRegistry,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with TestClient(create_app(make_settings(), store=sqlite_store, registry=registry)):
        pass
    assert [r.getMessage() for r in caplog.records].count(EMAIL_OFF) == 1

    caplog.clear()
    smtp = SmtpSettings(host="mail.example.com")
    settings = make_settings(alerts=AlertSettings(smtp=smtp))
    with TestClient(create_app(settings, store=sqlite_store, registry=registry)):
        pass
    assert EMAIL_OFF not in [r.getMessage() for r in caplog.records]


def test_log_email_status_says_nothing_when_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    log_email_status(SmtpSettings(host="127.0.0.1"), logging.getLogger("t"))
    log_email_status(SmtpSettings(), logging.getLogger("t"))
    assert [r.getMessage() for r in caplog.records] == [EMAIL_OFF]


def test_the_cli_lists_skipped_deliveries(tmp_path: Path, sqlite_store: Store, rules: Path) -> None:
    delivery_id = open_alert(sqlite_store, rules)
    sqlite_store.deliveries.skip(delivery_id, EMAIL_OFF)
    env = {
        "MMLW_DATABASE_URL": str(sqlite_store.database.engine.url),
        "MMLW_DATA_DIR": str(tmp_path / "data"),
        "MMLW_BROKER__URL": "memory://",
    }
    result = CliRunner().invoke(main, ["alerts", "deliveries", "--status", "skipped"], env=env)
    assert result.exit_code == 0, result.output
    assert "skipped" in result.stdout and "e-mail notifications are off" in result.stdout
