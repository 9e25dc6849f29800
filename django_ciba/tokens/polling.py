"""Polling-rate bookkeeping (TOK-07): ``slow_down`` and the growing interval, kept in the cache.

A pending poll writes nothing to the database: the time of the last accepted poll and the
request's current interval live in Django's cache (``CIBA["CACHE_ALIAS"]``), keyed by the
auth_req_id's hash. On a poll that is too early the interval grows by ``SLOW_DOWN_INCREMENT`` and
the last accepted poll time is kept, so a client that follows the spec (adds 5 s) recovers, while
one that keeps hammering keeps being told to slow down.
"""

from __future__ import annotations

from datetime import datetime

from django.core.cache import caches

from django_ciba.core.conf import ciba_settings
from django_ciba.models import AuthenticationRequest


def _key(auth_request: AuthenticationRequest) -> str:
    return f"ciba:poll:{auth_request.auth_req_id_hash}"


def current_interval(auth_request: AuthenticationRequest) -> int:
    state = caches[ciba_settings.CACHE_ALIAS].get(_key(auth_request))
    return int(state[1]) if state else int(auth_request.interval)


def register_poll(auth_request: AuthenticationRequest, now: datetime) -> bool:
    """Record a poll of a pending request; return True when the client must slow down."""
    cache = caches[ciba_settings.CACHE_ALIAS]
    key = _key(auth_request)
    timeout = max(1, auth_request.seconds_left(now)) + 60
    stamp = now.timestamp()
    state = cache.get(key)
    if state is None:
        cache.set(key, (stamp, int(auth_request.interval)), timeout)
        return False
    last, interval = float(state[0]), int(state[1])
    if stamp - last < interval - float(ciba_settings.SLOW_DOWN_TOLERANCE):
        cache.set(key, (last, interval + int(ciba_settings.SLOW_DOWN_INCREMENT)), timeout)
        return True
    cache.set(key, (stamp, interval), timeout)
    return False
