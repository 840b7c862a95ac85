"""The Python client of the MMLW HTTP API: ``from mmlw.client import Client``.

Nothing connects until a call is made.
"""

from mmlw.client._data import ScoresWindow, Window
from mmlw.client._http import Page
from mmlw.client.client import Client
from mmlw.client.errors import (
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
