"""The demo client's callback receiver: an HTTPS server on 127.0.0.1 for ping and push callbacks.

It plays the client's ``backchannel_client_notification_endpoint``: each path expects one bearer
token (the ``client_notification_token`` the client sent with its request) and answers ``204`` when
the callback carries it, ``401`` otherwise, as CIBA Core §10.2 and §10.3 ask of a client. Every
callback is recorded with what it was answered.
"""

from __future__ import annotations

import hmac
import json
import shutil
import ssl
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from .tls import HOST, server_context, write_self_signed


MAX_BODY = 1024 * 1024


@dataclass(frozen=True)
class Callback:
    """One request as received, and the status it was answered with."""

    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    bearer_ok: bool
    status: int

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class CallbackReceiver:
    """Serve HTTPS on a free port of 127.0.0.1 with a self-signed certificate made for this run.

    ``ca_file`` holds that certificate; the OP trusts it through ``REQUESTS_CA_BUNDLE``.
    """

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="ciba-demo-"))
        cert_file, key_file = write_self_signed(self.directory)
        self.ca_file = str(cert_file)
        self._lock = threading.Condition()
        self._expected: dict[str, str] = {}
        self._callbacks: list[Callback] = []
        self.errors: list[str] = []
        self._server = _Server(self, server_context(cert_file, key_file))
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-receiver", daemon=True)
        self._thread.start()

    def url(self, path: str) -> str:
        return f"https://{HOST}:{self.port}{path}"

    def expect(self, path: str, token: str) -> None:
        """Accept callbacks to ``path`` that carry ``Authorization: Bearer <token>``."""
        with self._lock:
            self._expected[path] = token

    def answer(self, path: str, bearer_ok: bool) -> int:
        """The status a callback is answered with: 204, or 401 without the expected bearer token."""
        return 204 if bearer_ok else 401

    def record(self, path: str, headers: dict[str, str], body: bytes) -> Callback:
        with self._lock:
            expected = self._expected.get(path)
            given = headers.get("authorization", "")
            bearer_ok = expected is not None and hmac.compare_digest(
                given.encode("utf-8"), f"Bearer {expected}".encode()
            )
            callback = Callback(path, headers, body, bearer_ok, self.answer(path, bearer_ok))
            self._callbacks.append(callback)
            self._lock.notify_all()
        return callback

    def callbacks(self, path: str | None = None) -> list[Callback]:
        with self._lock:
            return [c for c in self._callbacks if path is None or c.path == path]

    def wait_for(self, path: str, timeout: float) -> Callback | None:
        """The first callback to ``path``, waiting up to ``timeout`` seconds; None if none came."""
        end = time.monotonic() + timeout
        with self._lock:
            while True:
                found = [c for c in self._callbacks if c.path == path]
                if found:
                    return found[0]
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return None
                self._lock.wait(min(remaining, 0.5))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
        shutil.rmtree(self.directory, ignore_errors=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, receiver: CallbackReceiver, context: ssl.SSLContext) -> None:
        self.receiver = receiver
        self.context = context
        super().__init__((HOST, 0), _Handler)

    def finish_request(self, request, client_address) -> None:  # the TLS handshake in its own thread
        request.settimeout(10)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            self.receiver.errors.append(f"TLS handshake failed: {exc}")
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        callback = self.server.receiver.record(self.path, headers, body)
        self.send_response(callback.status)
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()
