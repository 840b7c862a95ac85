"""The plumbing every resource shares: one request, its errors, its typed result."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Generic, TypeVar, cast

import httpx
from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from mmlw.client.errors import ServiceUnavailable, error_for

__all__ = ["API_PREFIX", "TOTAL_COUNT_HEADER", "Page", "Session", "clean"]

API_PREFIX = "/api/v1"
TOTAL_COUNT_HEADER = "X-Total-Count"
KEY_HEADER = "X-API-Key"

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """A (possibly downsampled) result and how many rows its range held in total."""

    item: T
    total: int


@lru_cache(maxsize=128)
def _adapter(into: Hashable) -> TypeAdapter[Any]:
    return TypeAdapter(into)


def parse(into: type[T], content: bytes) -> T:
    """``content`` (JSON) validated as ``into``: a model, ``list[Model]``, ``dict[...]``."""
    result: T = _adapter(cast(Hashable, into)).validate_json(content)
    return result


def clean(**values: Any) -> dict[str, Any]:
    """Query parameters or a JSON body: None left out, datetimes in ISO 8601."""
    return {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in values.items()
        if value is not None
    }


class Session:
    """An ``httpx.Client`` on ``<base_url>/api/v1`` that raises :mod:`mmlw.client.errors`.

    :meth:`with_key` gives a view with another key over the same connection pool.
    """

    def __init__(self, http: httpx.Client, key: str | None = None) -> None:
        self.http = http
        self._headers = {KEY_HEADER: key} if key is not None else {}

    @classmethod
    def open(
        cls,
        base_url: str,
        key: str | None,
        timeout_s: float,
        transport: httpx.BaseTransport | None = None,
    ) -> Session:
        http = httpx.Client(
            base_url=base_url.rstrip("/").removesuffix(API_PREFIX),
            timeout=timeout_s,
            transport=transport,
        )
        return cls(http, key)

    def with_key(self, key: str | None) -> Session:
        return Session(self.http, key)

    def close(self) -> None:
        self.http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        prefix: str = API_PREFIX,
    ) -> httpx.Response:
        """Send one request; a non-2xx answer or a failed connection raises."""
        try:
            response = self.http.request(
                method,
                prefix + path,
                params=clean(**params) if params else None,
                json=to_jsonable_python(json) if json is not None else None,
                content=content,
                headers={**self._headers, **(headers or {})},
            )
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"API unreachable: {exc}") from exc
        if response.is_success:
            return response
        try:
            detail = response.json().get("detail", response.text)
        except (ValueError, AttributeError):
            detail = response.text
        raise error_for(response.status_code, detail, response.headers.get("Retry-After"))

    def call(self, into: type[T], method: str, path: str, **request: Any) -> T:
        """Send one request and validate the answer as ``into`` (a model, list[...], ...)."""
        return parse(into, self.request(method, path, **request).content)

    def get(self, into: type[T], path: str, *, prefix: str = API_PREFIX, **params: Any) -> T:
        return self.call(into, "GET", path, params=params, prefix=prefix)

    def post(self, into: type[T], path: str, body: Any = None) -> T:
        return self.call(into, "POST", path, json=body)

    def page(self, into: type[T], path: str, **params: Any) -> Page[T]:
        response = self.request("GET", path, params=params)
        return Page(
            parse(into, response.content), int(response.headers.get(TOTAL_COUNT_HEADER, "-1"))
        )
