"""API keys: random tokens shown once, stored only as SHA-256 digests, each with scopes.

Scopes: ``ingest`` (publish readings), ``read`` (every GET), ``operate`` (train,
promote, roll back, acknowledge, silence, replay; implies read), ``admin`` (everything,
e.g. purging dead letters). A fast digest is right for these keys: they are 256 random
bits, so there is nothing to brute-force that a slow hash would protect.

>>> key = generate_key()
>>> key.startswith("mmlw_") and len(key) > 40
True
>>> digest(key) == digest(key) and len(digest(key)) == 64
True
>>> sorted(effective_scopes({"operate"}))
['operate', 'read']
>>> allows({"ingest"}, "read")
False
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from enum import StrEnum

__all__ = ["KEY_PREFIX", "Scope", "allows", "digest", "effective_scopes", "generate_key"]

KEY_PREFIX = "mmlw_"


class Scope(StrEnum):
    INGEST = "ingest"
    READ = "read"
    OPERATE = "operate"
    ADMIN = "admin"


_IMPLIES = {
    Scope.ADMIN: {Scope.ADMIN, Scope.OPERATE, Scope.READ, Scope.INGEST},
    Scope.OPERATE: {Scope.OPERATE, Scope.READ},
    Scope.READ: {Scope.READ},
    Scope.INGEST: {Scope.INGEST},
}


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def effective_scopes(scopes: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for scope in scopes:
        out |= {s.value for s in _IMPLIES[Scope(scope)]}
    return out


def allows(scopes: Iterable[str], needed: str) -> bool:
    return needed in effective_scopes(scopes)
