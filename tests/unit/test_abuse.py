"""Abuse controls at bc-authorize: rate limits, pending cap, user_code lockout, abuse reports.

Every test names the requirement it covers (ciba-requirements.md): SEC-07 (unsolicited requests:
per-client and per-user limits), SEC-08 (identifier enumeration), UC-02 / UC-03 / UC-06 (user_code
and its brute-force protection), VAL-08 / AERR-10 (refused by policy: ``access_denied`` 403),
AERR-04 (``unknown_user_id``), VAL-09 (no auth_req_id on refusal). Time is the module's clock
(``django_ciba.bc_authorize.abuse._clock``), moved by the ``clock`` fixture.
"""

from __future__ import annotations

import logging
import threading
from unittest import mock

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.test import override_settings

from django_ciba.approval import decisions
from django_ciba.bc_authorize import abuse
from django_ciba.models import AbuseReport, AuthenticationRequest
from django_ciba.testing import bc_authorize, create_ciba_client
from tests.unit.abuse_controls import ALL_OFF
from tests.unit.auth_requests import ask
from tests.unit.protocol import DESCRIPTION_RE


pytestmark = pytest.mark.django_db

OFF = ALL_OFF


def verify_user_code(user, user_code, auth_request=None):
    """USER_CODE_VERIFIER of these tests: each user's code is ``code-<username>``."""
    return user_code == f"code-{user.get_username()}"


VERIFIER_PATH = f"{__name__}.verify_user_code"
# The abuse clock stands still during a test while rows get real timestamps: a Retry-After derived
# from a row (an expiry, a report) can be this much longer than the row's own lifetime.
SLACK = 5


@pytest.fixture
def controls(ciba_settings, clock):
    """Every control off; a test switches on the one it is about: ``controls(USER_RATE_LIMIT=[2, 60])``."""
    ciba_settings.set(**OFF)

    def switch_on(**keys):
        ciba_settings.set(**keys)

    return switch_on


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", "bob@example.com", "pw")


@pytest.fixture
def second_client(db):
    return create_ciba_client("Second terminal")


def ok(response) -> dict:
    assert response.status_code == 200, response.content
    return response.json()


def refused(response, *, rows_before: int | None = None) -> int | None:
    """VAL-08 / AERR-10: ``access_denied`` 403, section 8 shape; returns Retry-After (or None)."""
    assert response.status_code == 403, response.content
    body = response.json()
    assert set(body) <= {"error", "error_description"}
    assert body["error"] == "access_denied"
    assert DESCRIPTION_RE.match(body["error_description"])
    assert response["Cache-Control"] == "no-store"
    if rows_before is not None:  # VAL-09: no auth_req_id was created
        assert AuthenticationRequest.objects.count() == rows_before
    if "Retry-After" not in response:
        return None
    retry_after = response["Retry-After"]
    assert retry_after.isdigit() and int(retry_after) >= 1
    return int(retry_after)


def error_of(response) -> str:
    assert response.status_code == 400, response.content
    return response.json()["error"]


def latest_request() -> AuthenticationRequest:
    return AuthenticationRequest.objects.latest("pk")


# --------------------------------------------------------------------------------------------
# per-client rate limit (SEC-07, SEC-08, VAL-08)


def test_client_limit_allows_n_then_refuses_with_retry_after(client, user, poll_client, controls):
    # SEC-07 / VAL-08 / AERR-10: N requests pass, the N+1th is access_denied 403 with Retry-After
    # (the seconds left in the window) and no auth_req_id (VAL-09).
    controls(CLIENT_RATE_LIMIT=[3, 60])
    for _ in range(3):
        ok(ask(client, *poll_client))
    retry_after = refused(ask(client, *poll_client), rows_before=3)
    assert 1 <= retry_after <= 60
    assert ask(client, *poll_client).json()["error_description"] == abuse.ClientRateLimited.description


