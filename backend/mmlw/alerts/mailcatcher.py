"""A local SMTP server that keeps what it receives: ``mmlw demo`` runs one so alert
e-mails are visible without a mail server (each is logged and saved as ``.eml``), and
tests use it as the real SMTP endpoint. Not for production: it accepts any mail."""

from __future__ import annotations

import email
import email.policy
import logging
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from mmlw.ports import free_port

__all__ = ["MailCatcher"]

log = logging.getLogger(__name__)


class MailCatcher:
    """``with MailCatcher(port=0) as catcher: ... catcher.messages``."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, save_dir: Path | None = None
    ) -> None:
        self.host = host
        self.port = port
        self.save_dir = save_dir
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller: Any = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        if not isinstance(message, EmailMessage):  # the default policy always makes one
            return "554 Transaction failed: unreadable message"
        with self._lock:
            self.messages.append(message)
            count = len(self.messages)
        if self.save_dir is not None:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            (self.save_dir / f"{count:05d}.eml").write_bytes(envelope.content)
        log.info("alert e-mail to %s: %s", ", ".join(envelope.rcpt_tos), message["Subject"])
        return "250 Message accepted for delivery"

    def start(self) -> MailCatcher:
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname=self.host, port=self.port or free_port())
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> MailCatcher:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def subjects(self) -> list[str]:
        with self._lock:
            return [str(m["Subject"]) for m in self.messages]
