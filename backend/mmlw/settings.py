"""One settings object for every process, read from ``MMLW_*`` environment variables.

Nested sections use a double underscore: ``MMLW_BROKER__URL``, ``MMLW_API__KEYS``.
Entry points build a :class:`Settings` once and pass it down; nothing below them reads
the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mmlw.detectors.default import DEFAULT_DETECTOR

__all__ = [
    "BROKER_SCHEMES",
    "INGEST_MAX_LENGTH",
    "AlertSettings",
    "ApiSettings",
    "BrokerSettings",
    "DashboardSettings",
    "DriftSettings",
    "ModelSettings",
    "PromotionSettings",
    "Settings",
    "SmtpSettings",
    "TaskSettings",
]


# 100,000 messages: hours of backlog for a plant of machines (100 machines sending a batch
# every 10 s fill it in ~3 h), about 0.9 GB of broker disk at 50-reading batches (~9 KB of
# JSON each, 8 sensors), and a per-queue refusal long before the node-wide memory or disk
# alarm, at which RabbitMQ blocks every publisher on the node (Celery's too).
INGEST_MAX_LENGTH = 100_000

# RabbitMQ (kombu's and pika's spellings) and kombu's in-process transport (mmlw demo)
BROKER_SCHEMES = ("amqp", "amqps", "pyamqp", "memory")

# compared lower-case, after percent-decoding; "password1234" is MLflow basic-auth's default
DEFAULT_PASSWORDS = {
    *("", "guest", "postgres", "password", "changeme", "change-me", "admin", "secret", "mmlw"),
    *("password1234", "mlflow", "rabbitmq", "root", "test", "default", "123456", "12345678"),
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


class BrokerSettings(BaseModel):
    """Where readings and Celery work travel.

    ``memory://`` (the default) keeps everything inside one process: that is what
    ``mmlw demo`` uses. Point it at ``amqp://user:pass@host:5672//`` to run across
    processes and hosts.
    """

    url: str = "memory://"
    namespace: str = Field(
        default="mmlw",
        pattern=r"^[a-z][a-z0-9_-]{0,31}$",
        description="prefix of every exchange and queue name (tests use a unique one)",
    )
    publish_confirm_timeout_s: float = 10.0
    max_batch_readings: int = Field(default=10_000, ge=1)
    max_message_bytes: int = Field(
        default=32 * 2**20,
        ge=1024,
        description="largest readings message body the ingest consumer parses; a longer one "
        "is dead-lettered unparsed (RabbitMQ itself refuses bodies over its max_message_size)",
    )
    predict_prefetch: int = Field(default=4, ge=1)
    ingest_batch_delay_ms: float = Field(
        default=50.0,
        ge=0,
        le=1000,
        description="longest an ingest consumer holds a message before writing its buffer "
        "(more messages per transaction and predict task, at most this much added latency)",
    )
    ingest_idle_ms: float = Field(
        default=15.0,
        ge=0,
        le=1000,
        description="an ingest consumer writes its buffer when no message came for this long",
    )
    ingest_batch_messages: int = Field(
        default=256,
        ge=1,
        le=4096,
        description="most messages an ingest consumer writes in one transaction (bounded "
        "by its prefetch too)",
    )
    predict_batches_per_task: int = Field(
        default=64,
        ge=1,
        le=256,
        description="stored batches one predict task scores together (one transaction, "
        "alert rules once per machine); ingest groups each written buffer into such tasks",
    )
    ingest_max_length: int | None = Field(
        default=INGEST_MAX_LENGTH,
        ge=1,
        description="messages <ns>.ingest holds before the broker refuses (nacks) publishes "
        "(x-max-length + x-overflow reject-publish); part of the queue's identity",
    )
    predict_backlog_limit: int | None = Field(
        default=10_000,
        ge=1,
        description="ingest consumers stop taking readings while <ns>.predict holds more "
        "tasks than this, and resume below half of it (none: never pause)",
    )
    spool_path: Path | None = Field(
        default=None,
        description="mmlw simulate/publish keep batches the broker cannot take in this "
        "SQLite file and send them later (none: fail instead)",
    )
    spool_max_mb: float = Field(default=256, gt=0, description="size limit of the spool")
    dead_letter_body_kib: int = Field(
        default=64,
        ge=1,
        le=32 * 1024,
        description="KiB of a dead letter's body the store keeps, with the size and SHA-256 "
        "of the whole; a longer one keeps only its beginning and cannot be replayed as it was",
    )

    @property
    def dead_letter_body_limit(self) -> int:
        """Bytes of a dead letter's body the store keeps."""
        return self.dead_letter_body_kib * 1024

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme, sep, _ = value.partition("://")
        if not sep or scheme.lower() not in BROKER_SCHEMES:
            what = f"unknown scheme {scheme!r}" if sep else "no scheme"
            raise ValueError(
                f"MMLW_BROKER__URL has {what}; use amqp://user:password@host:5672// "
                f"(RabbitMQ) or memory:// (one process); schemes: {', '.join(BROKER_SCHEMES)}"
            )
        return value


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    keys: list[SecretStr] = Field(
        default_factory=list,
        description="keys with every scope (bootstrap/admin); more with `mmlw keys create`",
    )
    public_read: bool = Field(default=False, description="GET routes need no key")
    cors_origins: list[str] = Field(
        default_factory=list, description="browser origins allowed to call the API (none)"
    )
    public_url: str = "http://127.0.0.1:8000"
    max_import_mb: float = Field(
        default=256, gt=0, description="largest file POST /machines/{id}/imports accepts"
    )
    max_body_mb: float = Field(
        default=16,
        gt=0,
        description="largest request body any other route accepts (MiB), checked before the key",
    )
    max_rows: int = Field(
        default=1_000_000,
        ge=1,
        description="largest `limit` a list or range endpoint accepts (the dashboard reads "
        "up to 1,000,000 readings of a range and draws them downsampled)",
    )


