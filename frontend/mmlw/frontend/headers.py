"""Security headers on every dashboard response, the login page's included.

Scripts run only from the dashboard itself plus the inline scripts it writes (Dash's
renderer and the page template's own, allowed by their hashes). Styles allow inline
``style`` because plotly.js and Dash's components set them; images and fonts allow
``data:`` URIs, which plotly's mode bar uses. Nothing may frame the dashboard.

>>> policy = content_security_policy(["'sha256-abc='"])
>>> "script-src 'self' 'sha256-abc='" in policy and "frame-ancestors 'none'" in policy
True
>>> sorted(script_hashes("<script>a()</script><script src='x.js'></script>"))
["'sha256-qVpDBgj7bpq5hMAcGp3AOc79J3Y1Z4HvySTwKrWDoy4='"]
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable

import flask

__all__ = ["content_security_policy", "install_security_headers", "script_hashes"]

PRIVATE_TYPES = {"text/html", "application/json"}
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def script_hashes(html: str) -> set[str]:
    """CSP hashes of the inline ``<script>`` blocks (no attributes) in ``html``."""
    return {
        f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
        for body in INLINE_SCRIPT.findall(html)
    }


def content_security_policy(script_sources: Iterable[str]) -> str:
    directives = {
        "default-src": ["'self'"],
        "script-src": ["'self'", *script_sources],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


def install_security_headers(server: flask.Flask, policy: str) -> None:
    """Add the headers to every response of ``server`` (errors and redirects too)."""

    @server.after_request
    def secure(response: flask.Response) -> flask.Response:
        headers = response.headers
        headers["Content-Security-Policy"] = policy
        headers["X-Frame-Options"] = "DENY"
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "same-origin"
        if response.mimetype in PRIVATE_TYPES:  # pages and data, not the static files
            headers.setdefault("Cache-Control", "no-store")
        return response