def test_client_limit_resets_exactly_when_retry_after_says(client, user, poll_client, controls, clock):
    # SEC-07: the limit holds until the end of the window announced by Retry-After, then resets.
    controls(CLIENT_RATE_LIMIT=[2, 60])
    ok(ask(client, *poll_client))
    ok(ask(client, *poll_client))
    retry_after = refused(ask(client, *poll_client))
    clock.advance(retry_after - 1)
    refused(ask(client, *poll_client))
    clock.advance(1)
    ok(ask(client, *poll_client))
    ok(ask(client, *poll_client))
    refused(ask(client, *poll_client))


def test_client_limit_is_per_client(client, user, poll_client, second_client, controls):
    # SEC-07: one client over its limit does not affect another.
    controls(CLIENT_RATE_LIMIT=[1, 60])
    ok(ask(client, *poll_client))
    refused(ask(client, *poll_client))
    ok(ask(client, *second_client))


def test_unknown_user_requests_count_against_the_client(client, user, poll_client, controls):
    # SEC-08: probing for identifiers is rate limited: unknown_user_id answers count too.
    controls(CLIENT_RATE_LIMIT=[3, 60])
    for _ in range(3):
        assert error_of(ask(client, *poll_client, login_hint="nobody")) == "unknown_user_id"
    refused(ask(client, *poll_client))
    refused(ask(client, *poll_client, login_hint="nobody"))


def test_malformed_requests_do_not_count_against_the_client(client, user, poll_client, controls):
    # AERR-01 is answered before the limit: requests refused earlier are not counted.
    controls(CLIENT_RATE_LIMIT=[1, 60])
    application, secret = poll_client
    for _ in range(3):
        assert error_of(bc_authorize(client, application, secret, login_hint="alice")) == "invalid_request"
    ok(ask(client, *poll_client))
    refused(ask(client, *poll_client))


def test_client_limit_none_switches_it_off(client, user, poll_client, controls):
    # SEC-07: CLIENT_RATE_LIMIT = None: no per-client limit.
    for _ in range(15):
        ok(ask(client, *poll_client))


def test_client_and_user_limits_are_off_by_default(poll_client, user, clock):
    # SEC-07: CLIENT_RATE_LIMIT and USER_RATE_LIMIT default to None: a client serving many users
    # is not throttled unless the operator sets a limit (globally or on the client).
    unset = {
        key: value
        for key, value in settings.CIBA.items()
        if key not in ("CLIENT_RATE_LIMIT", "USER_RATE_LIMIT")
    }
    with override_settings(CIBA=unset):
        assert abuse.client_rate_limit(poll_client[0].ciba) is None
        for _ in range(500):
            abuse.check_client(poll_client[0], ciba=poll_client[0].ciba)
            abuse.check_user(poll_client[0], user)


# --------------------------------------------------------------------------------------------
# per-user rate limit (SEC-07)


def test_user_limit_counts_across_clients(client, user, bob, poll_client, second_client, controls, clock):
    # SEC-07: requests naming one user count together, whatever the client; other users are not
    # affected; the limit resets when the window ends.
    controls(USER_RATE_LIMIT=[3, 300])
    ok(ask(client, *poll_client))
    ok(ask(client, *second_client))
    ok(ask(client, *poll_client))
    retry_after = refused(ask(client, *second_client), rows_before=3)
    assert 1 <= retry_after <= 300
    refused(ask(client, *poll_client))
    ok(ask(client, *poll_client, login_hint="bob"))
    clock.advance(retry_after)
    ok(ask(client, *second_client))


def test_user_limit_description_and_retry_after(client, user, poll_client, controls):
    # VAL-08: the description says what happened, without the hint or anything secret.
    controls(USER_RATE_LIMIT=[1, 300])
    ok(ask(client, *poll_client))
    response = ask(client, *poll_client)
    refused(response)
    assert response.json()["error_description"] == abuse.UserRateLimited.description
    assert "alice" not in response.content.decode()


def test_user_limit_none_switches_it_off(client, user, poll_client, controls):
    # SEC-07: USER_RATE_LIMIT = None: no per-user limit.
    for _ in range(15):
        ok(ask(client, *poll_client))


