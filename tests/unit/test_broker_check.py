"""What MMLW says about a broker that is down, refuses us or is misspelt: one line naming
the broker (never its password) and what to do; while waiting, at most every so often."""

from __future__ import annotations

import logging
import socket

import pytest
from amqp.exceptions import AccessRefused, NotAllowed
from kombu.exceptions import OperationalError
from pydantic import ValidationError

from mmlw.messaging.broker_check import (
    BrokerWaitLog,
    broker_location,
    broker_problem,
    check_broker,
    describe_broker_error,
    is_broker_error,
)
from mmlw.settings import BrokerSettings, SmtpSettings

URL = "amqp://guest:pw-s3cret@rabbit.local:5672//"


def wrapped(cause: BaseException) -> OperationalError:
    """How kombu reports a failed connect: its OperationalError raised from the cause."""
    try:
        try:
            raise cause
        except OSError as exc:
            raise OperationalError(str(exc)) from exc
    except OperationalError as error:
        return error


@pytest.mark.parametrize(
    ("url", "location"),
    [
        (URL, "amqp://rabbit.local:5672//"),
        ("amqp://u:p@h/prod", "amqp://h:5672/prod"),
        ("amqps://u:p@h//", "amqps://h:5671//"),
        ("pyamqp://h:5999", "pyamqp://h:5999/"),
        ("memory://", "memory://"),
    ],
)
def test_the_location_never_holds_credentials(url: str, location: str) -> None:
    assert broker_location(url) == location


@pytest.mark.parametrize(
    ("error", "unreachable", "reason"),
    [
        (wrapped(ConnectionRefusedError(111, "Connection refused")), True, "connection refused"),
        (ConnectionRefusedError(111, "Connection refused"), True, "connection refused"),
        (wrapped(socket.gaierror(-2, "Name or service not known")), True, "unknown host"),
        (TimeoutError("timed out"), True, "timed out"),
        (AccessRefused("ACCESS_REFUSED - Login was refused"), False, "login refused"),
        (AccessRefused("ACCESS_REFUSED - access to vhost 'x' refused"), False, "access refused"),
        (NotAllowed("NOT_ALLOWED - vhost nope not found"), False, "not allowed"),
    ],
)
def test_errors_are_classified(error: BaseException, unreachable: bool, reason: str) -> None:
    problem = broker_problem(error, URL)
    assert problem.unreachable is unreachable
    assert problem.reason.startswith(reason)
    assert is_broker_error(error)
    line = describe_broker_error(error, URL)
    assert "\n" not in line and "pw-s3cret" not in line
    assert "amqp://rabbit.local:5672//" in line and "MMLW_BROKER__URL" in line


def test_a_refused_login_names_the_user_and_says_to_check_the_password() -> None:
    line = describe_broker_error(AccessRefused("ACCESS_REFUSED - Login was refused"), URL)
    assert "refused the login of user 'guest'" in line and "password" in line


def test_a_broker_that_is_down_says_to_start_it() -> None:
    line = describe_broker_error(wrapped(ConnectionRefusedError(111, "refused")), URL)
    assert line.startswith("cannot reach the broker at amqp://rabbit.local:5672//")
    assert "start RabbitMQ" in line


def test_other_errors_are_not_the_brokers() -> None:
    assert not is_broker_error(KeyError("x"))
    check_broker("memory://")  # nothing to reach


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_waiting_is_said_at_once_then_at_most_every_so_often(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="t.wait")
    clock = Clock()
    waits = BrokerWaitLog(URL, logging.getLogger("t.wait"), every_s=15, clock=clock)
    refused = wrapped(ConnectionRefusedError(111, "Connection refused"))
    for t in (0, 2, 6, 12, 20, 30, 42):  # kombu's growing retry intervals
        clock.now = t
        waits.failed(refused)
    clock.now = 50
    waits.connected()
    messages = [r.getMessage() for r in caplog.records]
    waiting = "waiting for the broker at amqp://rabbit.local:5672// (connection refused); retrying"
    assert messages == [waiting] * 3 + [
        "connected to the broker at amqp://rabbit.local:5672// (after waiting 50 s)"
    ]
    assert not waits.waiting

    caplog.clear()
    waits.connected()  # a first connection without waiting: one quiet line
    assert [r.getMessage() for r in caplog.records] == [
        "connected to the broker at amqp://rabbit.local:5672//"
    ]
    assert caplog.records[0].levelno == logging.INFO


@pytest.mark.parametrize("url", ["htp://x", "redis://h:6379/0", "rabbit:5672", "u:pw-s3cret@h"])
def test_unknown_broker_schemes_are_refused_by_the_settings(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        BrokerSettings(url=url)
    message = caught.value.errors()[0]["msg"]
    assert "MMLW_BROKER__URL" in message and "amqp://" in message and "memory://" in message
    assert "pw-s3cret" not in message


@pytest.mark.parametrize(
    "url", ["amqp://guest:guest@127.0.0.1:5672//", "AMQPS://h//", "pyamqp://h", "memory://"]
)
def test_known_broker_schemes_pass(url: str) -> None:
    assert BrokerSettings(url=url).url == url


def test_email_is_off_until_a_host_is_set() -> None:
    assert not SmtpSettings().enabled
    assert not SmtpSettings(host=" ").enabled
    assert SmtpSettings(host="127.0.0.1").enabled
