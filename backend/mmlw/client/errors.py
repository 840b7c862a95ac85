"""What the client raises: one tree below :class:`ClientError`, itself an MMLW error.

::

    MMLWError                          (mmlw.errors)
    └── ClientError                    status (None if the API was not reached), detail
        ├── Unauthorized               401: no valid X-API-Key
        ├── Forbidden                  403: the key lacks the scope
        ├── NotFound                   404  (also a mmlw.errors.NotFound)
        ├── Conflict                   409: ``reason`` is the server's (also a ConflictError)
        ├── InvalidInput               422: ``field`` names the first offending field
        ├── ServiceUnavailable         503 or no connection (also a
        │                              mmlw.errors.ServiceUnavailable); ``retry_after_s``
        ├── JobFailed                  a job the client waited for failed; ``job``
        └── JobTimeout                 a job did not finish in time (also a TimeoutError)

``str(error)`` is ``"<status>: <detail>"``, the detail flattened to one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmlw import errors

if TYPE_CHECKING:
    from mmlw.schemas.jobs import JobOut

__all__ = [
    "ClientError",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "JobFailed",
    "JobTimeout",
    "NotFound",
    "ServiceUnavailable",
    "Unauthorized",
]


class ClientError(errors.MMLWError):
    """The API refused a request, or could not be reached (``status`` None)."""

    def __init__(self, detail: str, status: int | None = None, raw: Any = None) -> None:
        super().__init__(f"{status}: {detail}" if status is not None else detail)
        self.status = status
        self.detail = detail
        self.raw = raw  # the response's "detail" as sent (a list for validation errors)


class Unauthorized(ClientError):
    pass


class Forbidden(ClientError):
    pass


class NotFound(ClientError, errors.NotFound):
    pass


class Conflict(ClientError, errors.ConflictError):
    """The request contradicts stored state; e.g. the promotion gate's refusal."""

    @property
    def reason(self) -> str:
        return self.detail


class InvalidInput(ClientError):
    """The server refused the input; ``field`` names where (``""`` if it did not say)."""

    @property
    def field(self) -> str:
        if isinstance(self.raw, list) and self.raw and isinstance(self.raw[0], dict):
            return _location(self.raw[0])
        head, sep, _ = self.detail.partition(": ")
        return head if sep and " " not in head else ""


class ServiceUnavailable(ClientError, errors.ServiceUnavailable):
    """The API, or a service behind it, is unavailable; try again later."""

    def __init__(
        self, detail: str, status: int | None = None, raw: Any = None, retry_after_s: float = 0.0
    ) -> None:
        super().__init__(detail, status, raw)
        self.retry_after_s = retry_after_s


class JobFailed(ClientError):
    def __init__(self, job: JobOut) -> None:
        super().__init__(f"job {job.id} ({job.kind}) failed: {job.error}")
        self.job = job


class JobTimeout(ClientError, TimeoutError):
    def __init__(self, job: JobOut, timeout_s: float) -> None:
        super().__init__(f"job {job.id} still {job.state} after {timeout_s:g} s")
        self.job = job


_BY_STATUS: dict[int, type[ClientError]] = {
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: InvalidInput,
    503: ServiceUnavailable,
}


def _location(error: dict[str, Any]) -> str:
    """A validation error's field: its location without the leading body/query/path."""
    return ".".join(str(part) for part in error.get("loc", [])[1:])


def flatten(detail: Any) -> str:
    """The API's ``detail`` on one line: validation errors as ``field: message; ...``."""
    if isinstance(detail, list):
        return "; ".join(
            f"{_location(item)}: {item.get('msg', '')}" for item in detail if isinstance(item, dict)
        )
    return str(detail)


def error_for(status: int, detail: Any, retry_after: str | None = None) -> ClientError:
    """The exception for an error response with this status and ``detail``."""
    kind = _BY_STATUS.get(status, ClientError)
    if kind is ServiceUnavailable:
        wait = float(retry_after) if retry_after and retry_after.isdigit() else 0.0
        return ServiceUnavailable(flatten(detail), status, detail, retry_after_s=wait)
    return kind(flatten(detail), status, detail)