def test_requests_refused_by_the_client_limit_do_not_use_the_users_budget(
    client, user, poll_client, second_client, controls
):
    # SEC-07: a request counts against the user only once it got that far.
    controls(CLIENT_RATE_LIMIT=[1, 60], USER_RATE_LIMIT=[2, 300])
    ok(ask(client, *poll_client))
    for _ in range(5):
        refused(ask(client, *poll_client))
    ok(ask(client, *second_client))


def test_unknown_users_use_no_users_budget(client, user, poll_client, controls):
    # SEC-08: an unknown hint counts only against the client.
    controls(USER_RATE_LIMIT=[1, 300])
    for _ in range(3):
        assert error_of(ask(client, *poll_client, login_hint="nobody")) == "unknown_user_id"
    ok(ask(client, *poll_client))


# --------------------------------------------------------------------------------------------
# pending cap (SEC-07)


def test_pending_cap_refuses_until_one_is_decided(client, user, poll_client, second_client, controls):
    # SEC-07 / VAL-08: at most N pending requests per user, from any client; denying, approving
    # or expiring one frees a place.
    controls(MAX_PENDING_PER_USER=2)
    ok(ask(client, *poll_client))
    ok(ask(client, *second_client))
    response = ask(client, *poll_client)
    retry_after = refused(response, rows_before=2)
    assert response.json()["error_description"] == abuse.TooManyPending.description
    # Retry-After: when the soonest pending request expires at the latest (DEFAULT_EXPIRES_IN 300).
    assert 300 - 60 <= retry_after <= 300 + SLACK

    first, second = AuthenticationRequest.objects.order_by("pk")
    decisions.deny(first, user=user)
    ok(ask(client, *poll_client))
    refused(ask(client, *poll_client))
    decisions.approve(second, user=user)
    ok(ask(client, *poll_client))
    refused(ask(client, *poll_client))
    decisions.expire(latest_request())
    ok(ask(client, *poll_client))


def test_pending_cap_frees_places_as_requests_expire(client, user, poll_client, controls, clock):
    # SEC-07: a request past its expiry no longer counts, even before the expiry sweep runs.
    controls(MAX_PENDING_PER_USER=1)
    ok(ask(client, *poll_client, requested_expiry="60"))
    retry_after = refused(ask(client, *poll_client))
    assert 1 <= retry_after <= 60 + SLACK
    clock.advance(retry_after - 1)
    refused(ask(client, *poll_client))
    clock.advance(1)
    ok(ask(client, *poll_client))


def test_pending_cap_is_per_user(client, user, bob, poll_client, controls):
    # SEC-07: another user's pending requests do not count.
    controls(MAX_PENDING_PER_USER=1)
    ok(ask(client, *poll_client))
    ok(ask(client, *poll_client, login_hint="bob"))
    refused(ask(client, *poll_client))


def test_pending_cap_none_switches_it_off(client, user, poll_client, controls):
    # SEC-07: MAX_PENDING_PER_USER = None: no cap.
    for _ in range(8):
        ok(ask(client, *poll_client))
    assert AuthenticationRequest.objects.pending().for_user(user).count() == 8


def test_pending_cap_refusals_do_not_use_the_users_budget(client, user, poll_client, controls):
    # SEC-07: the per-user rate limit counts only requests that passed the pending cap.
    controls(MAX_PENDING_PER_USER=1, USER_RATE_LIMIT=[2, 300])
    ok(ask(client, *poll_client))
    for _ in range(4):
        refused(ask(client, *poll_client))
    decisions.deny(latest_request(), user=user)
    ok(ask(client, *poll_client))


# --------------------------------------------------------------------------------------------
# abuse reports ("I did not request this")


