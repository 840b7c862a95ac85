"""One process at a time creates the schema of a fresh SQLite MLflow store.

MLflow creates (and upgrades) its tables when a process first opens a SQL store, after
looking whether they exist: two processes opening a fresh SQLite file at once (the
children of ``mmlw worker --concurrency 2``) both find none and both run the DDL, and
the slower one fails with ``table ... already exists`` or ``duplicate column name``. An
exclusive ``flock`` on a file beside the database, held while a process opens the store,
makes the others wait and then find the schema made. Other stores (an MLflow server,
PostgreSQL behind one) guard their own schema; for them this does nothing.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mmlw.alembic_lock import ALEMBIC_LOCK

__all__ = ["schema_lock", "sqlite_path"]


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a SQLite tracking URI; None for any other URI.

    >>> sqlite_path("sqlite:////data/mlflow.db")
    PosixPath('/data/mlflow.db')
    >>> sqlite_path("http://mlflow:5000") is None, sqlite_path("sqlite://") is None
    (True, True)
    """
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    path = tracking_uri[len(prefix) :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


@contextmanager
def schema_lock(tracking_uri: str) -> Iterator[None]:
    """While inside: no other Alembic run in this process (:mod:`mmlw.alembic_lock`:
    MLflow's SQL stores migrate their schema with Alembic), and for a SQLite tracking
    store an inter-process lock on its schema. The lock file (``<db>.schema-lock``)
    stays; it holds nothing."""
    with ALEMBIC_LOCK:
        database = sqlite_path(tracking_uri)
        if database is None:
            yield
            return
        database.parent.mkdir(parents=True, exist_ok=True)
        with open(f"{database}.schema-lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
