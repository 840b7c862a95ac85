"""Production refuses default, empty and missing credentials, however they are spelled."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from mmlw.settings import Settings

STRONG = "a-strong-secret-0123456789"
GOOD: dict[str, Any] = {
    "broker": {"url": f"amqp://mmlw-worker:{STRONG}@rabbitmq:5672//"},
    "database_url": f"postgresql+psycopg://mmlw:{STRONG}@postgres:5432/mmlw",
    "mlflow_tracking_uri": "http://mlflow:5000",
    "mlflow_username": "mmlw",
    "mlflow_password": STRONG,
    "api": {"keys": [STRONG]},
    "dashboard": {"api_key": STRONG},
    "alerts": {"smtp": {"username": "alerts", "password": STRONG}},
}


def production(**changes: Any) -> Settings:
    return Settings(environment="production", **{**GOOD, **changes})


def test_a_sound_production_configuration_is_accepted() -> None:
    production()
    production(broker={"url": "memory://"})  # one process, no broker login at all
    production(database_url="sqlite:////var/lib/mmlw/mmlw.db")
    production(database_url="postgresql+psycopg:///mmlw?host=/run/postgresql")  # peer auth
    production(alerts={"smtp": {}})  # a local relay without a login
    production(dashboard={})  # no key of its own
    production(broker={"url": f"amqp://a:{STRONG}@h1//;amqp://b:{STRONG}@h2//"})


@pytest.mark.parametrize(
    "url",
    [
        "amqp://rabbitmq:5672//",  # no user: kombu logs in as guest/guest
        "amqp://rabbitmq//",
        "amqp://@rabbitmq//",
        "amqp://:secret-but-no-user@rabbitmq//",
        "amqp://mmlw@rabbitmq//",  # no password: kombu sends "guest"
        "amqp://mmlw:@rabbitmq//",
        "amqp://guest:guest@rabbitmq//",
        "amqp://guest:a-strong-secret-0123456789@rabbitmq//",  # the guest account itself
        "amqp://gu%65st:gu%65st@rabbitmq//",  # percent-encoded guest
        "amqp://mmlw:gu%65st@rabbitmq//",
        "amqp://mmlw:%47UEST@rabbitmq//",
        "amqp://mmlw:%20guest%20@rabbitmq//",
        "pyamqp://mmlw:changeme@rabbitmq//",
        f"amqp://mmlw:{STRONG}@h1//;amqp://h2//",  # a failover URL without a login
    ],
)
def test_the_broker_url_may_not_log_in_as_guest_or_with_a_default_password(url: str) -> None:
    with pytest.raises(ValidationError, match=r"broker\.url: .* refused in production"):
        production(broker={"url": url})
    Settings(environment="development", broker={"url": url})  # fine elsewhere


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://mmlw:postgres@db/mmlw",
        "postgresql+psycopg://mmlw:po%73tgres@db/mmlw",
        "postgresql+psycopg://mmlw:@db/mmlw",
        "postgresql+psycopg://mmlw@db/mmlw",
        "postgresql+psycopg://postgres:Password@db/mmlw",
    ],
)
def test_the_database_url_may_not_carry_a_default_password(url: str) -> None:
    with pytest.raises(ValidationError, match=r"database_url: .* refused in production"):
        production(database_url=url)


@pytest.mark.parametrize("key", ["", "short", "changeme", "password1234"])
def test_the_dashboard_key_must_be_long(key: str) -> None:
    with pytest.raises(ValidationError, match=r"dashboard\.api_key: .* refused in production"):
        production(dashboard={"api_key": key})


@pytest.mark.parametrize(
    "smtp",
    [
        {"username": "alerts"},  # a login without a password
        {"username": "alerts", "password": ""},
        {"username": "alerts", "password": "password"},
        {"password": "Secret"},
    ],
)
def test_an_smtp_login_needs_a_real_password(smtp: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match=r"alerts\.smtp\.password: .* refused in production"):
        production(alerts={"smtp": smtp})


@pytest.mark.parametrize(
    "changes",
    [
        {"mlflow_username": None, "mlflow_password": None},  # no login at all
        {"mlflow_password": "password1234"},  # MLflow's default admin password
        {"mlflow_password": ""},
        {
            "mlflow_username": None,
            "mlflow_password": None,
            "mlflow_tracking_uri": "http://admin:p%61ssword1234@mlflow:5000",
        },
    ],
)
def test_mlflow_needs_a_real_login(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match=r"mlflow_password: .* refused in production"):
        production(**changes)


def test_api_keys_must_be_long() -> None:
    with pytest.raises(ValidationError, match=r"api\.keys: .* refused in production"):
        production(api={"keys": [STRONG, "short"]})
