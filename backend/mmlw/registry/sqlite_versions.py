"""A machine's registered model versions read straight from MLflow's SQLite store.

``mmlw models M`` only lists versions, but going through :class:`MlflowClient` imports
mlflow and its SQLAlchemy store (seconds on a busy 2-core machine, far more than the
command itself). For the default layout, a SQLite tracking store in the data dir, the
same facts come from four small queries over MLflow's registry tables with the standard
library's :mod:`sqlite3`; any other tracking URI (an MLflow server, another database)
returns None and the caller uses the MLflow client. Read only: nothing is created or
migrated here, and a store that does not exist yet has no versions.

The tables and columns read (``registered_models``, ``model_versions``,
``model_version_tags``, ``registered_model_aliases``, ``latest_metrics``) are the ones
MLflow's SQLAlchemy store has kept since registry aliases arrived (MLflow 2.3); versions
MLflow marked deleted are skipped as its own search does.
"""

from __future__ import annotations

import math
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from mmlw.schemas.resources import ModelVersionOut

__all__ = ["sqlite_store_path", "sqlite_versions"]

DELETED_STAGE = "Deleted_Internal"  # mlflow.entities.model_registry.model_version_stages


def sqlite_store_path(tracking_uri: str) -> Path | None:
    """The file of a ``sqlite:///`` tracking URI (None for any other store)."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix) or "?" in tracking_uri:
        return None
    path = tracking_uri[len(prefix) :]
    return Path(path) if path and path != ":memory:" else None


def sqlite_versions(tracking_uri: str, model_name: str) -> list[ModelVersionOut] | None:
    """``model_name``'s versions, oldest first, as :meth:`MlflowRegistry.versions` returns
    them; None when the tracking store is not a SQLite file (ask the MLflow client)."""
    path = sqlite_store_path(tracking_uri)
    if path is None:
        return None
    if not path.is_file():
        return []
    with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
        if not _has_registry(db):
            return []
        return _read_versions(db, model_name)


def _has_registry(db: sqlite3.Connection) -> bool:
    found = db.execute(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'model_versions'"
    ).fetchone()
    return bool(found and found[0])


def _read_versions(db: sqlite3.Connection, name: str) -> list[ModelVersionOut]:
    versions = db.execute(
        "SELECT version, creation_time, run_id FROM model_versions "
        "WHERE name = ? AND current_stage != ? ORDER BY version",
        (name, DELETED_STAGE),
    ).fetchall()
    aliases: dict[int, list[str]] = {}
    for alias, version in db.execute(
        "SELECT alias, version FROM registered_model_aliases WHERE name = ?", (name,)
    ):
        aliases.setdefault(int(version), []).append(alias)
    tags: dict[int, dict[str, str]] = {}
    for version, key, value in db.execute(
        "SELECT version, key, value FROM model_version_tags WHERE name = ?", (name,)
    ):
        tags.setdefault(int(version), {})[key] = value
    out = []
    for version, created_ms, run_id in versions:
        version_tags = tags.get(int(version), {})
        threshold = version_tags.get("threshold")
        out.append(
            ModelVersionOut(
                model_name=name,
                version=int(version),
                aliases=sorted(aliases.get(int(version), [])),
                run_id=run_id or None,
                created_at=datetime.fromtimestamp(created_ms / 1000, UTC),
                detector=version_tags.get("detector"),
                threshold=float(threshold) if threshold is not None else None,
                metrics=_run_metrics(db, run_id) if run_id else {},
                tags=version_tags,
            )
        )
    return out


def _run_metrics(db: sqlite3.Connection, run_id: str) -> dict[str, float]:
    """The run's latest value of each metric, as ``MlflowClient.get_run`` reports it."""
    rows = db.execute("SELECT key, value, is_nan FROM latest_metrics WHERE run_uuid = ?", (run_id,))
    return {key: math.nan if is_nan else float(value) for key, value, is_nan in rows}
