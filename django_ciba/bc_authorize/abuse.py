"""Abuse controls at the backchannel endpoint (SEC-07, SEC-08, UC-06, VAL-08).

:func:`~django_ciba.bc_authorize.service.start_authentication` calls, in this order:

* :func:`check_client` after the parameters are valid and before the hint is resolved: the
  client's rate limit (its own, set on its registration, else ``CLIENT_RATE_LIMIT``; off by
  default). Every such request counts, including those whose hint names no user, so probing for
  identifiers is bounded too (SEC-08).
* :func:`check_user` once the hint named an active user: the ``user_code`` lockout (answered
  exactly like an unknown user, AERR-04), then :func:`django_ciba.bc_authorize.prompt_limits.check_user_state`
  (the abuse-report block, approval fatigue, the deprecated per-user pending cap; one database
  query), then the per-user rate limit (``USER_RATE_LIMIT``, off by default), which counts only
  requests that passed the others.
* :func:`check_user_code`: UC-02 / UC-03, and wrong codes count towards the lockout
  (``USER_CODE_MAX_FAILURES`` wrong codes within ``USER_CODE_LOCKOUT`` seconds lock the user for
  ``USER_CODE_LOCKOUT`` seconds).

Refusals are ``access_denied`` (HTTP 403, AERR-10) with a ``Retry-After`` header when the time
the refusal ends is known; see ``docs/abuse.rst`` for the reasons.

Counters live in the ``CIBA["CACHE_ALIAS"]`` cache as fixed windows: one key per window, created
with ``cache.add`` and counted with ``cache.incr`` (both atomic on Redis, Memcached and the local
memory cache), so concurrent requests on several servers sharing the cache never miss a count.
Keys hold a keyed hash of the client id or user pk, never a hint or a code. Time comes from
:func:`_clock` (seconds since the epoch), which tests replace.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches
from django.utils.crypto import salted_hmac

from django_ciba.bc_authorize import prompt_limits
from django_ciba.bc_authorize.refusals import (
    ClientRateLimited,
    ClientReported,
    LockedUser,
    PromptsNotApproved,
    Refused,
    TooManyPending,
    UserRateLimited,
    as_datetime,
    log_event,
)
from django_ciba.core.conf import ciba_settings
from django_ciba.exceptions import InvalidUserCode, MissingUserCode
from django_ciba.models import CibaClient


KEY_PREFIX = "ciba:abuse"
# Counter keys outlive their window by this much (clock differences between servers).
TTL_SLACK = 60


# --------------------------------------------------------------------------------------------
# time, cache and counters


def _clock() -> float:
    """Now, in seconds since the epoch (tests patch ``django_ciba.bc_authorize.abuse._clock``)."""
    return time.time()


def _cache() -> Any:
    return caches[ciba_settings.CACHE_ALIAS]


def _digest(kind: str, value: Any) -> str:
    """A keyed hash of an identifier: cache keys never show a client id, user pk, hint or code."""
    return salted_hmac(f"django_ciba.bc_authorize.abuse.{kind}", str(value), algorithm="sha256").hexdigest()[
        :32
    ]


def _client_digest(application: Any) -> str:
    return _digest("client", application.client_id)


def _user_digest(user: Any) -> str:
    return _digest("user", user.pk)


def _limit(value: Any) -> tuple[int, int] | None:
    """``[requests, seconds]`` as a pair of ints, or None (off)."""
    if value is None:
        return None
    count, period = value
    return int(count), int(period)


@dataclass(frozen=True)
class Window:
    """One fixed window of ``period`` seconds for one counter.

    Windows are shifted by a per-counter phase (from the counter's digest) so that not every
    client's and user's window ends at the same second.
    """

    index: int
    end: float

    @classmethod
    def at(cls, digest: str, period: int, now: float) -> Window:
        phase = int(digest[:8], 16) % period
        index = math.floor((now + phase) / period)
        return cls(index=index, end=(index + 1) * period - phase)

    def seconds_left(self, now: float) -> int:
        return max(1, math.ceil(self.end - now))


def _incr(cache: Any, key: str, ttl: int) -> int:
    """Add one to the counter ``key`` atomically and return its new value (0: nothing stored).

    The counter usually exists already (every request of the window after the first): ``incr``
    first spares the ``add`` round trip to a shared cache on that path."""
    for _ in range(3):
        try:
            return int(cache.incr(key))
        except ValueError:  # not there yet, or expired or evicted since: add it, then count
            cache.add(key, 0, ttl)
    return 0  # a cache that stores nothing (DummyCache, check W064): nothing is limited


def hit(name: str, digest: str, limit: tuple[int, int], *, now: float) -> tuple[int, Window]:
    """Count one request against the fixed-window counter ``name``/``digest``; return
    ``(count, window)``. The request is over the limit when ``count > limit[0]``."""
    _, period = limit
    window = Window.at(digest, period, now)
    key = f"{KEY_PREFIX}:{name}:{digest}:{window.index}"
    return _incr(_cache(), key, period + TTL_SLACK), window


def _over(name: str, digest: str, limit: tuple[int, int], now: float) -> tuple[bool, bool, int]:
    """Count a request; return ``(refused, first_refusal_in_window, retry_after)``."""
    count, window = hit(name, digest, limit, now=now)
    return count > limit[0], count == limit[0] + 1, window.seconds_left(now)


# --------------------------------------------------------------------------------------------
# the checks


def client_rate_limit(ciba: CibaClient | None) -> tuple[int, int] | None:
    """The rate limit that applies to a client: its own (``rate_limit_requests`` 0: none), else
    ``CLIENT_RATE_LIMIT``. ``(requests, seconds)`` or None (no limit)."""
    own = ciba.rate_limit if ciba is not None else None
    if own is None:
        return _limit(ciba_settings.CLIENT_RATE_LIMIT)
    return None if own[0] == 0 else own


def check_client(
    application: Any, *, ciba: CibaClient | None = None, request: Any = None, now: float | None = None
) -> None:
    """Refuse the request early when the client is over its rate limit (before any user lookup).

    Counts the request against :func:`client_rate_limit` (every request that gets here counts,
    refused or not, so a client that keeps sending past its limit stays refused until the window
    ends). ``ciba`` is the client's registration; without it only ``CLIENT_RATE_LIMIT`` applies.
    """
    limit = client_rate_limit(ciba)
    if limit is None:
        return
    now = _clock() if now is None else now
    refused, first, retry_after = _over("client", _client_digest(application), limit, now)
    if refused:
        log_event(
            logging.WARNING if first else logging.DEBUG,
            "client_rate_limited",
            application,
            limit=list(limit),
            retry_after=retry_after,
        )
        raise ClientRateLimited(retry_after=retry_after)


def check_user(
    application: Any, user: Any, *, request: Any = None, now: float | None = None
) -> prompt_limits.PromptState:
    """Refuse the request when the hinted user may not be asked again now.

    In order: the user_code lockout (as an unknown user), the abuse-report block of this client,
    approval fatigue and the deprecated pending cap (one query), then the per-user rate limit,
    which counts only requests that got that far. Returns what the query read.
    """
    now = _clock() if now is None else now
    if _lockout_active() and is_locked(user, now=now):
        log_event(logging.INFO, "locked_user_refused", application, user)
        raise LockedUser()
    state = prompt_limits.check_user_state(application, user, as_datetime(now))
    limit = _limit(ciba_settings.USER_RATE_LIMIT)
    if limit is None:
        return state
    refused, first, retry_after = _over("user", _user_digest(user), limit, now)
    if refused:
        log_event(
            logging.WARNING if first else logging.DEBUG,
            "user_rate_limited",
            application,
            user,
            limit=list(limit),
            retry_after=retry_after,
        )
        raise UserRateLimited(retry_after=retry_after)
    return state


# --------------------------------------------------------------------------------------------
# user_code (UC-02, UC-03, UC-06)


def user_code_required(ciba: CibaClient) -> bool:
    return bool(ciba_settings.USER_CODE_SUPPORTED and ciba.user_code_parameter)


def check_user_code(
    ciba: CibaClient, user: Any, user_code: str | None, *, application: Any = None, now: float | None = None
) -> None:
    """UC-02 / UC-03: required for clients registered for user codes, checked by the verifier.

    UC-06: a wrong code counts towards the user's lockout (whatever the client); the request that
    reaches ``USER_CODE_MAX_FAILURES`` is still answered ``invalid_user_code``, later ones are
    refused by :func:`check_user`. A right code does not reset the count.
    """
    if not user_code_required(ciba):
        return
    if user_code is None:
        raise MissingUserCode()
    verifier = ciba_settings.USER_CODE_VERIFIER
    if verifier is None or not verifier(user, user_code):
        record_user_code_failure(user, application=application, now=now)
        raise InvalidUserCode()


def _lockout() -> tuple[int | None, int]:
    failures = ciba_settings.USER_CODE_MAX_FAILURES
    return (None if failures is None else int(failures)), int(ciba_settings.USER_CODE_LOCKOUT)


def _lockout_active() -> bool:
    """Locks can exist only when user codes are supported and the lockout is on."""
    return bool(ciba_settings.USER_CODE_SUPPORTED) and ciba_settings.USER_CODE_MAX_FAILURES is not None


def _failure_keys(user: Any, period: int, now: float) -> tuple[str, str]:
    digest = _user_digest(user)
    window = Window.at(digest, period, now)
    return (
        f"{KEY_PREFIX}:code:{digest}:{window.index}",
        f"{KEY_PREFIX}:code:{digest}:{window.index - 1}",
    )


def _lock_key(user: Any) -> str:
    return f"{KEY_PREFIX}:lock:{_user_digest(user)}"


def record_user_code_failure(user: Any, *, application: Any = None, now: float | None = None) -> bool:
    """Count a wrong user_code for ``user``; lock the user when that makes the limit. True if locked.

    Failures are counted in fixed windows of ``USER_CODE_LOCKOUT`` seconds and the current and the
    previous window are added up, so any ``USER_CODE_MAX_FAILURES`` failures less than
    ``USER_CODE_LOCKOUT`` seconds apart always lock. Locking clears the count: once the lockout
    ends, the user has the full number of attempts again.
    """
    failures, period = _lockout()
    if failures is None:
        return False
    now = _clock() if now is None else now
    cache = _cache()
    current, previous = _failure_keys(user, period, now)
    count = _incr(cache, current, 2 * period + TTL_SLACK) + int(cache.get(previous) or 0)
    log_event(logging.INFO, "user_code_failed", application, user, failures=count, limit=failures)
    if count < failures:
        return False
    cache.set(_lock_key(user), now + period, period + TTL_SLACK)
    cache.delete_many([current, previous])
    log_event(logging.WARNING, "user_code_lockout", application, user, failures=count, seconds=period)
    return True


def is_locked(user: Any, *, now: float | None = None) -> bool:
    """Whether CIBA requests for ``user`` are refused after too many wrong user codes."""
    until = _cache().get(_lock_key(user))
    if until is None:
        return False
    now = _clock() if now is None else now
    return float(until) > now


def unlock_user(user: Any) -> None:
    """Lift a user_code lockout and forget the user's wrong codes (an operator's action)."""
    _, period = _lockout()
    now = _clock()
    cache = _cache()
    cache.delete_many([_lock_key(user), *_failure_keys(user, period, now)])
    log_event(logging.INFO, "user_unlocked", None, user)


__all__ = [
    "ClientRateLimited",
    "ClientReported",
    "LockedUser",
    "PromptsNotApproved",
    "Refused",
    "TooManyPending",
    "UserRateLimited",
    "check_client",
    "client_rate_limit",
    "check_user",
    "check_user_code",
    "hit",
    "is_locked",
    "record_user_code_failure",
    "unlock_user",
    "user_code_required",
]
