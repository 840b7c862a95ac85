"""The smaller sections of the settings: the API, alerts and their mail server, the
dashboard, the time limits of tasks, and data retention."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator

__all__ = [
    "AlertSettings",
    "ApiSettings",
    "DashboardSettings",
    "RetentionSettings",
    "SmtpSettings",
    "TaskSettings",
]


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8000
    keys: list[SecretStr] = Field(
        default_factory=list,
        description="keys with every scope (bootstrap/admin); more with `mmlw keys create`",
    )
    public_read: bool = Field(default=False, description="GET routes need no key")
    cors_origins: list[str] = Field(
        default_factory=list,
        description="browser origins allowed to call the API (none)",
    )
    public_url: str = "http://127.0.0.1:8000"
    max_import_mb: float = Field(
        default=256,
        gt=0,
        description="largest file POST /machines/{id}/imports accepts",
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
    keep_alive_s: int = Field(
        default=5, ge=1, description="an idle keep-alive connection is closed after this long"
    )
    max_header_bytes: int = Field(
        default=16_384,
        ge=1024,
        description="largest request line plus headers (h11's max incomplete event size)",
    )
    alias_max_age_s: float = Field(
        default=30.0,
        ge=0,
        description="GET /machines reuses the registry's champions until MMLW moves an "
        "alias or they are this old (s): a move made outside MMLW, e.g. in the MLflow UI, "
        "shows within it",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="open connections and requests at once; more get 503 (uvicorn's "
        "limit_concurrency: it has no header timeout, so this bounds slow clients)",
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
        default=None,
        description="alert rules YAML (configs/alerts.yaml); default: built in",
    )
    tick_s: float = Field(
        default=15.0,
        gt=0,
        description="how often time-based alert conditions are evaluated",
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
        default="http://127.0.0.1:8000",
        description="the backend API the dashboard reads",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="the key `mmlw demo` logs its dashboard in with; visitors log in with "
        "their own key",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="signs the session cookie (at least 32 characters; required in "
        "production, random per start otherwise)",
    )
    session_hours: float = Field(default=12, gt=0, description="how long a login lasts")
    login_attempts_per_minute: int = Field(
        default=10, ge=1, description="login attempts allowed per client address and minute"
    )

    def machine_url(self, machine_id: str) -> str:
        return f"{self.public_url.rstrip('/')}/machines/{machine_id}"


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
        default=6600,
        gt=0,
        description="a tune task (ranking detector configs): the job fails",
    )
    tune_hard_s: float | None = Field(
        default=7000, gt=0, description="a tune task: its worker process is replaced"
    )
    predict_soft_s: float | None = Field(
        default=240,
        gt=0,
        description="a predict task (a group of stored batches): it fails",
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
        kinds: tuple[Literal["train", "tune", "predict"], ...] = (
            "train",
            "tune",
            "predict",
        )
        for kind in kinds:
            soft, hard = self.limits(kind)
            if soft is not None and hard is not None and soft >= hard:
                raise ValueError(f"{kind}_soft_s: must be less than {kind}_hard_s")
        return self


class RetentionSettings(BaseModel):
    """How long stored data is kept, in days (0: forever). A daily task (``mmlw worker
    --beat``, or ``mmlw db prune``) deletes what is older: on PostgreSQL by dropping whole
    day partitions, so up to a day more than this is kept. Readings a model has not
    scored yet are kept whatever their age. Before pruning, the run adds the raw batches
    of closed hours to the per-minute and per-hour rollups, which long time ranges are
    read from; a batch not rolled up yet is never pruned."""

    readings_days: int = Field(default=30, ge=0, description="raw readings batches")
    scores_days: int = Field(default=90, ge=0, description="scores of readings")
    alerts_days: int = Field(
        default=365, ge=0, description="resolved alerts and their deliveries (open: kept)"
    )
    hour_utc: int = Field(default=3, ge=0, le=23, description="hour (UTC) of the daily prune")
    partitions_ahead_days: int = Field(
        default=3, ge=1, le=60, description="PostgreSQL day partitions made ahead of today"
    )
    rollup_minute_days: int = Field(
        default=90, ge=0, description="per-minute rollups of readings and scores"
    )
    rollup_hour_days: int = Field(
        default=730, ge=0, description="per-hour rollups of readings and scores"
    )
