"""Logging one evaluation run per detector to MLflow (the only evaluation code that imports it)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["log_evaluation"]


def _experiment_id(
    client: Any, experiment: str, tracking_uri: str, artifact_root: Path | None
) -> str:
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        return str(found.experiment_id)
    location = None
    if artifact_root is None and tracking_uri.startswith("sqlite:///"):
        # keep artifacts next to the database rather than in the current directory
        artifact_root = Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts"
    if artifact_root is not None and not tracking_uri.startswith("http"):
        artifact_root.mkdir(parents=True, exist_ok=True)
        location = artifact_root.resolve().as_uri()
    return str(client.create_experiment(experiment, artifact_location=location))


def log_evaluation(
    tracking_uri: str,
    experiment: str,
    detector: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    artifacts_dir: Path,
    artifact_paths: Iterable[Path] | None = None,
    artifact_root: Path | None = None,
    parent_run_id: str | None = None,
    kind: str = "evaluation",
) -> str:
    """Log one finished MLflow run (a child of ``parent_run_id`` if given); returns its id.

    Params are stringified; metric names are kept as given. Artifacts: every file in
    ``artifact_paths`` (relative layout under ``artifacts_dir`` kept), or the whole of
    ``artifacts_dir`` when ``artifact_paths`` is None. A new experiment stores artifacts
    under ``artifact_root`` (default: ``artifacts/`` beside a SQLite tracking database).
    ``kind`` is the ``mmlw.kind`` tag (``evaluation``, ``tuning``).
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment_id = _experiment_id(client, experiment, tracking_uri, artifact_root)
    tags = {"mmlw.kind": kind}
    if parent_run_id is not None:
        tags["mlflow.parentRunId"] = parent_run_id
    run = client.create_run(experiment_id, run_name=detector, tags=tags)
    run_id = str(run.info.run_id)
    try:
        if parent_run_id is not None:
            client.log_param(run_id, "detector", detector)
        for key, value in params.items():
            client.log_param(run_id, str(key)[:250], str(value)[:6000])
        for key, value in metrics.items():
            client.log_metric(run_id, str(key), float(value))
        root = Path(artifacts_dir)
        if artifact_paths is None:
            client.log_artifacts(run_id, str(root))
        else:
            for path in artifact_paths:
                rel = Path(path).resolve().relative_to(root.resolve()).parent.as_posix()
                client.log_artifact(run_id, str(path), None if rel == "." else rel)
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")
    return run_id