class SmtpSettings(BaseModel):
    """The mail server alert e-mails go through. Off until ``host`` is set: e-mail
    deliveries are then recorded as skipped (``mmlw demo`` sets its own mail catcher)."""

    host: str | None = Field(
        default=None,
        description="SMTP server for alert e-mail, e.g. a local catcher such as Mailpit on "
        "port 1025 (none: e-mail notifications are off)",
    )
    port: int = Field(default=1025, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    starttls: bool = Field(default=False, description="upgrade the connection with STARTTLS")
    ssl: bool = Field(default=False, description="implicit TLS (SMTPS, usually port 465)")
    from_addr: str = "mmlw@localhost"

    @property
    def enabled(self) -> bool:
        return bool(self.host and self.host.strip())


class AlertSettings(BaseModel):
    rules_file: Path | None = Field(
        default=None, description="alert rules YAML (configs/alerts.yaml); default: built in"
    )
    tick_s: float = Field(
        default=15.0, gt=0, description="how often time-based alert conditions are evaluated"
    )
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)


class DashboardSettings(BaseModel):
    """The plotly dashboard: a separate web app that reads only the backend API."""

    host: str = "127.0.0.1"
    port: int = 8050
    public_url: str = Field(
        default="http://127.0.0.1:8050", description="base of links to dashboard pages"
    )
    api_url: str = Field(
        default="http://127.0.0.1:8000", description="the backend API the dashboard reads"
    )
    api_key: SecretStr | None = Field(
        default=None, description="key the dashboard reads with, when the API has keys"
    )

    def machine_url(self, machine_id: str) -> str:
        return f"{self.public_url.rstrip('/')}/machines/{machine_id}"


class PromotionSettings(BaseModel):
    """The gate a challenger passes to become champion.

    ``labelled``: on the machine's newest labelled readings outside the challenger's
    training window (too few left: refused) both versions are scored;
    the challenger needs F1 >= champion F1 - ``f1_tolerance`` and a false-alarm rate at
    most the champion's + ``far_tolerance``. ``shadow``: on the batches both scored
    live, the challenger may flag at most ``max_alert_ratio`` x the champion's rate (or
    ``min_flag_rate``, whichever is larger). ``auto``: labelled when there are at least
    ``min_readings`` labelled readings with both classes, else shadow.
    """

    gate: Literal["auto", "labelled", "shadow"] = "auto"
    min_readings: int = Field(default=200, ge=1)
    f1_tolerance: float = Field(default=0.02, ge=0)
    far_tolerance: float = Field(default=0.0, ge=0)
    max_alert_ratio: float = Field(default=1.5, gt=0)
    min_flag_rate: float = Field(default=0.01, ge=0, le=1)


class DriftSettings(BaseModel):
    """Page-Hinkley on log(score / threshold) per reading; see mmlw.detectors.drift."""

    enabled: bool = True
    delta: float = Field(default=0.5, ge=0)
    threshold: float = Field(default=800.0, gt=0)
    min_readings: int = Field(default=200, ge=1, description="readings before it may fire")
    train_readings: int = Field(
        default=300, ge=10, description="readings after the change to retrain on"
    )
    min_regime_s: float = Field(
        default=600.0,
        ge=0,
        description="a change is a new regime, retrained on, only once it has lasted this "
        "long (by the readings' clock); readings back under the threshold before then end "
        "it as an episode (a fault), with no retraining",
    )
    promote: bool = Field(
        default=True,
        description="the version a drift retrain makes is challenger; promote it to "
        "champion when it passes the promotion gate (on the beat's models-maintain run), "
        "even where MMLW_MODELS__AUTO_PROMOTE is off",
    )


