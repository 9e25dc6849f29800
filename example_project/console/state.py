"""What the demo console keeps, all of it in the default Django cache so that every process sees it:
the in-process server of ``ciba_play`` (local memory cache), or gunicorn's workers, the Celery
worker and the callback receiver of ``scripts/serve-production-like`` (a Redis cache).

* the configuration written by ``ciba_play`` at start: the issuer and the demo clients **with their
  secrets** (demo only);
* one entry per request the console started (keys starting with ``_`` are never shown);
* per ping/push request: the hash of its client_notification_token (how the receiver finds the
  request) and the callback the receiver got.

Each request entry is written by whoever holds its lock (:func:`locked`); callbacks have keys of
their own, written only by the receiver, so no update is lost between processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator
from typing import Any

from django.core.cache import caches


PREFIX = "ciba-play:"
CONFIG_KEY = f"{PREFIX}config"
SEQUENCE_KEY = f"{PREFIX}sequence"
TTL = 6 * 3600  # seconds a request (and its callback) stays listed
LOCK_TTL = 30  # seconds: a crashed holder never blocks a request for longer
LISTED = 30  # requests shown, newest first


def cache() -> Any:
    return caches["default"]


# --- configuration (written by ciba_play) ---------------------------------------------------------
def save_config(config: dict[str, Any]) -> None:
    cache().set(CONFIG_KEY, config, None)


def load_config() -> dict[str, Any] | None:
    return cache().get(CONFIG_KEY)


def clear_config() -> None:
    cache().delete(CONFIG_KEY)


# --- requests -------------------------------------------------------------------------------------
def request_key(request_id: int) -> str:
    return f"{PREFIX}request:{request_id}"


def new_request_id() -> int:
    store = cache()
    store.add(SEQUENCE_KEY, 0, None)
    return int(store.incr(SEQUENCE_KEY))


def save(state: dict[str, Any]) -> None:
    cache().set(request_key(state["id"]), state, TTL)


def load(request_id: int) -> dict[str, Any] | None:
    return cache().get(request_key(request_id))


def load_recent(limit: int = LISTED) -> list[dict[str, Any]]:
    """The newest requests first."""
    store = cache()
    last = int(store.get(SEQUENCE_KEY) or 0)
    ids = range(last, max(0, last - limit), -1)
    found = store.get_many([request_key(i) for i in ids])
    return [found[request_key(i)] for i in ids if request_key(i) in found]


@contextlib.contextmanager
def locked(request_id: int) -> Iterator[bool]:
    """Hold the request's lock (``cache.add`` is atomic on Redis and in local memory); yields
    False when another thread or process holds it (the caller then leaves the request alone)."""
    key = f"{PREFIX}lock:{request_id}"
    acquired = cache().add(key, time.time(), LOCK_TTL)
    try:
        yield bool(acquired)
    finally:
        if acquired:
            cache().delete(key)


# --- callbacks (written by the receiver) ------------------------------------------------------------
def _token_key(token: str) -> str:
    return f"{PREFIX}token:{hashlib.sha256(token.encode('utf-8')).hexdigest()}"


def remember_token(token: str, request_id: int, mode: str) -> None:
    """The receiver accepts callbacks bearing ``token`` for this request (of this mode)."""
    cache().set(_token_key(token), {"id": request_id, "mode": mode}, TTL)


def request_for_token(token: str) -> dict[str, Any] | None:
    """``{"id": ..., "mode": ...}`` of the request ``token`` was issued for, or None."""
    return cache().get(_token_key(token)) if token else None


def callback_key(request_id: int) -> str:
    return f"{PREFIX}callback:{request_id}"


def save_callback(request_id: int, callback: dict[str, Any]) -> bool:
    """Keep the first callback of a request; False if it already had one."""
    return bool(cache().add(callback_key(request_id), callback, TTL))


def load_callback(request_id: int) -> dict[str, Any] | None:
    return cache().get(callback_key(request_id))


def public(state: dict[str, Any]) -> dict[str, Any]:
    """What the page and the JSON endpoint show: no ``_`` key (full auth_req_id, tokens)."""
    return {key: value for key, value in state.items() if not key.startswith("_")}
