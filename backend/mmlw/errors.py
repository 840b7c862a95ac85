"""The MMLW exception tree. Library code raises these; entry points turn them into
HTTP status codes, CLI exit codes or dead letters.

::

    MMLWError
    ├── InvalidMessage        a readings message that breaks the wire contract (-> DLQ)
    ├── InvalidInput          a request, option or file a person sent is invalid; names
    │                         the field (-> 422); also a ValueError
    ├── NotFound              a machine, job, model or batch that does not exist (-> 404)
    │   └── NoModel           a machine has no champion model yet
    ├── ConflictError         a request that contradicts stored state (-> 409)
    ├── InsufficientData      too few readings to train on (-> 422)
    ├── UntrustedModel        a model version MMLW did not sign: never deserialised
    ├── SchemaOutdated        the database schema is older than the code needs: a
    │                         process stops at start until `mmlw db upgrade` ran
    └── ServiceUnavailable    broker, store or registry cannot be reached (-> 503)
        └── BrokerBusy        the broker refused a message: its queue is full (-> 503
                              with Retry-After)

A plain ``ValueError`` that reaches the API is a bug (-> 500), never the client's fault.
"""

from __future__ import annotations

__all__ = [
    "BrokerBusy",
    "ConflictError",
    "InsufficientData",
    "InvalidInput",
    "InvalidMessage",
    "MMLWError",
    "NoModel",
    "NotFound",
    "SchemaOutdated",
    "ServiceUnavailable",
    "UntrustedModel",
]


class MMLWError(Exception):
    """Base class of every error MMLW raises on purpose."""


class InvalidMessage(MMLWError):
    """A message broke the wire contract; ``reason`` says how, naming the field."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidInput(MMLWError, ValueError):
    """Input a person sent (a request, a command's option, an uploaded file) is invalid:
    ``field`` names what, ``problem`` says why; reads ``"field: problem"``.

    A ValueError too, so code that validates with ``except ValueError`` keeps working.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    def __reduce__(self) -> tuple[type[InvalidInput], tuple[str, str]]:
        return type(self), (self.field, self.problem)


class NotFound(MMLWError):
    pass


class NoModel(NotFound):
    pass


class ConflictError(MMLWError):
    pass


class InsufficientData(MMLWError):
    pass


class UntrustedModel(MMLWError):
    """A model version whose artifact MMLW did not sign, or whose bytes changed since."""


class SchemaOutdated(MMLWError):
    """The database's schema revision is older than the code's: only ``mmlw db upgrade``
    migrates, so a process refuses to start rather than fail on a missing column."""


class ServiceUnavailable(MMLWError):
    pass


class BrokerBusy(ServiceUnavailable):
    """The broker refused a message (basic.nack: the ingest queue is at its length limit).

    Backpressure, not an outage: try the same message again after ``retry_after_s``.
    """

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
