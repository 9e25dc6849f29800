"""Polling-rate bookkeeping (TOK-07): ``slow_down`` and the growing interval, kept in the cache.

A pending poll writes nothing to the database: the time of the last accepted poll and the
request's current interval live in Django's cache (``CIBA["CACHE_ALIAS"]``), keyed by the
auth_req_id's hash. On a poll that is too early the interval grows by ``SLOW_DOWN_INCREMENT`` and
the last accepted poll time is kept, so a client that follows the spec (adds 5 s) recovers, while
one that keeps hammering keeps being told to slow down.

The hot path (:mod:`django_ciba.core.hot_path`) reads this state in the same round trip as the
pending entry and passes it in (``state``). When the cache cannot be used, a poll is never told to
slow down (the bookkeeping is lost, the answer stays ``authorization_pending``).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.core.cache import caches

from django_ciba.core.conf import ciba_settings
from django_ciba.core.hot_path import MISSING
from django_ciba.models import AuthenticationRequest


logger = logging.getLogger(__name__)


def key(auth_req_id_hash: str) -> str:
    return f"ciba:poll:{auth_req_id_hash}"


def current_interval(auth_request: AuthenticationRequest) -> int:
    state = caches[ciba_settings.CACHE_ALIAS].get(key(auth_request.auth_req_id_hash))
    return int(state[1]) if state else int(auth_request.interval)


def register_poll(auth_request: AuthenticationRequest, now: datetime) -> bool:
    """Record a poll of a pending request; return True when the client must slow down."""
    return register(
        auth_request.auth_req_id_hash,
        interval=int(auth_request.interval),
        seconds_left=auth_request.seconds_left(now),
        now=now,
    )


def register(
    auth_req_id_hash: str, *, interval: int, seconds_left: int, now: datetime, state: Any = MISSING
) -> bool:
    """Record a poll of a pending request (its state already read, or :data:`MISSING`); return True
    when the client must slow down."""
    try:
        return _register(auth_req_id_hash, interval, seconds_left, now, state)
    except Exception as exc:  # the cache is down: no slow_down bookkeeping, never a 500
        logger.warning("Polling bookkeeping unavailable (%s).", type(exc).__name__)
        return False


def _register(auth_req_id_hash: str, interval: int, seconds_left: int, now: datetime, state: Any) -> bool:
    cache = caches[ciba_settings.CACHE_ALIAS]
    poll_key = key(auth_req_id_hash)
    timeout = max(1, seconds_left) + 60
    stamp = now.timestamp()
    if state is MISSING:
        state = cache.get(poll_key)
    if state is None:
        cache.set(poll_key, (stamp, interval), timeout)
        return False
    last, current = float(state[0]), int(state[1])
    if stamp - last < current - float(ciba_settings.SLOW_DOWN_TOLERANCE):
        cache.set(poll_key, (last, current + int(ciba_settings.SLOW_DOWN_INCREMENT)), timeout)
        return True
    cache.set(poll_key, (stamp, current), timeout)
    return False