def test_reported_client_is_refused_for_that_user(
    client, user, bob, poll_client, second_client, controls, clock
):
    # SEC-07 / VAL-08: after the user's report, that client's requests for that user are refused
    # (access_denied 403) until the period ends; other clients and other users are not affected.
    controls(ABUSE_REPORT_LIMIT=[1, 86400])
    ok(ask(client, *poll_client))
    decisions.report_abuse(latest_request(), user=user)
    response = ask(client, *poll_client)
    retry_after = refused(response, rows_before=1)
    assert response.json()["error_description"] == abuse.ClientReported.description
    assert 86400 - 60 <= retry_after <= 86400 + SLACK
    ok(ask(client, *second_client))
    ok(ask(client, *poll_client, login_hint="bob"))
    clock.advance(retry_after - 1)
    refused(ask(client, *poll_client))
    clock.advance(1)
    ok(ask(client, *poll_client))


def test_report_threshold_counts_reports_in_the_period(client, user, poll_client, controls):
    # SEC-07: ABUSE_REPORT_LIMIT = [2, period]: one report is tolerated, the second blocks.
    controls(ABUSE_REPORT_LIMIT=[2, 3600])
    ok(ask(client, *poll_client))
    decisions.report_abuse(latest_request(), user=user)
    ok(ask(client, *poll_client))
    decisions.report_abuse(latest_request(), user=user)
    refused(ask(client, *poll_client))


def test_resolved_reports_do_not_count(client, user, poll_client, controls):
    # An operator resolving the report lifts the block it caused.
    controls(ABUSE_REPORT_LIMIT=[1, 86400])
    ok(ask(client, *poll_client))
    report = decisions.report_abuse(latest_request(), user=user)
    refused(ask(client, *poll_client))
    AbuseReport.objects.filter(pk=report.pk).update(resolved=True)
    ok(ask(client, *poll_client))


def test_report_limit_none_switches_it_off(client, user, poll_client, controls):
    # ABUSE_REPORT_LIMIT = None: reports are recorded but block nothing.
    ok(ask(client, *poll_client))
    decisions.report_abuse(latest_request(), user=user)
    ok(ask(client, *poll_client))


def test_report_refusals_do_not_use_the_users_budget(client, user, poll_client, second_client, controls):
    # SEC-07: a reported client cannot exhaust the user's budget for the other clients.
    controls(ABUSE_REPORT_LIMIT=[1, 86400], USER_RATE_LIMIT=[2, 300])
    ok(ask(client, *poll_client))
    decisions.report_abuse(latest_request(), user=user)
    for _ in range(5):
        refused(ask(client, *poll_client))
    ok(ask(client, *second_client))


# --------------------------------------------------------------------------------------------
# user_code brute force (UC-02, UC-03, UC-06, SEC-08)


@pytest.fixture
def code_client(controls):
    controls(
        USER_CODE_SUPPORTED=True,
        USER_CODE_VERIFIER=VERIFIER_PATH,
        USER_CODE_MAX_FAILURES=3,
        USER_CODE_LOCKOUT=900,
    )
    return create_ciba_client("user-code client", user_code_parameter=True)


@pytest.fixture
def second_code_client(code_client):
    return create_ciba_client("second user-code client", user_code_parameter=True)


def as_unknown_user(response, unknown) -> None:
    """SEC-08 / AERR-04: the same status, body and headers as a hint that names nobody."""
    assert response.status_code == unknown.status_code == 400
    assert (
        response.json()
        == unknown.json()
        == {
            "error": "unknown_user_id",
            "error_description": "The hint does not identify a known user.",
        }
    )
    assert "Retry-After" not in response and "Retry-After" not in unknown
    assert {k: v for k, v in response.items()} == {k: v for k, v in unknown.items()}


def test_lockout_after_n_wrong_codes_then_released(client, user, code_client, clock):
    # UC-03 / UC-06: N wrong codes are each invalid_user_code; then the user is locked: even the
    # right code is refused, exactly like an unknown user (SEC-08); after USER_CODE_LOCKOUT the
    # right code works again.
    for _ in range(3):
        assert error_of(ask(client, *code_client, user_code="guess")) == "invalid_user_code"
    unknown = ask(client, *code_client, login_hint="nobody", user_code="code-alice")
    as_unknown_user(ask(client, *code_client, user_code="code-alice"), unknown)
    assert abuse.is_locked(user)
    clock.advance(899)
    as_unknown_user(ask(client, *code_client, user_code="code-alice"), unknown)
    clock.advance(1)
    assert not abuse.is_locked(user)
    ok(ask(client, *code_client, user_code="code-alice"))


