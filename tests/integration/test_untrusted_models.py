"""Models are data, not code, unless MMLW vouches for them: on the embedded MLflow store
and on an ``mlflow server`` process, a version someone else put in the registry (code in
``__reduce__`` that would write a file) is refused before anything of it is unpickled,
logged and counted, and the machine keeps the champion it had."""

from __future__ import annotations

import logging
import pickle
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mmlw.detectors.catalog import build_detector
from mmlw.detectors.model import AnomalyModel
from mmlw.errors import UntrustedModel
from mmlw.observability.metrics import instruments
from mmlw.registry.artifacts import logged_model_location
from mmlw.registry.base import CHAMPION, DatasetInfo
from mmlw.registry.mlflow_registry import ARTIFACT_KEY, MlflowRegistry
from mmlw.registry.signing import DIGEST_TAG, SIGNATURE_TAG, ModelSigner
from mmlw.workers.model_cache import ModelCache
from tests.conftest import TEST_SIGNING_KEY

COLUMNS = ["a", "b", "c"]
MACHINE = "press-9"


class _WritesAFile:
    """Unpickling this runs ``open(path, 'w').write(...)``: what an attacker would ship."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (exec, (f"open({str(self.path)!r}, 'w').write('pwned')",))


def _registry(uri: str, tmp_path: Path) -> MlflowRegistry:
    registry = MlflowRegistry(
        uri,
        signing_key=TEST_SIGNING_KEY.encode(),
        artifact_root=tmp_path / "artifacts",
        model_prefix=f"u{uuid.uuid4().hex[:8]}-",
    )
    registry.experiment_id()
    return registry


def _legit(registry: MlflowRegistry) -> int:
    X = np.random.default_rng(0).normal(size=(300, len(COLUMNS)))
    model = AnomalyModel(build_detector("pca", {}).fit(X), 3.0, COLUMNS, "pca")
    registered = registry.register(
        MACHINE,
        model,
        params={"detector": "pca"},
        metrics={"threshold": 3.0},
        tags={},
        dataset=DatasetInfo(MACHINE, "s", "e", 300, COLUMNS, "0" * 64),
    )
    registry.set_alias(MACHINE, CHAMPION, registered.version)
    return registered.version


def _plant(
    registry: MlflowRegistry, marker: Path, tmp_path: Path, tags: dict[str, str], artifact: bytes
) -> int:
    """A version registered straight through MLflow, as anyone who reaches the server can:
    ``artifact`` as MMLW's model file, and a pyfunc wrapper whose pickle writes ``marker``
    (what ``mlflow.pyfunc.load_model`` would run). ``champion`` is moved to it."""
    import mlflow
    import mlflow.pyfunc

    class Hostile(mlflow.pyfunc.PythonModel):  # type: ignore[misc, name-defined]
        def __reduce__(self) -> tuple[Any, ...]:
            return _WritesAFile(marker).__reduce__()

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return model_input

    path = tmp_path / uuid.uuid4().hex[:6] / "mmlw-model.pkl"  # the name MMLW uses
    path.parent.mkdir()
    path.write_bytes(artifact)
    mlflow.set_tracking_uri(registry.tracking_uri)
    name = registry.model_name(MACHINE)
    with mlflow.start_run(experiment_id=registry.experiment_id()) as run:
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=Hostile(),
            artifacts={ARTIFACT_KEY: str(path)},
            pip_requirements=["mlflow"],  # inferring them would load the model right here
        )
    marker.unlink(missing_ok=True)  # only what runs in MMLW's processes counts
    version = registry.client.create_model_version(
        name, source=info.model_uri, run_id=run.info.run_id, model_id=info.model_id, tags=tags
    )
    registry.client.set_registered_model_alias(name, CHAMPION, version.version)
    return int(version.version)


def _signed_tags(registry: MlflowRegistry, version: int) -> dict[str, str]:
    found = registry.client.get_model_version(registry.model_name(MACHINE), str(version))
    return {k: v for k, v in found.tags.items() if k in (DIGEST_TAG, SIGNATURE_TAG)}


def test_registration_alias_and_load_round_trip(any_tracking_uri: str, tmp_path: Path) -> None:
    registry = _registry(any_tracking_uri, tmp_path)
    version = _legit(registry)
    assert registry.alias_version(MACHINE, CHAMPION) == version == 1
    loaded = registry.load(MACHINE, version)
    assert loaded.columns == COLUMNS and loaded.detector_name == "pca"
    # read from its logged model's artifacts in one lookup, not through models:/name/1
    found = registry.client.get_model_version(registry.model_name(MACHINE), "1")
    assert logged_model_location(registry.client, found.source) is not None
    [listed] = registry.versions(MACHINE)
    assert listed.aliases == [CHAMPION] and listed.tags[SIGNATURE_TAG].startswith("hmac-sha256:")


@pytest.mark.parametrize("attack", ["unsigned", "copied signature", "other key"])
def test_a_planted_champion_is_refused_and_the_previous_one_serves(
    any_tracking_uri: str, tmp_path: Path, attack: str, caplog: pytest.LogCaptureFixture
) -> None:
    registry = _registry(any_tracking_uri, tmp_path)
    v1 = _legit(registry)
    cache = ModelCache(registry, ttl_s=0, history=lambda machine, alias: [v1])
    assert cache.get(MACHINE).version == v1  # type: ignore[union-attr]

    marker = tmp_path / "pwned"
    hostile = pickle.dumps(_WritesAFile(marker))
    tags = {
        "unsigned": {},
        "copied signature": _signed_tags(registry, v1),
        "other key": ModelSigner(b"not-the-deployment-key-0123456789").tags(
            registry.model_name(MACHINE), hostile
        ),
    }[attack]
    planted = _plant(registry, marker, tmp_path, tags, hostile)
    assert registry.alias_version(MACHINE, CHAMPION) == planted

    refused_before = instruments().models_refused._value.get()
    with caplog.at_level(logging.ERROR, logger="mmlw.workers.model_cache"):
        served = cache.get(MACHINE)
        again = cache.get(MACHINE)  # refused once, not re-downloaded per batch
    assert served is not None and served.version == v1 and again is served
    assert not marker.exists(), "the planted model's code ran"
    assert instruments().models_refused._value.get() == refused_before + 1
    [line] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert f"version {planted}" in line and registry.model_name(MACHINE) in line

    # a worker that starts now (no model served yet) falls back on MMLW's own alias history
    fresh = ModelCache(registry, ttl_s=0, history=lambda machine, alias: [planted, v1])
    assert fresh.get(MACHINE).version == v1  # type: ignore[union-attr]
    with pytest.raises(UntrustedModel):
        registry.load(MACHINE, planted)
    assert not marker.exists()


def test_a_hostile_wrapper_around_a_signed_artifact_never_runs(
    any_tracking_uri: str, tmp_path: Path
) -> None:
    """The attack that worked before: a pyfunc wrapper whose pickle runs code, next to
    a genuine signed artifact. Workers read only the artifact; the wrapper is never loaded."""
    registry = _registry(any_tracking_uri, tmp_path)
    v1 = _legit(registry)
    genuine = registry._download_artifact(f"models:/{registry.model_name(MACHINE)}/{v1}")
    marker = tmp_path / "pwned"
    planted = _plant(registry, marker, tmp_path, _signed_tags(registry, v1), genuine)
    cache = ModelCache(registry, ttl_s=0)
    assert cache.get(MACHINE).version == planted  # type: ignore[union-attr]
    assert not marker.exists()
