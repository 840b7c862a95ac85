"""The Python client of the MMLW HTTP API: ``from backend.client import Client``.

Nothing connects until a call is made.
"""

from backend.client._data import ScoresWindow, Window
from backend.client._http import Page
from backend.client.client import Client
from backend.client.errors import (
    ClientError,
    Conflict,
    Forbidden,
    InvalidInput,
    JobFailed,
    JobTimeout,
    NotFound,
    ServiceUnavailable,
    Unauthorized,
)

__all__ = [
    "Client",
    "ClientError",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "JobFailed",
    "JobTimeout",
    "NotFound",
    "Page",
    "ScoresWindow",
    "ServiceUnavailable",
    "Unauthorized",
    "Window",
]
