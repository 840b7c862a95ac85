"""The ``mmlw`` group and what every command shares: settings, one-line errors, openers."""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

from backend.errors import MMLWError

if TYPE_CHECKING:
    from backend.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

QUIET_LOGGERS = ("mlflow", "alembic", "kombu", "celery", "urllib3", "httpx", "git", "mail.log")


def _configure_logging(verbose: bool) -> None:
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "DEBUG" if verbose else "ERROR")
    if not verbose:
        warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\.")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)


def settings_of(ctx: click.Context) -> Settings:
    return ctx.find_object(dict)["settings"]  # type: ignore[no-any-return, index]


def one_line_errors(func: F) -> F:
    """Turn library errors into a one-line message and exit code 1."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (MMLWError, ValueError, OSError) as exc:
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else repr(exc)) from exc

    return wrapper  # type: ignore[return-value]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="debug logging")
@click.pass_context
def main(ctx: click.Context, verbose: bool) -> None:
    """MMLW: anomaly detection on machine sensor data, served from a message broker.

    Configuration comes from MMLW_* environment variables (configs/settings.example.env).
    """
    from pydantic import ValidationError

    from backend.schemas.readings import describe_validation_error
    from backend.settings import Settings

    _configure_logging(verbose)
    try:
        settings = Settings()
    except ValidationError as exc:
        raise click.ClickException(f"settings: {describe_validation_error(exc)}") from exc
    ctx.ensure_object(dict)["settings"] = settings


def require_broker(settings: Settings, command: str) -> None:
    if settings.uses_local_broker:
        raise click.ClickException(
            f"{command}: MMLW_BROKER__URL is memory:// (in-process); point it at RabbitMQ, "
            "e.g. amqp://guest:guest@127.0.0.1:5672//"
        )


def parse_params(pairs: Sequence[str]) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}`` (values parsed as JSON when possible)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"param: expected NAME=VALUE, got {pair!r}")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        params[name.strip()] = value
    return params


def open_store(settings: Settings):  # type: ignore[no-untyped-def]
    from backend.store import Store

    settings.ensure_data_dir()
    return Store.open(settings.resolved_database_url)


def open_registry(settings: Settings):  # type: ignore[no-untyped-def]
    from backend.registry.mlflow_registry import MlflowRegistry

    return MlflowRegistry.from_settings(settings)


def train_dispatcher(settings: Settings, store: Any, inline: bool, command: str) -> Any:
    """Where ``command`` sends train jobs: this process (``--inline``) or the workers."""
    from backend.messaging.dispatch import CeleryDispatcher
    from backend.messaging.topology import Topology
    from backend.services.jobs import InlineTrainer

    if inline:
        return InlineTrainer(store, open_registry(settings), settings.models)
    if settings.uses_local_broker:
        raise click.ClickException(
            f"{command}: MMLW_BROKER__URL is memory://; pass --inline or point it at RabbitMQ"
        )
    return CeleryDispatcher.from_broker(settings.broker.url, Topology(settings.broker.namespace))
