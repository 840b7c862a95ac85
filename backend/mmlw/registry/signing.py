"""Signed model artifacts: a worker deserialises only what MMLW itself registered.

A model version's artifact is a pickle, and unpickling runs code. Anyone who can reach
the MLflow server can register a version and move the ``champion`` alias, so the
registry is not trusted: at registration MMLW records the SHA-256 of the artifact's bytes
and an HMAC-SHA256 over (format, registered-model name, digest) under a key the registry
never sees (``MMLW_MODELS__SIGNING_KEY``, or a random key kept in the data dir outside
production). Before anything is deserialised, the loader checks the tag's HMAC, then the
bytes' digest; any mismatch refuses the version with :class:`UntrustedModel`.

>>> signer = ModelSigner(b"k" * 32)
>>> signature = signer.sign("mmlw-pump-1", "ab" * 32)
>>> signer.verify("mmlw-pump-1", "ab" * 32, signature)
True
>>> signer.verify("mmlw-pump-2", "ab" * 32, signature)  # bound to its model
False
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from mmlw.errors import UntrustedModel

__all__ = [
    "DIGEST_TAG",
    "FORMAT",
    "SIGNATURE_TAG",
    "ModelSigner",
    "artifact_digest",
    "checked_payload",
    "load_or_create_key",
    "vouched_digest",
]

FORMAT = "mmlw-model/1"
DIGEST_TAG = "mmlw.artifact_sha256"
SIGNATURE_TAG = "mmlw.signature"
_KEY_BYTES = 32


def artifact_digest(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


class ModelSigner:
    """Signs and verifies (model name, artifact digest) pairs with one secret key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("model signing key: at least 16 bytes are needed")
        self._key = key

    def _mac(self, model_name: str, digest: str) -> str:
        message = f"{FORMAT}\n{model_name}\n{digest}".encode()
        return "hmac-sha256:" + hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def sign(self, model_name: str, digest: str) -> str:
        return self._mac(model_name, digest)

    def verify(self, model_name: str, digest: str, signature: str) -> bool:
        return hmac.compare_digest(self._mac(model_name, digest), signature)

    def tags(self, model_name: str, payload: bytes) -> dict[str, str]:
        """The model-version tags that vouch for ``payload`` under ``model_name``."""
        digest = artifact_digest(payload)
        return {DIGEST_TAG: digest, SIGNATURE_TAG: self.sign(model_name, digest)}


def vouched_digest(signer: ModelSigner, model_name: str, version: int, tags: dict[str, str]) -> str:
    """The artifact digest MMLW signed for this version, read from its tags; else
    :class:`UntrustedModel` saying which check failed. Needs no download."""
    digest, signature = tags.get(DIGEST_TAG), tags.get(SIGNATURE_TAG)
    where = f"{model_name} version {version}"
    if not digest or not signature:
        raise UntrustedModel(f"{where} carries no MMLW signature (not registered by MMLW)")
    if not signer.verify(model_name, digest, signature):
        raise UntrustedModel(f"{where}: the signature does not match (not signed by this key)")
    return digest


def checked_payload(model_name: str, version: int, digest: str, payload: bytes) -> bytes:
    """``payload`` if its digest is the vouched ``digest``; else :class:`UntrustedModel`.
    Call before deserialising."""
    if not hmac.compare_digest(artifact_digest(payload), digest):
        raise UntrustedModel(
            f"{model_name} version {version}: the artifact's bytes differ from what was signed"
        )
    return payload


def load_or_create_key(path: Path) -> bytes:
    """The key kept in ``path``, created (random, mode 0600) by the first process to ask:
    concurrent first callers agree on one key."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(_KEY_BYTES) + "\n")
    try:
        os.link(tmp, path)  # fails if another process won the race: use its key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    text = path.read_text().strip()
    if len(text) < 32:
        raise UntrustedModel(f"{path}: the model signing key is too short")
    return text.encode()
