"""Reading a model version's artifact from MLflow without deserialising anything."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from mmlw.errors import UntrustedModel

__all__ = ["MAX_ARTIFACT_BYTES", "is_missing", "logged_model_location", "read_model_artifact"]

MAX_ARTIFACT_BYTES = 1 << 30


def is_missing(exc: Exception) -> bool:
    """Whether an MLflow error says the thing asked for does not exist."""
    text = str(exc)
    return "RESOURCE_DOES_NOT_EXIST" in text or "not found" in text.lower()


def logged_model_location(client: Any, source: str | None) -> str | None:
    """Where a version registered from a logged model (source ``models:/m-<id>``, as
    MMLW registers them) keeps its artifacts: one lookup of the logged model. Through
    ``models:/<name>/<version>`` MLflow looks the version up again and reads the whole
    registered model to check it is not a prompt: half of a load, which a scorer that
    takes over a fleet's partitions pays once per machine. None for other sources, or if
    the lookup fails (then the registry's own URI answers).

    >>> logged_model_location(None, "runs:/abc/model"), logged_model_location(None, None)
    (None, None)
    """
    prefix = "models:/m-"
    if not source or not source.startswith(prefix) or "/" in source[len(prefix) :]:
        return None
    try:
        location = client.get_logged_model(source[len("models:/") :]).artifact_location
    except Exception:
        return None
    return str(location) if location else None


def read_model_artifact(uri: str, tracking_uri: str) -> bytes:
    """The bytes of the one file at ``uri`` (at most :data:`MAX_ARTIFACT_BYTES`), read
    through ``tracking_uri``'s MLflow; :class:`UntrustedModel` if there is none."""
    import mlflow.artifacts

    with tempfile.TemporaryDirectory(prefix="mmlw-model-") as tmp:
        try:
            fetched = mlflow.artifacts.download_artifacts(
                uri, dst_path=tmp, tracking_uri=tracking_uri, registry_uri=tracking_uri
            )
        except Exception as exc:
            if "No such artifact" in str(exc) or is_missing(exc):
                raise UntrustedModel(f"{uri}: no MMLW model artifact") from exc
            raise
        local = Path(fetched)
        if not local.is_file():
            raise UntrustedModel(f"{uri} is not a file")
        if local.stat().st_size > MAX_ARTIFACT_BYTES:
            raise UntrustedModel(f"{uri}: the model artifact is larger than 1 GiB")
        return local.read_bytes()
