"""The root of the settings tree: top-level ``MMLW_*`` variables and one field per
section; read from the environment once, by an entry point."""

from __future__ import annotations

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
        default=None, description="default: SQLite MLflow store in data_dir"
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
        return self.mlflow_tracking_uri or f"sqlite:///{self.data_dir / 'mlflow.db'}"

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