def test_lockout_refuses_every_client(client, user, code_client, second_code_client, poll_client):
    # UC-06: the lockout is per user: wrong codes from two clients add up, and every client's
    # requests for that user are refused, even clients that send no user_code.
    ask(client, *code_client, user_code="guess-1")
    ask(client, *second_code_client, user_code="guess-2")
    ask(client, *code_client, user_code="guess-3")
    assert error_of(ask(client, *second_code_client, user_code="code-alice")) == "unknown_user_id"
    assert error_of(ask(client, *poll_client)) == "unknown_user_id"


def test_lockout_is_per_user(client, user, bob, code_client):
    # UC-06: another user is not affected.
    for _ in range(3):
        ask(client, *code_client, user_code="guess")
    ok(ask(client, *code_client, login_hint="bob", user_code="code-bob"))


def test_a_right_code_does_not_reset_the_count(client, user, code_client):
    # UC-06: the user's own successful requests do not give an attacker fresh attempts.
    ask(client, *code_client, user_code="guess")
    ask(client, *code_client, user_code="guess")
    ok(ask(client, *code_client, user_code="code-alice"))
    assert error_of(ask(client, *code_client, user_code="guess")) == "invalid_user_code"
    assert error_of(ask(client, *code_client, user_code="code-alice")) == "unknown_user_id"


def test_after_a_lockout_the_full_count_is_available_again(client, user, code_client, clock):
    # UC-06: locking clears the count: the next lockout needs N new wrong codes.
    for _ in range(3):
        ask(client, *code_client, user_code="guess")
    clock.advance(900)
    for _ in range(2):
        assert error_of(ask(client, *code_client, user_code="guess")) == "invalid_user_code"
    ok(ask(client, *code_client, user_code="code-alice"))
    ask(client, *code_client, user_code="guess")
    assert abuse.is_locked(user)


def test_failures_further_apart_than_the_window_do_not_lock(client, user, code_client, clock):
    # UC-06: wrong codes are remembered for USER_CODE_LOCKOUT seconds (at most twice that).
    ask(client, *code_client, user_code="guess")
    ask(client, *code_client, user_code="guess")
    clock.advance(2 * 900)
    ask(client, *code_client, user_code="guess")
    assert not abuse.is_locked(user)
    ok(ask(client, *code_client, user_code="code-alice"))


def test_failures_across_a_window_boundary_still_lock(client, user, code_client, clock):
    # UC-06: N wrong codes less than USER_CODE_LOCKOUT seconds apart always lock, even when they
    # straddle the end of a counting window.
    window = abuse.Window.at(abuse._user_digest(user), 900, clock())
    clock.now = window.end - 1
    ask(client, *code_client, user_code="guess")
    clock.now = window.end + 1
    ask(client, *code_client, user_code="guess")
    assert not abuse.is_locked(user)
    ask(client, *code_client, user_code="guess")
    assert abuse.is_locked(user)


def test_missing_code_is_not_a_failure(client, user, code_client):
    # UC-02: no user_code is missing_user_code and is not a guess.
    for _ in range(5):
        assert error_of(ask(client, *code_client)) == "missing_user_code"
    ok(ask(client, *code_client, user_code="code-alice"))


def test_lockout_none_switches_it_off(client, user, code_client, ciba_settings):
    # UC-03: USER_CODE_MAX_FAILURES = None: wrong codes are refused but never lock.
    ciba_settings.set(USER_CODE_MAX_FAILURES=None)
    for _ in range(10):
        assert error_of(ask(client, *code_client, user_code="guess")) == "invalid_user_code"
    ok(ask(client, *code_client, user_code="code-alice"))


