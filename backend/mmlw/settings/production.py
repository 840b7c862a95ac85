"""What production refuses: credentials that are missing where one is needed, empty, or
a well-known default, and API keys too short to resist guessing."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from mmlw.settings.root import Settings

__all__ = ["DEFAULT_PASSWORDS", "MIN_KEY_LENGTH", "refuse_default_credentials"]

# compared lower-case, after percent-decoding; "password1234" is MLflow basic-auth's default
DEFAULT_PASSWORDS = {
    *(
        "",
        "guest",
        "postgres",
        "password",
        "changeme",
        "change-me",
        "admin",
        "secret",
        "mmlw",
    ),
    *(
        "password1234",
        "mlflow",
        "rabbitmq",
        "root",
        "test",
        "default",
        "123456",
        "12345678",
    ),
}
MIN_KEY_LENGTH = 16  # API keys and the dashboard's key, in production


def _login(url: str) -> tuple[str | None, str | None]:
    """The user and password of ``url``, percent-decoded; None where absent."""
    parts = urlsplit(url)
    user, password = parts.username, parts.password
    return (
        None if user is None else unquote(user),
        None if password is None else unquote(password),
    )


def _is_default(secret: str | None) -> bool:
    """Empty, missing or a well-known default password."""
    return (secret or "").strip().lower() in DEFAULT_PASSWORDS


def _broker_login_problem(url: str) -> str | None:
    """Why the broker URL(s) would log in with a default account, or None. kombu logs in
    as guest/guest when a URL gives no user, and with password guest when it gives none;
    ``;`` separates failover URLs."""
    for part in url.split(";"):
        part = part.strip()
        if not part or part.startswith("memory://"):
            continue
        user, password = _login(part)
        if not user or user.strip().lower() == "guest":
            return "RabbitMQ's guest account (a URL without a user logs in as guest)"
        if _is_default(password):
            return f"a default or empty password for {user!r} (none given means guest)"
    return None


def refuse_default_credentials(settings: Settings) -> None:
    """ValueError naming the first credential of ``settings`` that is missing where one
    is needed, empty, or a well-known default (percent-decoded before comparing)."""
    problem = _broker_login_problem(settings.broker.url)
    if problem:
        raise ValueError(f"broker.url: {problem} is refused in production")
    if settings.database_url and "://" in settings.database_url:
        user, password = _login(settings.database_url)
        if user is not None and _is_default(password):
            raise ValueError("database_url: a default or empty password is refused in production")
    for key in settings.api.keys:
        if len(key.get_secret_value()) < MIN_KEY_LENGTH:
            raise ValueError(
                f"api.keys: keys shorter than {MIN_KEY_LENGTH} characters are refused in production"
            )
    dashboard_key = settings.dashboard.api_key
    if dashboard_key is not None and (
        len(dashboard_key.get_secret_value()) < MIN_KEY_LENGTH
        or _is_default(dashboard_key.get_secret_value())
    ):
        raise ValueError(
            f"dashboard.api_key: a key shorter than {MIN_KEY_LENGTH} characters is refused "
            "in production"
        )
    smtp = settings.alerts.smtp
    smtp_password = None if smtp.password is None else smtp.password.get_secret_value()
    if (smtp.username is not None or smtp_password is not None) and _is_default(smtp_password):
        raise ValueError(
            "alerts.smtp.password: a default or empty password is refused in production"
        )
    tracking_uri = settings.mlflow_tracking_uri or ""
    if tracking_uri.startswith(("http://", "https://")):
        secret = settings.mlflow_password
        password = secret.get_secret_value() if secret else _login(tracking_uri)[1]
        if _is_default(password):
            raise ValueError(
                "mlflow_password: the MLflow server must require a login in production; set "
                "MMLW_MLFLOW_USERNAME and MMLW_MLFLOW_PASSWORD (a default or empty password "
                "is refused in production)"
            )
