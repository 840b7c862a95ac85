"""Which deployment the models under a registered-model prefix belong to, and whether
this one may use them.

A deployment (one MMLW database, with a random id) serves the registered models whose
names start with its prefix. Registered models are global to an MLflow store, so what
a deployment owns is its prefix there; it records the claim on the experiment it logs
its runs to, as the tag ``mmlw.deployment_id.<prefix>`` = its id (:func:`claim_tag`).
A process that finds another id there stops at start, so that a new deployment never
scores readings with, or promotes over, another deployment's models. Deployments that
share an MLflow store (and even an experiment) with different prefixes do not collide.

The decision is pure (:func:`check_owner`); :func:`claim_experiment` fetches what it
needs with a constant number of MLflow calls, whatever the number of models. The MLflow
client is passed in (mlflow itself is imported by :mod:`.mlflow_registry` only).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mmlw.errors import ConflictError

__all__ = [
    "DEPLOYMENT_TAG",
    "ForeignRegistry",
    "check_owner",
    "claim_experiment",
    "claim_tag",
    "find_or_create_experiment",
    "like_prefix",
    "redacted_url",
]

DEPLOYMENT_TAG = "mmlw.deployment_id"
_PLAIN_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,100}")


class ForeignRegistry(ConflictError):
    """The models under this deployment's prefix belong to another deployment."""


def claim_tag(prefix: str) -> str:
    """The experiment tag that names the deployment owning ``prefix``: the prefix itself
    when it is plain, else a digest of it (tag keys are limited in length and kind)."""
    if _PLAIN_PREFIX.fullmatch(prefix):
        return f"{DEPLOYMENT_TAG}.{prefix}"
    return f"{DEPLOYMENT_TAG}.sha256-{hashlib.sha256(prefix.encode()).hexdigest()[:16]}"


def redacted_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe to print in a log line)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def check_owner(
    owner: str | None,
    deployment_id: str,
    *,
    has_prefixed_models: bool,
    had_models: bool,
    tracking_uri: str,
    database_url: str,
) -> bool:
    """Whether this deployment must record its claim, given the id that claimed the
    prefix (``owner``; None: nobody): False when the claim is already its own.
    :class:`ForeignRegistry` (one line: what to change) when another deployment claimed
    it, or nobody did but models under the prefix exist that this database cannot have
    registered (it recorded no alias move before it got its id: ``had_models`` False)."""
    if owner == deployment_id:
        return False
    if owner is None and (had_models or not has_prefixed_models):
        return True
    whose = f"deployment {owner[:8]}'s" if owner else "another deployment's (unclaimed)"
    raise ForeignRegistry(
        f"the MLflow store at {redacted_url(tracking_uri)} holds {whose} models, not this "
        f"deployment's (database {redacted_url(database_url)}): point "
        "MMLW_MLFLOW_TRACKING_URI at this deployment's MLflow, or give this deployment its "
        "own MMLW_MODELS__REGISTERED_MODEL_PREFIX (and MMLW_MLFLOW_EXPERIMENT)"
    )


def like_prefix(prefix: str) -> str:
    """An MLflow LIKE pattern matching at least the names that start with ``prefix``:
    MLflow's LIKE has no escape, so quotes and wildcards become ``_`` (any one character)
    and callers check the exact prefix."""
    return "".join("_" if c in "'\"\\%" else c for c in prefix) + "%"


def find_or_create_experiment(
    client: Any, name: str, artifact_location: str | None, tags: Mapping[str, str]
) -> tuple[str, dict[str, str]]:
    """The id and tags of the experiment ``name``, created with ``tags`` when missing (one
    call when it exists, two or three when it does not)."""
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return client.create_experiment(name, artifact_location, tags=dict(tags)), dict(tags)
        except Exception:  # created concurrently by another process: read its tags
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
    return found.experiment_id, dict(found.tags or {})


def claim_experiment(
    client: Any,
    experiment_id: str,
    tags: Mapping[str, str],
    deployment_id: str,
    *,
    prefix: str,
    had_models: bool,
    tracking_uri: str,
    database_url: str,
) -> None:
    """Record ``deployment_id``'s claim of ``prefix`` on the experiment (``tags``: its
    tags) unless another deployment owns it (:func:`check_owner`). An unclaimed prefix
    costs one search for models under it (100 at most: the exact prefix is checked) and
    one tag."""
    owner = tags.get(claim_tag(prefix))
    has_models = False
    if owner is None:
        page = client.search_registered_models(
            filter_string=f"name LIKE '{like_prefix(prefix)}'", max_results=100
        )
        has_models = any(str(model.name).startswith(prefix) for model in page)
    adopt = check_owner(
        owner,
        deployment_id,
        has_prefixed_models=has_models,
        had_models=had_models,
        tracking_uri=tracking_uri,
        database_url=database_url,
    )
    if adopt:
        client.set_experiment_tag(experiment_id, claim_tag(prefix), deployment_id)