class ModelSettings(BaseModel):
    default_detector: str = DEFAULT_DETECTOR
    threshold_quantile: float = Field(default=0.995, gt=0.5, lt=1.0)
    alias_cache_ttl_s: float = Field(default=5.0, ge=0.0)
    preload_machines: int = Field(
        default=64,
        ge=0,
        description="each worker process loads the champion and challenger of this many "
        "most recently seen machines as it starts, so no batch waits for a model load "
        "after a restart (0: load on a machine's first batch)",
    )
    registered_model_prefix: str = "mmlw-"
    signing_key: SecretStr | None = Field(
        default=None,
        description="HMAC key that vouches for model artifacts MMLW registered; workers load "
        "no version without its signature (required in production, at least 32 characters; "
        "elsewhere a random key is kept in data_dir/model-signing.key)",
    )
    promotion: PromotionSettings = Field(default_factory=PromotionSettings)
    drift: DriftSettings = Field(default_factory=DriftSettings)
    retrain_every_s: float | None = Field(
        default=None, gt=0, description="scheduled retraining per machine (beat); None = off"
    )
    retrain_last_n: int = Field(default=5000, ge=10, description="window of scheduled retrains")
    auto_promote: bool = Field(
        default=False, description="beat promotes a challenger as soon as it passes the gate"
    )
    extra_sensors: Literal["ignore", "reject"] = Field(
        default="ignore",
        description="a batch's sensors that the model's input schema lacks: dropped before "
        "scoring, or the batch is dead-lettered (missing sensors always dead-letter it)",
    )


class TaskSettings(BaseModel):
    """Celery time limits of train, tune and predict tasks, in seconds (none: no limit).

    At the soft limit the task gets ``SoftTimeLimitExceeded`` (a train or tune job is then
    marked failed); at the hard limit the worker process running it is killed and
    replaced. Both need the prefork pool (``mmlw worker``'s default); the threads pool
    cannot stop a task. Keep hard limits under RabbitMQ's consumer_timeout (2 h in
    compose), which closes the channel of a task acknowledged late after that long.
    """

    train_soft_s: float | None = Field(
        default=3300, gt=0, description="a train task (one model): the job fails"
    )
    train_hard_s: float | None = Field(
        default=3600, gt=0, description="a train task: its worker process is replaced"
    )
    tune_soft_s: float | None = Field(
        default=6600, gt=0, description="a tune task (ranking detector configs): the job fails"
    )
    tune_hard_s: float | None = Field(
        default=7000, gt=0, description="a tune task: its worker process is replaced"
    )
    predict_soft_s: float | None = Field(
        default=240, gt=0, description="a predict task (a group of stored batches): it fails"
    )
    predict_hard_s: float | None = Field(
        default=300, gt=0, description="a predict task: its worker process is replaced"
    )

    def limits(
        self, kind: Literal["train", "tune", "predict"]
    ) -> tuple[float | None, float | None]:
        """(soft, hard) time limits of ``kind`` tasks."""
        return getattr(self, f"{kind}_soft_s"), getattr(self, f"{kind}_hard_s")

    @model_validator(mode="after")
    def _soft_before_hard(self) -> TaskSettings:
        kinds: tuple[Literal["train", "tune", "predict"], ...] = ("train", "tune", "predict")
        for kind in kinds:
            soft, hard = self.limits(kind)
            if soft is not None and hard is not None and soft >= hard:
                raise ValueError(f"{kind}_soft_s: must be less than {kind}_hard_s")
        return self


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
        empty, or a well-known default (percent-decoded before comparing)."""
        if self.environment != "production":
            return self
        problem = _broker_login_problem(self.broker.url)
        if problem:
            raise ValueError(f"broker.url: {problem} is refused in production")
        if self.database_url and "://" in self.database_url:
            user, password = _login(self.database_url)
            if user is not None and _is_default(password):
                raise ValueError(
                    "database_url: a default or empty password is refused in production"
                )
        for key in self.api.keys:
            if len(key.get_secret_value()) < MIN_KEY_LENGTH:
                raise ValueError(
                    f"api.keys: keys shorter than {MIN_KEY_LENGTH} characters are refused in "
                    "production"
                )
        dashboard_key = self.dashboard.api_key
        if dashboard_key is not None and (
            len(dashboard_key.get_secret_value()) < MIN_KEY_LENGTH
            or _is_default(dashboard_key.get_secret_value())
        ):
            raise ValueError(
                f"dashboard.api_key: a key shorter than {MIN_KEY_LENGTH} characters is refused "
                "in production"
            )
        smtp = self.alerts.smtp
        smtp_password = None if smtp.password is None else smtp.password.get_secret_value()
        if (smtp.username is not None or smtp_password is not None) and _is_default(smtp_password):
            raise ValueError(
                "alerts.smtp.password: a default or empty password is refused in production"
            )
        tracking_uri = self.mlflow_tracking_uri or ""
        if tracking_uri.startswith(("http://", "https://")):
            secret = self.mlflow_password
            password = secret.get_secret_value() if secret else _login(tracking_uri)[1]
            if _is_default(password):
                raise ValueError(
                    "mlflow_password: the MLflow server must require a login in production; set "
                    "MMLW_MLFLOW_USERNAME and MMLW_MLFLOW_PASSWORD (a default or empty password "
                    "is refused in production)"
                )
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
