"""The ``mmlw`` group and what every command shares: settings, one-line errors, openers."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Sequence
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from mmlw.errors import MMLWError

if TYPE_CHECKING:
    from mmlw.settings import Settings

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


def verbose_of(ctx: click.Context | None = None) -> bool:
    """Whether ``mmlw -v`` was given (False outside a command)."""
    ctx = ctx or click.get_current_context(silent=True)
    found = ctx.find_object(dict) if ctx is not None else None
    return bool(found and found.get("verbose"))


def show_traceback_if_verbose(exc: BaseException, ctx: click.Context | None = None) -> None:
    """With ``-v``, the traceback behind a one-line error goes to stderr first."""
    if verbose_of(ctx):
        traceback.print_exception(exc, file=sys.stderr)


def one_line_errors(func: F) -> F:
    """Turn library errors into a one-line message and exit code 1 (``-v``: the
    traceback first)."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (MMLWError, ValueError, OSError) as exc:
            show_traceback_if_verbose(exc)
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

    from mmlw.schemas.readings import describe_validation_error
    from mmlw.settings import Settings

    _configure_logging(verbose)
    ctx.ensure_object(dict)["verbose"] = verbose
    try:
        settings = Settings()
    except ValidationError as exc:
        show_traceback_if_verbose(exc, ctx)
        raise click.ClickException(f"settings: {describe_validation_error(exc)}") from exc
    ctx.obj["settings"] = settings


def require_broker(settings: Settings, command: str) -> None:
    if settings.uses_local_broker:
        raise click.ClickException(
            f"{command}: MMLW_BROKER__URL is memory:// (in-process); point it at RabbitMQ, "
            "e.g. amqp://guest:guest@127.0.0.1:5672//"
        )


def check_broker_now(settings: Settings, *, spool: Path | None = None) -> None:
    """One connection attempt before a command publishes: a wrong password or a broker
    that is down is one line at once, not silence or retries later. With a ``spool`` a
    broker that is down is fine: batches wait in the spool."""
    from mmlw.messaging.broker_check import BrokerUnreachable, check_broker

    try:
        check_broker(settings.broker.url)
    except BrokerUnreachable as exc:
        if spool is None:
            raise
        logging.getLogger(__name__).warning("%s; batches wait in %s", exc, spool)


def path_option(flag: str, dest: str, help: str) -> Callable[[F], F]:
    """A required path option (``--dataset FOLDER`` and the like)."""
    return click.option(flag, dest, required=True, type=click.Path(path_type=Path), help=help)


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
    """The store, whose schema must be current: only ``mmlw db upgrade`` migrates."""
    from mmlw.store import Store

    settings.ensure_data_dir()
    return Store.open(settings.resolved_database_url, migrate=False)


def require_current_schema(settings: Settings) -> None:
    """Before a long-running process starts: :class:`~mmlw.errors.SchemaOutdated` (one
    line, what to run) when the database is behind the code."""
    from sqlalchemy.exc import OperationalError

    from mmlw.errors import ServiceUnavailable
    from mmlw.store import Database

    settings.ensure_data_dir()
    database = Database(settings.resolved_database_url)
    try:
        database.require_current()
    except OperationalError as exc:
        first = str(exc.orig or exc).strip().splitlines()[0]
        raise ServiceUnavailable(f"database: cannot read its schema revision: {first}") from exc
    finally:
        database.dispose()


def open_registry(settings: Settings):  # type: ignore[no-untyped-def]
    """The registry, once it is sure the MLflow experiment is this deployment's (else
    :class:`~mmlw.registry.ownership.ForeignRegistry`, one line)."""
    from mmlw.registry.mlflow_registry import MlflowRegistry
    from mmlw.store import Database
    from mmlw.store.deployment import DeploymentRepository

    registry = MlflowRegistry.from_settings(settings)
    settings.ensure_data_dir()
    database = Database(settings.resolved_database_url)
    try:
        database.require_current()
        identity = DeploymentRepository(database).identity()
    finally:
        database.dispose()
    url = settings.resolved_database_url
    registry.claim(identity.id, had_models=identity.had_models, database_url=url)
    return registry


def require_own_registry(settings: Settings, *, fork: bool = False) -> None:
    """Before a long-running process starts: stop with one line when the MLflow store holds
    another deployment's models (:func:`open_registry`). With ``fork`` the check runs in a
    forked child, so that this process (a prefork worker's parent) holds no MLflow
    connection its children would inherit."""
    if not fork:
        open_registry(settings)
        return
    import multiprocessing

    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_check_registry, args=(settings, sender), daemon=True)
    child.start()
    sender.close()
    try:
        problem = receiver.recv()
    except EOFError:
        problem = RuntimeError(f"registry check: its process ended with {child.exitcode}")
    child.join()
    if problem is not None:
        raise problem


def _check_registry(settings: Settings, sender: Any) -> None:
    try:
        open_registry(settings)
    except Exception as exc:
        try:
            sender.send(exc)
        except Exception:  # an exception that does not pickle: its first line
            sender.send(RuntimeError(str(exc).splitlines()[0] if str(exc) else repr(exc)))
    else:
        sender.send(None)


def train_dispatcher(settings: Settings, store: Any, inline: bool, command: str) -> Any:
    """Where ``command`` sends train jobs: this process (``--inline``) or the workers."""
    from mmlw.messaging.dispatch import CeleryDispatcher
    from mmlw.messaging.topology import Topology
    from mmlw.services.jobs import InlineTrainer

    if inline:
        return InlineTrainer(store, open_registry(settings), settings.models)
    if settings.uses_local_broker:
        raise click.ClickException(
            f"{command}: MMLW_BROKER__URL is memory://; pass --inline or point it at RabbitMQ"
        )
    return CeleryDispatcher.from_broker(settings.broker.url, Topology(settings.broker.namespace))
