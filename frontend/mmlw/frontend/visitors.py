"""Page callbacks that read the API with the visitor's own key.

A page's ``register(app, context)`` defines its callbacks as closures over the context's
client (and passes that client on to worker threads). So each visitor gets the pages'
callbacks built once more for their own context, at login; Dash holds one dispatcher per
callback, which runs the calling visitor's copy. The API then applies each visitor's
scopes, and no callback can read with anyone else's key.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import flask
from dash import Dash

from mmlw.frontend.context import DashboardContext

__all__ = ["CURRENT_VISITOR", "Page", "page_callbacks", "register_dispatchers"]

CURRENT_VISITOR = "mmlw_visitor"
"""Where the login gate leaves the request's :class:`~mmlw.frontend.sessions.Visitor`
(in ``flask.g``)."""

Callback = Callable[..., Any]


class Page(Protocol):
    def register(self, app: Dash, context: DashboardContext) -> None: ...


class _Recorder:
    """Stands in for the Dash app while a page registers: keeps each callback's
    arguments and function, in order, and each browser-side callback's arguments (they
    hold no client: registered once, as they are)."""

    def __init__(self) -> None:
        self.callbacks: list[tuple[tuple[Any, ...], dict[str, Any], Callback]] = []
        self.clientside: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def clientside_callback(self, *args: Any, **kwargs: Any) -> None:
        self.clientside.append((args, kwargs))

    def callback(self, *args: Any, **kwargs: Any) -> Callable[[Callback], Callback]:
        def keep(function: Callback) -> Callback:
            self.callbacks.append((args, kwargs, function))
            return function

        return keep


def _record(pages: Sequence[Page], context: DashboardContext) -> _Recorder:
    recorder = _Recorder()
    for page in pages:
        page.register(recorder, context)  # type: ignore[arg-type]
    return recorder


def page_callbacks(pages: Sequence[Page], context: DashboardContext) -> list[Callback]:
    """The pages' callbacks bound to ``context`` (a visitor's), in registration order."""
    return [function for _, _, function in _record(pages, context).callbacks]


def register_dispatchers(app: Dash, pages: Sequence[Page], template: DashboardContext) -> None:
    """Register every page callback with Dash as a dispatcher to the calling visitor's
    own copy. ``template`` only shapes the registration: its client is never called."""
    recorded = _record(pages, template)
    for index, (args, kwargs, function) in enumerate(recorded.callbacks):
        app.callback(*args, **kwargs)(_dispatcher(index, function))
    for args, kwargs in recorded.clientside:
        app.clientside_callback(*args, **kwargs)


def _dispatcher(index: int, function: Callback) -> Callback:
    @functools.wraps(function)
    def dispatch(*args: Any, **kwargs: Any) -> Any:
        visitor = flask.g.get(CURRENT_VISITOR)
        if visitor is None:  # the login gate lets no callback through without one
            flask.abort(401)
        return visitor.callbacks[index](*args, **kwargs)

    return dispatch