def test_switching_the_lockout_off_lifts_existing_locks(client, user, code_client, ciba_settings):
    # UC-06: USER_CODE_MAX_FAILURES = None stops applying locks set before.
    for _ in range(3):
        ask(client, *code_client, user_code="guess")
    assert error_of(ask(client, *code_client, user_code="code-alice")) == "unknown_user_id"
    ciba_settings.set(USER_CODE_MAX_FAILURES=None)
    ok(ask(client, *code_client, user_code="code-alice"))


def test_unlock_user(client, user, code_client):
    # UC-06: an operator can lift a lockout (and the count) at once.
    for _ in range(3):
        ask(client, *code_client, user_code="guess")
    abuse.unlock_user(user)
    ok(ask(client, *code_client, user_code="code-alice"))
    ask(client, *code_client, user_code="guess")
    assert not abuse.is_locked(user)


def test_locked_requests_use_no_users_budget(client, user, code_client, ciba_settings, clock):
    # SEC-08: a locked user's refusals are not counted, so they never turn into access_denied
    # (which would tell a locked user from an unknown one).
    ciba_settings.set(USER_RATE_LIMIT=[4, 3600])
    for _ in range(3):
        ask(client, *code_client, user_code="guess")
    for _ in range(5):
        assert error_of(ask(client, *code_client, user_code="code-alice")) == "unknown_user_id"
    clock.advance(900)
    ok(ask(client, *code_client, user_code="code-alice"))


def test_lockout_is_logged_without_secrets(client, user, code_client, caplog):
    # SEC-10: the lockout is logged (WARNING, django_ciba.bc_authorize.abuse) with the user's pk and the
    # client_id, never the hint or the code.
    with caplog.at_level(logging.INFO, logger="django_ciba.bc_authorize.abuse"):
        for _ in range(3):
            ask(client, *code_client, user_code="guess-secret")
    records = [r for r in caplog.records if r.name == "django_ciba.bc_authorize.abuse"]
    [lockout] = [r for r in records if r.ciba_event == "user_code_lockout"]
    assert lockout.levelno == logging.WARNING
    assert lockout.ciba_user_pk == user.pk
    assert lockout.ciba_client_id == code_client[0].client_id
    for record in records:
        text = record.getMessage() + repr(record.ciba_detail)
        assert "guess-secret" not in text and "alice" not in text


# --------------------------------------------------------------------------------------------
# inactive users (AERR-04, SEC-08)


def test_inactive_user_is_an_unknown_user(client, user, poll_client, controls):
    # AERR-04 / SEC-08: a hint naming an inactive user is refused exactly like an unknown one.
    user.is_active = False
    user.save()
    unknown = ask(client, *poll_client, login_hint="nobody")
    as_unknown_user(ask(client, *poll_client), unknown)


# --------------------------------------------------------------------------------------------
# counters, cache keys, cost


def test_sequential_hits_stop_exactly_at_the_limit(controls, clock):
    # SEC-07: the counter counts every hit: exactly `limit` of 50 calls are within the limit.
    counts = [abuse.hit("test", "a" * 32, (20, 60), now=clock())[0] for _ in range(50)]
    assert counts == list(range(1, 51))
    assert sum(count <= 20 for count in counts) == 20


def test_concurrent_hits_lose_no_count(controls, clock):
    # SEC-07: add + incr are atomic: 8 threads x 25 hits yield every count from 1 to 200 once.
    counts: list[int] = []
    lock = threading.Lock()

    def worker():
        for _ in range(25):
            count = abuse.hit("test", "b" * 32, (100, 60), now=clock())[0]
            with lock:
                counts.append(count)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(counts) == list(range(1, 201))


def test_a_counter_evicted_between_add_and_incr_is_added_again(controls, clock):
    # SEC-07: incr on a missing key (expired or evicted just after add) retries the add.
    cache = caches["default"]
    real_incr = cache.incr
    calls = []

    def flaky_incr(key, delta=1, version=None):
        calls.append(key)
        if len(calls) == 1:
            cache.delete(key)
            raise ValueError("Key not found")
        return real_incr(key, delta, version)

    with mock.patch.object(cache, "incr", flaky_incr):
        assert abuse.hit("test", "c" * 32, (5, 60), now=clock())[0] == 1
    assert len(calls) == 2


