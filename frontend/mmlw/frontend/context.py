"""What every page of the dashboard is built with: one object, passed down, one per
logged-in visitor (its client reads the API with that visitor's key)."""

from __future__ import annotations

from dataclasses import dataclass

from mmlw.frontend.api_client import ApiClient
from mmlw.settings import Settings

__all__ = ["DashboardContext"]


@dataclass(frozen=True)
class DashboardContext:
    settings: Settings
    client: ApiClient
    mlflow_url: str
    refresh_ms: int
