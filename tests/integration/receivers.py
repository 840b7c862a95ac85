"""A real HTTP webhook receiver on loopback for tests: records every request and
answers from a script (``"ok"``, an HTTP status code, or ``"timeout"``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


class WebhookReceiver:
    def __init__(self, script: list[str | int] | None = None, hang_s: float = 3.0) -> None:
        self.script = list(script or [])
        self.hang_s = hang_s
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hook"

    def _next(self) -> str | int:
        with self._lock:
            return self.script.pop(0) if self.script else "ok"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(
                        Received(self.path, dict(self.headers.items()), body, time.time())
                    )
                action = receiver._next()
                if action == "timeout":
                    time.sleep(receiver.hang_s)
                    action = 200
                code = 200 if action == "ok" else int(action)
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok" if code < 300 else b"no")
                except BrokenPipeError:  # the sender timed out and hung up
                    pass

            def log_message(self, *_: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@contextmanager
def webhook_receiver(script: list[str | int] | None = None) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(script).start()
    try:
        yield receiver
    finally:
        receiver.stop()
