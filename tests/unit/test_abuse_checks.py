"""System checks of the abuse-control settings (``django_ciba.E060``-``E063``, ``W064``-``W065``,
``E066``-``E068``, ``W066``).

SEC-07 / SEC-08 / UC-06: the limits only protect anything when they are well formed and their
counters live in a cache every server shares, with atomic increments.
"""

from __future__ import annotations

import pytest
from django.core import checks
from django.test import override_settings

from django_ciba.checks.settings import check_abuse_settings
from django_ciba.core.conf import setting_name


LOCMEM = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}


def ids(messages):
    return sorted(message.id for message in messages)


@pytest.fixture
def debug():
    """DEBUG on: the suite's locmem cache is fine for development (W065 otherwise)."""
    with override_settings(DEBUG=True):
        yield


def test_defaults_are_clean(debug):
    # The defaults (and the suite's locmem cache under DEBUG) raise nothing.
    assert check_abuse_settings() == []


def test_everything_off_is_clean(ciba_settings, debug):
    # SEC-07: None switches each control off and is valid.
    ciba_settings.set(
        CLIENT_RATE_LIMIT=None,
        USER_RATE_LIMIT=None,
        MAX_PENDING_PER_USER=None,
        MAX_PENDING_PER_CLIENT_USER=None,
        UNAPPROVED_PROMPT_LIMIT=None,
        UNAPPROVED_PROMPT_CEILING=None,
        ABUSE_REPORT_LIMIT=None,
        USER_CODE_MAX_FAILURES=None,
    )
    assert check_abuse_settings() == []


def test_registered_with_django_check_framework(ciba_settings, debug):
    # The check runs with ``manage.py check``.
    ciba_settings.set(MAX_PENDING_PER_USER=0)
    assert "django_ciba.E061" in [message.id for message in checks.run_checks()]


@pytest.mark.parametrize(
    "name, number",
    [("CLIENT_RATE_LIMIT", "E060"), ("USER_RATE_LIMIT", "E108"), ("ABUSE_REPORT_LIMIT", "E109")],
)
@pytest.mark.parametrize(
    "value",
    [
        120,
        [120],
        [120, 60, 1],
        [0, 60],
        [120, 0],
        [-1, 60],
        ["120", "60"],
        [1.5, 60],
        [True, 60],
        "120/60",
        {},
    ],
)
def test_e060_e108_e109_malformed_limits(ciba_settings, debug, name, number, value):
    # SEC-07: a limit is None or [requests, seconds], two positive integers; each limit has its own ID.
    ciba_settings.set(**{name: value})
    messages = check_abuse_settings()
    assert ids(messages) == [f"django_ciba.{number}"]
    assert setting_name(name) in messages[0].msg


@pytest.mark.parametrize("value", [[3, 60], (3, 60)])
def test_e060_list_or_tuple(ciba_settings, debug, value):
    ciba_settings.set(CLIENT_RATE_LIMIT=value, USER_RATE_LIMIT=value, ABUSE_REPORT_LIMIT=value)
    assert check_abuse_settings() == []


@pytest.mark.parametrize("value", [0, -1, 2.5, "5", True])
def test_e061_pending_cap(ciba_settings, debug, value):
    # SEC-07: MAX_PENDING_PER_USER is None or a positive integer (and, set at all, deprecated: W066).
    ciba_settings.set(MAX_PENDING_PER_USER=value)
    assert ids(check_abuse_settings()) == ["django_ciba.E061", "django_ciba.W066"]


def test_w066_per_user_pending_cap_is_deprecated(ciba_settings, debug):
    # SEC-07: a per-user pending cap refuses every client of a busy user; setting it is reported.
    ciba_settings.set(MAX_PENDING_PER_USER=5)
    messages = check_abuse_settings()
    assert ids(messages) == ["django_ciba.W066"]
    assert isinstance(messages[0], checks.Warning)
    assert setting_name("MAX_PENDING_PER_CLIENT_USER") in messages[0].hint


def test_w066_not_reported_for_none(ciba_settings, debug):
    ciba_settings.set(MAX_PENDING_PER_USER=None)
    assert check_abuse_settings() == []


@pytest.mark.parametrize("value", [0, -1, 2.5, "3", True, [3]])
def test_e066_pending_per_client_user(ciba_settings, debug, value):
    # SEC-07: MAX_PENDING_PER_CLIENT_USER is None or a positive integer.
    ciba_settings.set(MAX_PENDING_PER_CLIENT_USER=value)
    assert ids(check_abuse_settings()) == ["django_ciba.E066"]


