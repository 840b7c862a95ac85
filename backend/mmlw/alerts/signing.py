"""Webhook signatures: ``X-MMLW-Signature: sha256=<hex>``, an HMAC-SHA256 with the
endpoint's secret over ``<timestamp>.<body>``, where ``<timestamp>`` is the
``X-MMLW-Timestamp`` header (Unix seconds). Signing the timestamp with the body lets a
receiver reject replays: a captured request cannot be re-sent with a fresh timestamp.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "sign", "verify"]

SIGNATURE_HEADER = "X-MMLW-Signature"
TIMESTAMP_HEADER = "X-MMLW-Timestamp"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(
    secret: str, body: bytes, timestamp: str, signature: str, *, now: float, tolerance_s: float
) -> bool:
    """What a receiver checks: a fresh timestamp and a matching signature."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs(now - ts) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, body, ts), signature)
