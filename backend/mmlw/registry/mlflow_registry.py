"""The MLflow adapter: with :mod:`.pyfunc_model`, the only code of MMLW that imports mlflow.

One registered model per machine (``<prefix><machine id>``); versions are loaded by
number, aliases resolved with the client. ``mlflow`` is imported on first use (it costs
over a second), and the tracking/registry URI is set process-wide: one registry per
process.

A version's model is the artifact ``artifacts/mmlw-model.pkl`` inside its logged MLflow
model, signed at registration (:mod:`.signing`). :meth:`MlflowRegistry.load` downloads
that one file and checks the signature before unpickling it; it never calls
``mlflow.pyfunc.load_model``, which would unpickle whatever the registry holds. The
pyfunc wrapper around the same artifact is what ``mlflow models serve`` runs.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import threading
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmlw.errors import NotFound, ServiceUnavailable, UntrustedModel
from mmlw.registry.artifacts import is_missing, logged_model_location, read_model_artifact
from mmlw.registry.base import DatasetInfo, RegisteredVersion, versions_under
from mmlw.registry.ownership import (
    claim_experiment,
    claim_tag,
    find_or_create_experiment,
    like_prefix,
)
from mmlw.registry.schema_lock import schema_lock
from mmlw.registry.signing import ModelSigner, checked_payload, vouched_digest
from mmlw.schemas.resources import ModelVersionOut
from mmlw.settings import Settings

if TYPE_CHECKING:  # imported where used: it imports scikit-learn
    from mmlw.detectors.model import AnomalyModel

__all__ = ["MlflowRegistry", "import_library"]

_FLUENT_LOCK = threading.Lock()
ARTIFACT_KEY = "mmlw_model"
ARTIFACT_PATH = "artifacts/mmlw-model.pkl"  # where MLflow puts ``artifacts={ARTIFACT_KEY: ..}``
SEARCH_PAGE = 1000  # the most registered models MLflow returns per search request


def _requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("scikit-learn", "numpy", "pandas")]


def import_library() -> None:
    """Import what loading and resolving models needs, without connecting anywhere: a
    prefork parent calls it so that its children start with mlflow already imported
    (and share those pages) instead of each paying over a second on its first batch."""
    import mlflow
    import mlflow.pyfunc  # noqa: F401
    from mlflow import MlflowClient  # noqa: F401

    import mmlw.registry.pyfunc_model  # noqa: F401 - the class every logged model has


class MlflowRegistry:
    def __init__(
        self,
        tracking_uri: str,
        *,
        signing_key: bytes,
        experiment: str = "mmlw",
        artifact_root: Path | None = None,
        model_prefix: str = "mmlw-",
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self._login = (username, password)
        self.experiment = experiment
        self.artifact_root = artifact_root
        self.model_prefix = model_prefix
        self._signer = ModelSigner(signing_key)
        self._client: Any = None
        self._experiment_id: str | None = None
        self.deployment_id: str | None = None  # set by :meth:`claim`
        self._init_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> MlflowRegistry:
        """The registry MMLW's settings name (tracking URI, experiment, artifacts, prefix,
        the MLflow server's login)."""
        password = settings.mlflow_password
        return cls(
            settings.resolved_tracking_uri,
            signing_key=settings.model_signing_key(),
            experiment=settings.mlflow_experiment,
            artifact_root=settings.artifact_root,
            model_prefix=settings.models.registered_model_prefix,
            username=settings.mlflow_username,
            password=password.get_secret_value() if password is not None else None,
        )

    # plumbing ------------------------------------------------------------------------
    @property
    def client(self) -> Any:
        with self._init_lock:
            if self._client is None:
                import mlflow
                from mlflow import MlflowClient

                self._export_login()
                mlflow.set_tracking_uri(self.tracking_uri)
                mlflow.set_registry_uri(self.tracking_uri)
                with schema_lock(self.tracking_uri):  # opening the stores makes the schema
                    client = MlflowClient(self.tracking_uri, registry_uri=self.tracking_uri)
                    _ = client._tracking_client.store, client._get_registry_client().store
                self._client = client
            return self._client

    def _export_login(self) -> None:
        """Log in to the MLflow server with this registry's username and password.

        MLflow's REST stores, its ``mlflow-artifacts`` repository and the fluent API take no
        credentials as arguments: they read ``MLFLOW_TRACKING_USERNAME`` /
        ``MLFLOW_TRACKING_PASSWORD`` from the environment at every request
        (``mlflow.utils.credentials.get_default_host_creds``). So the login is set in
        ``os.environ`` here, process-wide like the tracking URI (one registry per process);
        a registry without one leaves whatever the environment holds."""
        username, password = self._login
        if username is not None:
            os.environ["MLFLOW_TRACKING_USERNAME"] = username
        if password is not None:
            os.environ["MLFLOW_TRACKING_PASSWORD"] = password

    def experiment_id(self) -> str:
        if self._experiment_id is None:
            self._experiment_id = self._find_or_create_experiment()[0]
        return self._experiment_id

    def _find_or_create_experiment(self) -> tuple[str, dict[str, str]]:
        location = None
        if self.artifact_root is not None and not self.tracking_uri.startswith("http"):
            self.artifact_root.mkdir(parents=True, exist_ok=True)
            location = self.artifact_root.resolve().as_uri()
        tags = {claim_tag(self.model_prefix): self.deployment_id} if self.deployment_id else {}
        return find_or_create_experiment(self.client, self.experiment, location, tags)

    def claim(self, deployment_id: str, *, had_models: bool, database_url: str) -> None:
        """Make sure the experiment and the models under the prefix are this deployment's
        (:func:`~mmlw.registry.ownership.claim_experiment`); every process that uses the
        registry calls it at start."""
        self.deployment_id = deployment_id
        experiment_id, tags = self._find_or_create_experiment()
        claim_experiment(
            self.client, experiment_id, tags, deployment_id, prefix=self.model_prefix,
            had_models=had_models, tracking_uri=self.tracking_uri, database_url=database_url,
        )  # fmt: skip
        self._experiment_id = experiment_id

    def model_name(self, machine_id: str) -> str:
        return f"{self.model_prefix}{machine_id}"

    # writing -------------------------------------------------------------------------
    def register(
        self,
        machine_id: str,
        model: AnomalyModel,
        *,
        params: Mapping[str, object],
        metrics: Mapping[str, float],
        tags: Mapping[str, str],
        dataset: DatasetInfo,
    ) -> RegisteredVersion:
        """Log a run with params/metrics/dataset and the model (its artifact signed), and
        register a new version of the machine's model from it."""
        import mlflow
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, Schema

        from mmlw.registry.pyfunc_model import AnomalyPyfunc

        name = self.model_name(machine_id)
        payload = pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL)
        experiment_id = self.experiment_id()
        schema = model.input_schema
        signature = ModelSignature(
            inputs=Schema([ColSpec(schema.dtype, column) for column in schema.columns]),
            outputs=Schema([ColSpec("double", "score"), ColSpec("boolean", "anomaly")]),
        )
        with _FLUENT_LOCK:
            mlflow.set_tracking_uri(self.tracking_uri)
            run_name = f"{machine_id}-{model.detector_name}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
            with mlflow.start_run(experiment_id=experiment_id, run_name=run_name) as run:
                mlflow.log_params({k: _param(v) for k, v in params.items()})
                mlflow.log_metrics(dict(metrics))
                mlflow.set_tags({**tags, "mmlw.machine_id": machine_id})
                mlflow.log_dict(dataset.__dict__, "dataset.json")
                mlflow.log_input(_dataset_input(dataset), context="training")
                with (
                    tempfile.TemporaryDirectory(prefix="mmlw-model-") as tmp,
                    warnings.catch_warnings(),
                ):
                    warnings.simplefilter("ignore", UserWarning)
                    artifact = Path(tmp) / "mmlw-model.pkl"
                    artifact.write_bytes(payload)
                    info = mlflow.pyfunc.log_model(
                        name="model",
                        python_model=AnomalyPyfunc(),
                        artifacts={ARTIFACT_KEY: str(artifact)},
                        signature=signature,
                        pip_requirements=_requirements(),
                    )
                run_id = run.info.run_id
        client = self.client
        try:
            client.create_registered_model(name, tags={"mmlw.machine_id": machine_id})
        except Exception as exc:
            if "already exists" not in str(exc).lower() and "RESOURCE_ALREADY_EXISTS" not in str(
                exc
            ):
                raise
        version = client.create_model_version(
            name,
            source=info.model_uri,
            run_id=run_id,
            model_id=info.model_id,  # an mlflow server refuses a models:/ source without it
            tags={
                "detector": model.detector_name,
                "threshold": repr(model.threshold),
                "dataset_hash": dataset.content_hash,
                **tags,
                **self._signer.tags(name, payload),
            },
        )
        return RegisteredVersion(model_name=name, version=int(version.version), run_id=run_id)

    def set_alias(self, machine_id: str, alias: str, version: int) -> None:
        self.client.set_registered_model_alias(self.model_name(machine_id), alias, str(version))

    def delete_alias(self, machine_id: str, alias: str) -> None:
        try:
            self.client.delete_registered_model_alias(self.model_name(machine_id), alias)
        except Exception as exc:
            if not is_missing(exc):
                raise

    # reading -------------------------------------------------------------------------
    def alias_version(self, machine_id: str, alias: str) -> int | None:
        try:
            found = self.client.get_model_version_by_alias(self.model_name(machine_id), alias)
        except Exception as exc:
            if is_missing(exc):
                return None
            raise ServiceUnavailable(f"registry: {exc}") from exc
        return int(found.version)

    def alias_versions(self, alias: str) -> dict[str, int]:
        """Every machine's version under ``alias`` (see :meth:`alias_map`)."""
        return versions_under(self.alias_map(), alias)

    def alias_map(self) -> dict[str, dict[str, int]]:
        """Every machine's aliases, from those ``search_registered_models`` returns with
        each model: one request per :data:`SEARCH_PAGE` machines, where
        :meth:`alias_version` takes one per machine and alias."""
        prefix = self.model_prefix
        pattern = like_prefix(prefix)  # the exact prefix is checked below
        found: dict[str, dict[str, int]] = {}
        token: str | None = None
        try:
            while True:
                page = self.client.search_registered_models(
                    filter_string=f"name LIKE '{pattern}'",
                    max_results=SEARCH_PAGE,
                    page_token=token,
                )
                for registered in page:
                    if registered.name.startswith(prefix):
                        aliases = {a: int(v) for a, v in (registered.aliases or {}).items()}
                        found[registered.name[len(prefix) :]] = aliases
                token = page.token
                if not token:
                    return found
        except Exception as exc:
            raise ServiceUnavailable(f"registry: {exc}") from exc

    def load(self, machine_id: str, version: int) -> AnomalyModel:
        """The version's model, if MMLW signed exactly its artifact's bytes; else
        :class:`UntrustedModel` (nothing of it deserialised)."""
        from mmlw.detectors.model import AnomalyModel

        name = self.model_name(machine_id)
        uri = f"models:/{name}/{version}"
        try:
            found = self.client.get_model_version(name, str(version))
        except Exception as exc:
            if is_missing(exc):
                raise NotFound(f"model {uri} not found") from exc
            raise
        digest = vouched_digest(self._signer, name, version, dict(found.tags or {}))
        location = logged_model_location(self.client, found.source) or uri
        payload = checked_payload(name, version, digest, self._download_artifact(location))
        model = pickle.loads(payload)
        if not isinstance(model, AnomalyModel):
            raise UntrustedModel(f"{uri}: the signed artifact is not an MMLW model")
        return model

    def _download_artifact(self, uri: str) -> bytes:
        """The bytes of the model artifact under ``uri``, from this registry (not from the
        process-wide MLflow URI another registry object may have set)."""
        return read_model_artifact(f"{uri}/{ARTIFACT_PATH}", self.tracking_uri)

    def versions(self, machine_id: str) -> list[ModelVersionOut]:
        name = self.model_name(machine_id)
        client = self.client
        try:
            registered = client.get_registered_model(name)
        except Exception as exc:
            if is_missing(exc):
                return []
            raise
        aliases: dict[str, list[str]] = {}
        for alias, version in (registered.aliases or {}).items():
            aliases.setdefault(str(version), []).append(alias)
        out = []
        for mv in client.search_model_versions(f"name='{name}'"):
            metrics: dict[str, float] = {}
            if mv.run_id:
                try:
                    metrics = dict(client.get_run(mv.run_id).data.metrics)
                except Exception:
                    metrics = {}
            tags = dict(mv.tags or {})
            out.append(
                ModelVersionOut(
                    model_name=name,
                    version=int(mv.version),
                    aliases=sorted(aliases.get(str(mv.version), [])),
                    run_id=mv.run_id,
                    created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC),
                    detector=tags.get("detector"),
                    threshold=float(tags["threshold"]) if "threshold" in tags else None,
                    metrics=metrics,
                    tags=tags,
                )
            )
        return sorted(out, key=lambda v: v.version)


def _param(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _dataset_input(dataset: DatasetInfo) -> Any:
    """A metadata-only MLflow dataset: name, digest and schema of the training batch."""
    import mlflow.data
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.types import ColSpec, Schema

    source = mlflow.data.http_dataset_source.HTTPDatasetSource(
        url=f"mmlw://machines/{dataset.machine_id}/readings?start={dataset.start}&end={dataset.end}"
    )
    return MetaDataset(  # type: ignore[abstract]  # concrete at run time
        source=source,
        name=f"{dataset.machine_id}[{dataset.start}..{dataset.end}]",
        digest=dataset.content_hash[:16],
        schema=Schema([ColSpec("double", c) for c in dataset.columns]),
    )