def test_a_cache_that_stores_nothing_limits_nothing(client, user, poll_client, controls):
    # A DummyCache (check W064) keeps no count: requests are not refused (and not a 500).
    controls(CLIENT_RATE_LIMIT=[1, 60], USER_RATE_LIMIT=[1, 60], CACHE_ALIAS="nothing")
    caches_setting = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "nothing": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"},
    }
    with override_settings(CACHES=caches_setting):
        ok(ask(client, *poll_client))
        ok(ask(client, *poll_client))


def test_windows_are_spread_over_the_period(clock):
    # Windows end at a per-counter phase, not all at the same second.
    ends = {abuse.Window.at(abuse._digest("test", n), 60, 1_000_000.0).end for n in range(200)}
    assert len(ends) > 30


def test_cache_keys_show_no_hint_code_client_id_or_pk(client, user, code_client, ciba_settings):
    # SEC-10: the cache holds keyed hashes only: no login_hint, user_code, client_id or user pk.
    ciba_settings.set(CLIENT_RATE_LIMIT=[100, 60], USER_RATE_LIMIT=[100, 300])
    ok(ask(client, *code_client, user_code="code-alice"))
    for _ in range(3):
        ask(client, *code_client, user_code="secret-guess")
    # Django's locmem keys are ":<version>:<key>".
    keys = [key.split(":", 2)[2] for key in caches["default"]._cache if "ciba:abuse" in key]
    assert any(":lock:" in key for key in keys)
    assert any(":client:" in key for key in keys) and any(":user:" in key for key in keys)
    for key in keys:
        assert "alice" not in key and "guess" not in key and code_client[0].client_id not in key
        assert f":{user.pk}:" not in key and not key.endswith(f":{user.pk}")


def test_user_checks_cost_one_query(user, poll_client, controls, clock, django_assert_num_queries):
    # SEC-07: the pending cap, the report threshold and the unapproved-prompt counts are read in
    # one query; none when off.
    with django_assert_num_queries(0):
        abuse.check_user(poll_client[0], user)
    controls(
        MAX_PENDING_PER_USER=5,
        ABUSE_REPORT_LIMIT=[1, 86400],
        USER_RATE_LIMIT=[10, 300],
        UNAPPROVED_PROMPT_LIMIT=[10, 3600],
        UNAPPROVED_PROMPT_CEILING=[30, 3600],
    )
    with django_assert_num_queries(1):
        abuse.check_user(poll_client[0], user)
    with django_assert_num_queries(0):
        abuse.check_client(poll_client[0])


def test_errors_are_access_denied_403(clock):
    # VAL-08 / AERR-10: every refusal by policy is access_denied 403 (Retry-After when known);
    # the lockout is AERR-04 unknown_user_id, without Retry-After (SEC-08).
    for error_class in (
        abuse.ClientRateLimited,
        abuse.UserRateLimited,
        abuse.TooManyPending,
        abuse.ClientReported,
        abuse.PromptsNotApproved,
    ):
        error = error_class(retry_after=30)
        assert (error.status_code, error.payload["error"]) == (403, "access_denied")
        assert error.headers == {"Retry-After": "30"}
        assert DESCRIPTION_RE.match(error.payload["error_description"])
        assert error_class().headers == {}
    locked = abuse.LockedUser()
    assert (locked.status_code, locked.payload, locked.headers) == (
        400,
        {"error": "unknown_user_id", "error_description": "The hint does not identify a known user."},
        {},
    )


def test_a_counter_that_exists_is_counted_without_an_add(controls, clock):
    # SEC-07: every request after the first of a window costs the shared cache one incr, no add.
    cache = caches["default"]
    now = clock()
    abuse.hit("test", "d" * 32, (5, 60), now=now)
    with mock.patch.object(cache, "add", wraps=cache.add) as add:
        assert abuse.hit("test", "d" * 32, (5, 60), now=now)[0] == 2
    add.assert_not_called()
