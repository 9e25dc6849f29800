"""Fetching client JWK sets (``jwks_uri``) without letting unauthenticated traffic drive the fetches.

A client assertion or a signed request names its client before anything is verified, so whoever
sends one decides which client's ``jwks_uri`` the OP needs. Fetches are therefore bounded here,
whatever the traffic:

* A fetched set is cached for ``JWKS_CACHE_TTL`` seconds in the ``CACHE_ALIAS`` cache.
* A fetch (the first one, or a refresh asked for because a JWT names an unknown key id) happens at
  most once per ``JWKS_REFRESH_INTERVAL`` seconds per URL, across all processes: the right to
  fetch is an atomic ``cache.add`` of a per-URL gate. Whoever does not get it uses the cached
  set; when there is none yet, it waits for the fetch under way (as long as a fetch may take) and
  is refused only when that fetch fails or does not end in time.
* A failed fetch (no answer, an error status, a body that is not JSON) is remembered: no new
  attempt for that URL until its backoff has passed (``JWKS_FAILURE_BACKOFF`` seconds, doubled on
  each further failure up to ``JWKS_FAILURE_MAX_BACKOFF``). A set cached before stays in use.
* At most ``JWKS_FETCH_LIMIT`` fetches (``[fetches, seconds]``) happen in a window in total, and
  at most ``JWKS_MAX_CONCURRENT_FETCHES`` at once in one process.
* A fetch waits at most ``JWKS_FETCH_TIMEOUT`` seconds for the connection and for the answer
  (capped by the outbound timeouts), so a slow ``jwks_uri`` holds a worker only briefly.

Every refusal is a :class:`JwksUnavailable` whose message is safe to log (no URL path, no key).
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from typing import Any

from django.core.cache import caches

from django_ciba.core import outbound
from django_ciba.core.conf import ciba_settings


DOCUMENT_PREFIX = "django_ciba:jwks:"
FAILURE_PREFIX = "django_ciba:jwks-failed:"
GATE_PREFIX = "django_ciba:jwks-gate:"
BUDGET_PREFIX = "django_ciba:jwks-budget:"
# While another request fetches a set that is not cached yet: how often to look, and how long past
# JWKS_FETCH_TIMEOUT to wait for it.
AWAIT_STEP = 0.05
AWAIT_SLACK = 0.5

_semaphores: dict[int, threading.BoundedSemaphore] = {}
_semaphores_lock = threading.Lock()


class JwksUnavailable(Exception):
    """No usable JWK set can be had now: the fetch failed, is backing off, or a limit was reached."""


def _digest(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def _cache() -> Any:
    return caches[ciba_settings.CACHE_ALIAS]


def _seconds(value: float) -> int:
    """A cache timeout in whole seconds, at least one (some backends take integers only)."""
    return max(1, math.ceil(value))


def document(url: str, *, refresh: bool = False) -> Any:
    """The JSON document published at ``url``: cached, or fetched under the rules of this module.

    ``refresh`` asks for a newer copy than the cached one (a JWT named an unknown key id); it is
    honoured at most once per ``JWKS_REFRESH_INTERVAL`` seconds per URL, and never while a failed
    fetch of the URL is backing off. Raises :class:`JwksUnavailable`.
    """
    cache = _cache()
    key = DOCUMENT_PREFIX + _digest(url)
    interval = float(ciba_settings.JWKS_REFRESH_INTERVAL)
    entry = cache.get(key)
    if entry is not None and not (refresh and time.time() - entry["fetched"] >= interval):
        return entry["document"]
    failure = cache.get(FAILURE_PREFIX + _digest(url))
    if failure is not None and failure["retry_at"] > time.time():
        if entry is not None:
            return entry["document"]
        wait = _seconds(failure["retry_at"] - time.time())
        raise JwksUnavailable(
            f"The client's JWK set could not be fetched recently; the next attempt is in {wait} s."
        )
    if interval > 0 and not cache.add(GATE_PREFIX + _digest(url), 1, timeout=_seconds(interval)):
        # Fetched (or being fetched) by another request within the interval.
        entry = cache.get(key) or entry or _await_other_fetch(url, key)
        if entry is not None:
            return entry["document"]
        raise JwksUnavailable("The client's JWK set is being fetched by another request; try again later.")
    return _fetch(url, key, entry, failure)


def _await_other_fetch(url: str, key: str) -> dict[str, Any] | None:
    """No set is cached and another request holds the URL's gate: wait for its fetch to end (at
    most ``JWKS_FETCH_TIMEOUT`` and a little more, as long as fetching would have taken), so that a
    client's first concurrent requests are not refused while one of them fetches. None when that
    fetch failed or is not done in time."""
    deadline = time.monotonic() + float(ciba_settings.JWKS_FETCH_TIMEOUT) + AWAIT_SLACK
    cache = _cache()
    while time.monotonic() < deadline:
        time.sleep(AWAIT_STEP)
        entry = cache.get(key)
        if entry is not None:
            return entry
        if cache.get(FAILURE_PREFIX + _digest(url)) is not None:
            return None
    return None


def _fetch(url: str, key: str, entry: dict[str, Any] | None, failure: dict[str, Any] | None) -> Any:
    semaphore = _semaphore(int(ciba_settings.JWKS_MAX_CONCURRENT_FETCHES))
    if not semaphore.acquire(blocking=False):
        return _not_fetched(url, entry, "Too many JWK sets are being fetched at once; try again later.")
    try:
        if not _take_budget():
            return _not_fetched(
                url, entry, "The limit of JWK set fetches (JWKS_FETCH_LIMIT) is reached; try again later."
            )
        try:
            body = outbound.get_document(
                url,
                max_bytes=int(ciba_settings.JWKS_MAX_BYTES),
                timeout=float(ciba_settings.JWKS_FETCH_TIMEOUT),
            )
            fetched = json.loads(body)
        except outbound.OutboundError as exc:
            _record_failure(url, failure)
            raise JwksUnavailable(f"The client's JWK set could not be fetched: {exc}") from exc
        except (ValueError, RecursionError) as exc:
            _record_failure(url, failure)
            raise JwksUnavailable("The client's JWK set is not valid JSON.") from exc
    finally:
        semaphore.release()
    cache = _cache()
    cache.set(key, {"document": fetched, "fetched": time.time()}, timeout=int(ciba_settings.JWKS_CACHE_TTL))
    if failure is not None:
        cache.delete(FAILURE_PREFIX + _digest(url))
    return fetched


def _not_fetched(url: str, entry: dict[str, Any] | None, reason: str) -> Any:
    """No fetch after all (a limit): free the URL's gate, then use the cached set or refuse."""
    _cache().delete(GATE_PREFIX + _digest(url))
    if entry is not None:
        return entry["document"]
    raise JwksUnavailable(reason)


