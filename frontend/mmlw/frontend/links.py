"""Where the dashboard links to: its own pages and the MLflow UI.

>>> mlflow_run_url("http://127.0.0.1:5000/", "abc123")
'http://127.0.0.1:5000/#/runs/abc123'
>>> mlflow_version_url("http://mlflow.example", "mmlw-pump 1", 3)
'http://mlflow.example/#/models/mmlw-pump%201/versions/3'
"""

from __future__ import annotations

from urllib.parse import quote

from mmlw.settings import Settings

__all__ = [
    "DEFAULT_MLFLOW_UI",
    "machine_path",
    "mlflow_run_url",
    "mlflow_ui_url",
    "mlflow_version_url",
    "models_path",
]

DEFAULT_MLFLOW_UI = "http://127.0.0.1:5000"


def machine_path(machine_id: str) -> str:
    """The machine page (alerts link to the same path under ``dashboard.public_url``)."""
    return f"/machines/{quote(machine_id)}"


def models_path(machine_id: str | None = None) -> str:
    return "/models" if machine_id is None else f"/models/{quote(machine_id)}"


def mlflow_ui_url(settings: Settings) -> str:
    """The MLflow UI: the tracking server when it is one, else where ``mlflow ui`` listens
    by default (the README's command for the local SQLite store)."""
    uri = settings.mlflow_tracking_uri or ""
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else DEFAULT_MLFLOW_UI


def mlflow_run_url(base: str, run_id: str) -> str:
    return f"{base.rstrip('/')}/#/runs/{quote(run_id)}"


def mlflow_version_url(base: str, model_name: str, version: int) -> str:
    return f"{base.rstrip('/')}/#/models/{quote(model_name)}/versions/{version}"
