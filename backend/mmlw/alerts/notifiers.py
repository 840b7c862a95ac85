"""Send one notification: SMTP e-mail or a signed webhook. One call = one attempt;
retries, backoff and the delivery log belong to the caller (the notify task).

E-mail is off until an SMTP host is configured (:data:`EMAIL_OFF` says how to turn it on).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any, Protocol

import httpx

from mmlw.alerts.config import EmailNotifier, NotifierConfig, WebhookNotifier
from mmlw.alerts.messages import render_email, webhook_body
from mmlw.alerts.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from mmlw.settings import SmtpSettings

__all__ = [
    "EMAIL_OFF",
    "AttemptResult",
    "EmailSender",
    "Notifier",
    "WebhookSender",
    "build_notifier",
    "log_email_status",
]

EMAIL_OFF = "e-mail notifications are off: set MMLW_ALERTS__SMTP__HOST to send alert e-mails"


def log_email_status(smtp: SmtpSettings, logger: logging.Logger) -> None:
    """The one line a starting process says when alert e-mail is off."""
    if not smtp.enabled:
        logger.info(EMAIL_OFF)


@dataclass(frozen=True)
class AttemptResult:
    ok: bool
    duration_ms: float
    status_code: int | None = None
    error: str | None = None


class Notifier(Protocol):
    def send(self, payload: dict[str, Any], delivery_id: int) -> AttemptResult: ...


class EmailSender:
    def __init__(self, config: EmailNotifier, smtp: SmtpSettings) -> None:
        self.config = config
        self.smtp = smtp

    def message(self, payload: dict[str, Any], delivery_id: int) -> EmailMessage:
        content = render_email(payload, self.config.subject_prefix)
        message = EmailMessage()
        message["Subject"] = content.subject
        message["From"] = self.smtp.from_addr
        message["To"] = ", ".join(self.config.to)
        message["Date"] = formatdate(localtime=False, usegmt=True)
        domain = parseaddr(self.smtp.from_addr)[1].rpartition("@")[2] or None
        message["Message-ID"] = make_msgid(idstring=f"mmlw-delivery-{delivery_id}", domain=domain)
        message["X-MMLW-Delivery"] = str(delivery_id)
        message.set_content(content.text)
        message.add_alternative(content.html, subtype="html")
        return message

    def send(self, payload: dict[str, Any], delivery_id: int) -> AttemptResult:
        smtp = self.smtp
        if not smtp.enabled or smtp.host is None:
            return AttemptResult(False, 0.0, error=EMAIL_OFF)
        message = self.message(payload, delivery_id)
        started = time.perf_counter()
        try:
            client_cls = smtplib.SMTP_SSL if smtp.ssl else smtplib.SMTP
            with client_cls(smtp.host, smtp.port, timeout=self.config.timeout) as client:
                if smtp.starttls and not smtp.ssl:
                    client.starttls(context=ssl.create_default_context())
                if smtp.username and smtp.password is not None:
                    client.login(smtp.username, smtp.password.get_secret_value())
                client.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            return AttemptResult(False, _ms(started), error=f"smtp {smtp.host}:{smtp.port}: {exc}")
        return AttemptResult(True, _ms(started))


class WebhookSender:
    """POSTs the JSON body with ``X-MMLW-Timestamp`` and ``X-MMLW-Signature``. The
    secret is used for signing only: it is never logged or stored in the delivery log."""

    def __init__(self, config: WebhookNotifier, client: httpx.Client | None = None) -> None:
        self.config = config
        self._client = client

    def request(
        self, payload: dict[str, Any], delivery_id: int, now: float
    ) -> tuple[bytes, dict[str, str]]:
        body = webhook_body(payload, delivery_id)
        timestamp = int(now)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "mmlw-webhook/1",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self.config.secret.get_secret_value(), body, timestamp),
            "X-MMLW-Delivery": str(delivery_id),
        }
        return body, headers

    def send(self, payload: dict[str, Any], delivery_id: int) -> AttemptResult:
        body, headers = self.request(payload, delivery_id, time.time())
        url = str(self.config.url)
        started = time.perf_counter()
        try:
            if self._client is not None:
                response = self._client.post(url, content=body, headers=headers)
            else:
                with httpx.Client(timeout=self.config.timeout) as client:
                    response = client.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            return AttemptResult(
                False, _ms(started), error=f"timed out after {self.config.timeout:g} s"
            )
        except httpx.HTTPError as exc:
            return AttemptResult(False, _ms(started), error=f"{type(exc).__name__}: {exc}")
        if 200 <= response.status_code < 300:
            return AttemptResult(True, _ms(started), status_code=response.status_code)
        return AttemptResult(
            False,
            _ms(started),
            status_code=response.status_code,
            error=f"HTTP {response.status_code}: {response.text[:200]}",
        )


def build_notifier(config: NotifierConfig, smtp: SmtpSettings) -> Notifier:
    if isinstance(config, EmailNotifier):
        return EmailSender(config, smtp)
    return WebhookSender(config)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