def _record_failure(url: str, previous: dict[str, Any] | None) -> None:
    """Remember a failed fetch: the next attempt waits base * 2**(failures - 1) seconds, capped."""
    failures = (previous["failures"] if previous is not None else 0) + 1
    ceiling = float(ciba_settings.JWKS_FAILURE_MAX_BACKOFF)
    delay = min(float(ciba_settings.JWKS_FAILURE_BACKOFF) * 2 ** min(failures - 1, 32), ceiling)
    record = {"failures": failures, "retry_at": time.time() + delay}
    # Kept a while past retry_at, so that a URL failing again backs off longer; forgotten after that.
    _cache().set(FAILURE_PREFIX + _digest(url), record, timeout=_seconds(delay + ceiling))


def _take_budget() -> bool:
    """Count one fetch in the current ``JWKS_FETCH_LIMIT`` window (shared cache); False when spent."""
    limit = ciba_settings.JWKS_FETCH_LIMIT
    if limit is None:
        return True
    fetches, window = int(limit[0]), int(limit[1])
    cache = _cache()
    key = f"{BUDGET_PREFIX}{int(time.time() // window)}"
    cache.add(key, 0, timeout=window * 2)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.add(key, 1, timeout=window * 2)
        count = 1
    return count <= fetches


def _semaphore(size: int) -> threading.BoundedSemaphore:
    """This process's semaphore bounding concurrent fetches (one per configured size)."""
    with _semaphores_lock:
        semaphore = _semaphores.get(size)
        if semaphore is None:
            semaphore = _semaphores[size] = threading.BoundedSemaphore(max(1, size))
        return semaphore


__all__ = ["JwksUnavailable", "document"]
