"""``Client``: the whole HTTP API (``/api/v1``) as typed Python calls."""

from __future__ import annotations

from types import TracebackType

import httpx

from mmlw.client._alerts import Alerts, DeadLetters, Deliveries, Silences
from mmlw.client._data import Machines, Readings, Scores
from mmlw.client._http import Session
from mmlw.client._models import Jobs, Models

__all__ = ["Client"]


class Client:
    """A synchronous client of the MMLW API; safe to share between threads.

    >>> with Client("http://127.0.0.1:8000", api_key="...") as mmlw:  # doctest: +SKIP
    ...     job = mmlw.jobs.wait(mmlw.jobs.train("pump-1"), timeout=60)

    Results are the API's own pydantic models (:mod:`mmlw.schemas`); failures raise
    :mod:`mmlw.client.errors`. ``transport`` is httpx's, for tests without a server.
    """

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._init(Session.open(base_url, api_key, timeout, transport), owner=True)

    def _init(self, session: Session, *, owner: bool) -> None:
        self._session = session
        self._owner = owner
        self.machines = Machines(session)
        self.readings = Readings(session)
        self.scores = Scores(session)
        self.jobs = Jobs(session)
        self.models = Models(session)
        self.alerts = Alerts(session)
        self.silences = Silences(session)
        self.deliveries = Deliveries(session)
        self.dead_letters = DeadLetters(session)

    def with_api_key(self, api_key: str | None) -> Client:
        """The same client (and connection pool) sending another key; closing it is a no-op."""
        view = Client.__new__(Client)
        view._init(self._session.with_key(api_key), owner=False)
        return view

    def health(self) -> dict[str, str]:
        """Liveness plus a database round trip (no key needed)."""
        return self._session.get(dict[str, str], "/health", prefix="")

    def metrics(self) -> str:
        """The Prometheus text of ``/metrics``."""
        return self._session.request("GET", "/metrics", prefix="").text

    def close(self) -> None:
        if self._owner:
            self._session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
