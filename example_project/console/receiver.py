"""The console clients' callback receiver (DEMO CLIENT): the HTTPS server of
:mod:`example_project.demo.receiver`, but it finds the request by its bearer token (the
client_notification_token the console sent, looked up by hash in the cache) and keeps the callback
in the cache, where any process serving the console reads it.

Answers: ``204`` for a JSON callback bearing a token the console issued, on the path of the
request's mode; ``401`` for an unknown or missing token; ``400`` when the body is not JSON.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from example_project.demo.flows import callback_path
from example_project.demo.receiver import Callback, CallbackReceiver

from . import state


class ConsoleReceiver(CallbackReceiver):
    def __init__(self, on_callback: Callable[[Callback, int | None], None] | None = None) -> None:
        self.on_callback = on_callback
        super().__init__()

    def record(self, path: str, headers: dict[str, str], body: bytes) -> Callback:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        request = state.request_for_token(token) if scheme.lower() == "bearer" else None
        bearer_ok = request is not None and path == callback_path(request["mode"])
        request_id = request["id"] if bearer_ok else None
        status = 204 if bearer_ok else 401
        if bearer_ok:
            try:
                payload = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                status = 400
            else:
                state.save_callback(request_id, {"at": time.time(), "path": path, "body": payload})
        callback = Callback(path, headers, body, bearer_ok, status)
        with self._lock:
            self._callbacks.append(callback)
            del self._callbacks[:-100]  # a long-running receiver keeps only the latest
            self._lock.notify_all()
        if self.on_callback is not None:
            self.on_callback(callback, request_id)
        return callback