@pytest.mark.parametrize(
    "name, number", [("UNAPPROVED_PROMPT_LIMIT", "E067"), ("UNAPPROVED_PROMPT_CEILING", "E068")]
)
@pytest.mark.parametrize(
    "value", [10, [10], [10, 3600, 1], [0, 3600], [10, 0], ["10", "3600"], [True, 60], {}]
)
def test_e067_e068_unapproved_prompt_limits(ciba_settings, debug, name, number, value):
    # SEC-07: approval-fatigue limits are None or [prompts, seconds], two positive integers.
    ciba_settings.set(**{name: value})
    assert ids(check_abuse_settings()) == [f"django_ciba.{number}"]


@pytest.mark.parametrize("value", [None, [10, 3600], (1, 1)])
def test_unapproved_prompt_limits_accept_none_or_pairs(ciba_settings, debug, value):
    ciba_settings.set(UNAPPROVED_PROMPT_LIMIT=value, UNAPPROVED_PROMPT_CEILING=value)
    assert check_abuse_settings() == []


@pytest.mark.parametrize("value", [0, -3, "5", 2.0])
def test_e062_user_code_max_failures(ciba_settings, debug, value):
    # UC-06: USER_CODE_MAX_FAILURES is None or a positive integer.
    ciba_settings.set(USER_CODE_MAX_FAILURES=value)
    assert ids(check_abuse_settings()) == ["django_ciba.E062"]


@pytest.mark.parametrize("value", [None, 0, -900, "900", 900.5])
def test_e170_user_code_lockout(ciba_settings, debug, value):
    # UC-06: USER_CODE_LOCKOUT is a positive integer number of seconds (it cannot be switched off;
    # USER_CODE_MAX_FAILURES = None does that).
    ciba_settings.set(USER_CODE_LOCKOUT=value)
    assert ids(check_abuse_settings()) == ["django_ciba.E170"]


def test_e063_unknown_cache_alias(ciba_settings, debug):
    # The counters need the cache CACHE_ALIAS names.
    ciba_settings.set(CACHE_ALIAS="no-such-cache")
    assert ids(check_abuse_settings()) == ["django_ciba.E063"]


def test_w064_dummy_cache(ciba_settings, debug):
    # SEC-07 / UC-06: a DummyCache stores no count: nothing is ever limited.
    ciba_settings.set(CACHE_ALIAS="nothing")
    with override_settings(
        CACHES={"default": LOCMEM, "nothing": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    ):
        messages = check_abuse_settings()
    assert ids(messages) == ["django_ciba.W064"]
    assert isinstance(messages[0], checks.Warning)


def test_w065_locmem_cache_in_production(settings):
    # SEC-07: a per-process cache lets each process count on its own (only reported off DEBUG).
    settings.DEBUG = False
    messages = check_abuse_settings()
    assert ids(messages) == ["django_ciba.W065"]
    assert "local to each process" in messages[0].msg


@pytest.mark.parametrize(
    "backend, location",
    [
        ("django.core.cache.backends.db.DatabaseCache", "ciba_cache_table"),
        ("django.core.cache.backends.filebased.FileBasedCache", "/tmp/django-ciba-check-cache"),
    ],
)
def test_w065_non_atomic_caches(ciba_settings, debug, backend, location):
    # SEC-07: get-then-set increments can lose counts under concurrency.
    ciba_settings.set(CACHE_ALIAS="counters")
    with override_settings(
        CACHES={"default": LOCMEM, "counters": {"BACKEND": backend, "LOCATION": location}}
    ):
        messages = check_abuse_settings()
    assert ids(messages) == ["django_ciba.W065"]
    assert "atomically" in messages[0].msg


def test_shared_caches_are_clean(ciba_settings, settings):
    # Redis is shared and increments atomically: nothing to report (no connection is made).
    backend = "django.core.cache.backends.redis.RedisCache"
    settings.DEBUG = False
    ciba_settings.set(CACHE_ALIAS="shared")
    with override_settings(
        CACHES={"default": LOCMEM, "shared": {"BACKEND": backend, "LOCATION": "redis://127.0.0.1:1/0"}}
    ):
        assert check_abuse_settings() == []
