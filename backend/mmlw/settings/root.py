"""The root of the settings tree: top-level ``MMLW_*`` variables and one field per
section; read from the environment once, by an entry point."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mmlw.settings.broker import BrokerSettings
from mmlw.settings.models import ModelSettings
from mmlw.settings.production import refuse_default_credentials
from mmlw.settings.sections import (
    AlertSettings,
    ApiSettings,
    DashboardSettings,
    RetentionSettings,
    TaskSettings,
)

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Everything configurable about MMLW. See ``configs/settings.example.env``."""

    model_config = SettingsConfigDict(
        env_prefix="MMLW_", env_nested_delimiter="__", env_file=None, extra="ignore"
    )

    environment: str = Field(default="development", pattern="^(development|production|test)$")
    data_dir: Path = Path(".mmlw-data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file in data_dir"
    )
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="default: a SQLite MLflow store in data_dir named after the database: "
        "mlflow.db with the default SQLite database (the demo's), else mlflow/<database "
        "name>-<hash of its host, port and name>.db, so that two deployments never share "
        "one by default",
    )
    mlflow_experiment: str = "mmlw"
    mlflow_username: str | None = Field(
        default=None,
        description="login at an MLflow server that requires one (``mlflow server --app-name "
        "basic-auth``, as compose runs it); required with an http(s) tracking URI in production",
    )
    mlflow_password: SecretStr | None = Field(default=None, description="see mlflow_username")
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    tasks: TaskSettings = Field(default_factory=TaskSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)

    @model_validator(mode="after")
    def _mlflow_login_is_complete(self) -> Settings:
        if (self.mlflow_username is None) != (self.mlflow_password is None):
            raise ValueError("mlflow_username and mlflow_password: set both or neither")
        return self

    @model_validator(mode="after")
    def _no_default_passwords_in_production(self) -> Settings:
        """In production, refuse every credential that is missing where one is needed,
        empty, or a well-known default (see :mod:`mmlw.settings.production`)."""
        if self.environment == "production":
            refuse_default_credentials(self)
        return self

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'mmlw.db'}"

    @property
    def resolved_tracking_uri(self) -> str:
        """The MLflow store: the one configured, else a SQLite file of this deployment's.
        With the default database that is ``data_dir/mlflow.db`` (the demo's layout);
        with any other database it is named after that database (``data_dir/mlflow/
        <name>-<hash of where it lives>.db``), so that two deployments sharing a data dir
        (or a working directory) never share models by default."""
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        default_database = f"sqlite:///{self.data_dir / 'mmlw.db'}"
        if self.database_url is None or self.database_url == default_database:
            return f"sqlite:///{self.data_dir / 'mlflow.db'}"
        name, where = _database_identity(self.database_url)
        digest = hashlib.sha256(where.encode()).hexdigest()[:12]
        return f"sqlite:///{self.data_dir / 'mlflow' / f'{name}-{digest}.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.data_dir / "mlartifacts"

    @property
    def uses_local_broker(self) -> bool:
        return self.broker.url.startswith("memory://")

    def model_signing_key(self) -> bytes:
        """The key that signs and verifies model artifacts: the configured one, else the
        random one kept in the data dir (created on first use)."""
        signing_key = self.models.signing_key
        if self.environment == "production" and (
            signing_key is None or len(signing_key.get_secret_value()) < 32
        ):  # checked where it is used: the dashboard, say, never holds it
            raise ValueError(
                "models.signing_key: set MMLW_MODELS__SIGNING_KEY to a secret of at least 32 "
                "characters in production (it vouches for every model a worker loads)"
            )
        if signing_key is not None:
            return signing_key.get_secret_value().encode()
        from mmlw.registry.signing import load_or_create_key

        return load_or_create_key(self.data_dir / "model-signing.key")

    def ensure_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)


DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}


def _database_identity(url: str) -> tuple[str, str]:
    """A file-name-safe name of the database at ``url`` and where it lives (backend,
    host, port and database; a SQLite file's absolute path), without driver, user or
    password, so that changing those does not move the MLflow store."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    database = parsed.database or ""
    if backend == "sqlite":
        path = Path(database).expanduser().resolve() if database not in ("", ":memory:") else None
        where = f"sqlite:{path or database}"
        name = path.stem if path is not None else "memory"
    else:
        port = parsed.port or DEFAULT_PORTS.get(backend, 0)
        where = f"{backend}://{(parsed.host or 'localhost').lower()}:{port}/{database}"
        name = database or backend
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:64], where
