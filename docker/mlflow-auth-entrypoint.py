#!/usr/bin/env python3
"""Start ``mlflow server --app-name basic-auth`` with its login configured from the environment.

Usage (the image's ENTRYPOINT; the arguments are the command to run)::

    mlflow-auth-entrypoint mlflow server --app-name basic-auth --host 0.0.0.0 ...

Before running the command it

1. writes MLflow's auth ini (``MLFLOW_AUTH_CONFIG_PATH``) with ``default_permission`` =
   ``MLFLOW_AUTH_DEFAULT_PERMISSION`` (``NO_PERMISSIONS``: a user holds only what was
   granted to them; requests without credentials always get 401) and the user store at
   ``MLFLOW_AUTH_DATABASE_URI``. The admin's name and password stay in the environment
   (``MLFLOW_AUTH_ADMIN_USERNAME`` / ``MLFLOW_AUTH_ADMIN_PASSWORD``, which MLflow itself reads
   in preference to the ini), never on disk; MLflow creates the admin on first start.
2. when ``MLFLOW_SERVICE_USERNAME`` and ``MLFLOW_SERVICE_PASSWORD`` are set, creates that
   user (not an admin) or resets its password to the configured one, and grants it
   ``MLFLOW_SERVICE_PERMISSION`` (``MANAGE``) on every experiment and registered model: the
   account MMLW's processes log in with.
3. turns on MLflow's cache of successful logins for ``MLFLOW_AUTH_CACHE_TTL_SECONDS``
   (60 unless set; 0 turns it off). Without it every request pays a password-hash check
   (werkzeug's scrypt); the MLflow login tests cost the server 48.5 CPU-s without the
   cache and 8.6 with it. A password changed through the API is invalidated at once on
   the worker that changed it, and within the TTL on any other worker.
4. sets ``MLFLOW_FLASK_SERVER_SECRET_KEY`` (the auth app's CSRF key) to a random value when
   it is not set: every worker of this one server inherits the same key.

Any configuration error ends the process with one line on stderr and exit status 2.
"""

from __future__ import annotations

import os
import secrets
import sys
import tempfile
from pathlib import Path

DEFAULT_DATABASE_URI = "sqlite:////var/lib/mlflow/auth/basic_auth.db"
AUTHORIZATION_FUNCTION = "mlflow.server.auth:authenticate_request_basic_auth"
SERVICE_RESOURCE_TYPES = ("experiment", "registered_model")


class ConfigError(Exception):
    pass


def write_auth_config(environ: dict[str, str]) -> Path:
    """The auth ini (mode 0600) for the settings in ``environ``; returns its path."""
    permission = environ.get("MLFLOW_AUTH_DEFAULT_PERMISSION", "NO_PERMISSIONS")
    database_uri = environ.get("MLFLOW_AUTH_DATABASE_URI") or DEFAULT_DATABASE_URI
    admin = environ.get("MLFLOW_AUTH_ADMIN_USERNAME") or "admin"
    if not environ.get("MLFLOW_AUTH_ADMIN_PASSWORD"):
        raise ConfigError("MLFLOW_AUTH_ADMIN_PASSWORD is not set (the MLflow admin's password)")
    cache_ttl = environ.get("MLFLOW_AUTH_CACHE_TTL_SECONDS", "60")
    if not cache_ttl.isdigit() or int(cache_ttl) > 86_400:
        raise ConfigError(
            "MLFLOW_AUTH_CACHE_TTL_SECONDS must be a whole number of seconds, 0-86400"
        )
    for name, value in (("MLFLOW_AUTH_DATABASE_URI", database_uri), ("admin user", admin)):
        if "\n" in value or "\r" in value:
            raise ConfigError(f"{name} must not contain a line break")
    if database_uri.startswith("sqlite:///"):
        Path(database_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    text = (
        "[mlflow]\n"
        f"default_permission = {permission}\n"
        f"database_uri = {_ini(database_uri)}\n"
        f"admin_username = {_ini(admin)}\n"
        f"authorization_function = {AUTHORIZATION_FUNCTION}\n"
        "grant_default_workspace_access = false\n"
        f"auth_cache_ttl_seconds = {int(cache_ttl)}\n"
    )
    directory = Path(environ.get("MLFLOW_AUTH_CONFIG_DIR") or tempfile.mkdtemp(prefix="mlflow-"))
    path = directory / "basic_auth.ini"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    return path


def _ini(value: str) -> str:
    """``value`` as configparser (MLflow reads the ini with interpolation) gives it back."""
    return value.replace("%", "%%")


def ensure_service_user(environ: dict[str, str], database_uri: str) -> str | None:
    """Create or update the service account; returns its name (None when not configured)."""
    username = environ.get("MLFLOW_SERVICE_USERNAME")
    password = environ.get("MLFLOW_SERVICE_PASSWORD")
    if not username and not password:
        return None
    if not (username and password):
        raise ConfigError("set MLFLOW_SERVICE_USERNAME and MLFLOW_SERVICE_PASSWORD, or neither")
    if username == (environ.get("MLFLOW_AUTH_ADMIN_USERNAME") or "admin"):
        raise ConfigError("MLFLOW_SERVICE_USERNAME must differ from the admin's name")
    permission = environ.get("MLFLOW_SERVICE_PERMISSION", "MANAGE")

    from mlflow.exceptions import MlflowException
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    try:
        store.init_db(database_uri)  # creates or migrates the user store, as the server would
        if store.has_user(username, use_primary=True):
            store.update_user(username, password=password, is_admin=False)
        else:
            store.create_user(username, password, is_admin=False)
        for resource_type in SERVICE_RESOURCE_TYPES:
            store.grant_user_permission(username, resource_type, "*", permission)
    except MlflowException as exc:
        raise ConfigError(f"MLflow service user {username!r}: {exc.message}") from exc
    return username


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: mlflow-auth-entrypoint COMMAND [ARG...]")
    environ = dict(os.environ)
    try:
        config = write_auth_config(environ)
        database_uri = environ.get("MLFLOW_AUTH_DATABASE_URI") or DEFAULT_DATABASE_URI
        ensure_service_user(environ, database_uri)
    except ConfigError as exc:
        print(f"mlflow-auth-entrypoint: {exc}", file=sys.stderr)
        sys.exit(2)
    os.environ["MLFLOW_AUTH_CONFIG_PATH"] = str(config)
    os.environ.setdefault("MLFLOW_FLASK_SERVER_SECRET_KEY", secrets.token_hex(32))
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
