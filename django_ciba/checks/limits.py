"""System checks of the abuse limits and of the cache that counts them.

Rate limits (E060, E108), pending requests (E061, E066, W066), approval fatigue (E067, E068),
user_code lockout (E062, E170), abuse reports (E109) and the cache (E063, W064, W065).
"""

from __future__ import annotations

from typing import Any

from django.core import checks

from django_ciba.checks.values import none_or_pair, none_or_positive_int, positive_int
from django_ciba.core.conf import ciba_settings, setting_name
from django_ciba.exceptions import CibaConfigurationError


HINT = "See the abuse controls page."
PAIR = "must be None or [requests, seconds], two positive integers."
PROMPTS = "must be None or [prompts, seconds], two positive integers."
CACHE_HINT = "Point CIBA['CACHE_ALIAS'] at a Redis or Memcached cache shared by all servers."


@checks.register()
def check_abuse_settings(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Rate limits, pending limits, approval fatigue, user_code lockout, abuse reports, their cache."""
    try:
        _ = ciba_settings.user_settings
    except CibaConfigurationError:
        return []  # reported as E010 / E182
    return [*_limits(), *_prompts(), *_cache()]


def _limits() -> list[checks.CheckMessage]:
    errors: list[checks.CheckMessage] = []
    if not none_or_pair(ciba_settings.CLIENT_RATE_LIMIT):
        errors.append(
            checks.Error(f"{setting_name('CLIENT_RATE_LIMIT')} {PAIR}", hint=HINT, id="django_ciba.E060")
        )
    if not none_or_pair(ciba_settings.USER_RATE_LIMIT):
        errors.append(
            checks.Error(f"{setting_name('USER_RATE_LIMIT')} {PAIR}", hint=HINT, id="django_ciba.E108")
        )
    if not none_or_pair(ciba_settings.ABUSE_REPORT_LIMIT):
        errors.append(
            checks.Error(f"{setting_name('ABUSE_REPORT_LIMIT')} {PAIR}", hint=HINT, id="django_ciba.E109")
        )
    if not none_or_positive_int(ciba_settings.MAX_PENDING_PER_USER):
        errors.append(
            checks.Error(
                "CIBA['MAX_PENDING_PER_USER'] must be None or a positive integer.",
                hint=HINT,
                id="django_ciba.E061",
            )
        )
    failures = ciba_settings.USER_CODE_MAX_FAILURES
    if failures is not None and not positive_int(failures):
        errors.append(
            checks.Error(
                f"{setting_name('USER_CODE_MAX_FAILURES')} must be None or a positive integer.",
                hint=HINT,
                id="django_ciba.E062",
            )
        )
    if not positive_int(ciba_settings.USER_CODE_LOCKOUT):
        errors.append(
            checks.Error(
                f"{setting_name('USER_CODE_LOCKOUT')} must be a positive number of seconds (an integer).",
                hint=HINT,
                id="django_ciba.E170",
            )
        )
    return errors


def _prompts() -> list[checks.CheckMessage]:
    """The pending limit per client and user, approval fatigue, the deprecated per-user cap (E066-E068,
    W066)."""
    errors: list[checks.CheckMessage] = []
    if not none_or_positive_int(ciba_settings.MAX_PENDING_PER_CLIENT_USER):
        errors.append(
            checks.Error(
                f"{setting_name('MAX_PENDING_PER_CLIENT_USER')} must be None or a positive integer.",
                hint=HINT,
                id="django_ciba.E066",
            )
        )
    if not none_or_pair(ciba_settings.UNAPPROVED_PROMPT_LIMIT):
        errors.append(
            checks.Error(
                f"{setting_name('UNAPPROVED_PROMPT_LIMIT')} {PROMPTS}", hint=HINT, id="django_ciba.E067"
            )
        )
    if not none_or_pair(ciba_settings.UNAPPROVED_PROMPT_CEILING):
        errors.append(
            checks.Error(
                f"{setting_name('UNAPPROVED_PROMPT_CEILING')} {PROMPTS}", hint=HINT, id="django_ciba.E068"
            )
        )
    if ciba_settings.given("MAX_PENDING_PER_USER") and ciba_settings.MAX_PENDING_PER_USER is not None:
        errors.append(
            checks.Warning(
                "CIBA['MAX_PENDING_PER_USER'] is deprecated: it refuses every client once one user has "
                "that many requests waiting, so a busy or testing client is refused.",
                hint=f"Remove it; {setting_name('MAX_PENDING_PER_CLIENT_USER')} supersedes a client's oldest "
                "requests instead of refusing new ones.",
                id="django_ciba.W066",
            )
        )
    return errors


def _cache() -> list[checks.CheckMessage]:
    """E063: no such cache; W064 / W065: a cache that cannot count for several processes."""
    from django.conf import settings
    from django.core.cache import InvalidCacheBackendError, caches
    from django.core.cache.backends.db import DatabaseCache
    from django.core.cache.backends.dummy import DummyCache
    from django.core.cache.backends.filebased import FileBasedCache
    from django.core.cache.backends.locmem import LocMemCache

    alias = ciba_settings.CACHE_ALIAS
    try:
        cache = caches[alias]
    except (InvalidCacheBackendError, TypeError, ImportError) as exc:
        return [
            checks.Error(
                f"CIBA['CACHE_ALIAS'] must name a cache of the CACHES setting ({alias!r}: {exc}).",
                hint=HINT,
                id="django_ciba.E063",
            )
        ]
    if isinstance(cache, DummyCache):
        return [
            checks.Warning(
                f"The CIBA cache {alias!r} is a DummyCache: rate limits, the user_code lockout and "
                "slow_down never take effect.",
                hint=CACHE_HINT,
                id="django_ciba.W064",
            )
        ]
    if isinstance(cache, DatabaseCache | FileBasedCache) or (
        isinstance(cache, LocMemCache) and not settings.DEBUG
    ):
        reason = (
            "is local to each process, so every process counts on its own"
            if isinstance(cache, LocMemCache)
            else "does not increment atomically, so concurrent requests can be missed"
        )
        return [
            checks.Warning(
                f"The CIBA cache {alias!r} ({type(cache).__name__}) {reason}: rate limits and the "
                "user_code lockout are not enforced reliably.",
                hint=CACHE_HINT,
                id="django_ciba.W065",
            )
        ]
    return []
