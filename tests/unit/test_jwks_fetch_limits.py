"""Bounded jwks_uri fetching: unauthenticated traffic cannot drive outbound fetches (REG-07, BC-03, TOK-02).

A client assertion names its client before anything is verified, so a forged one decides which
``jwks_uri`` the OP needs. These tests show that fetches are bounded per URL and interval, that
failures are remembered with a growing backoff, that fetches are bounded in total and per process,
and that a legitimate key rotation still works once the interval has passed.
"""

from __future__ import annotations

import json
import threading
import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.cache import cache

from django_ciba.clients import keys as client_keys
from django_ciba.clients.keys import ClientJwtError, verify_client_jwt
from django_ciba.core import jwks_cache, outbound
from django_ciba.models import AuthMethod
from django_ciba.testing import FORM, client_assertion, create_ciba_client, make_client_key, sign_jwt


URI = "https://rp.example.com/jwks.json"
ALL = ["PS256", "ES256", "RS256"]
BC_URL = "/o/bc-authorize"
BC_AUD = "http://testserver/o/bc-authorize"
KEY, JWK = make_client_key("ES256", kid="es-1")
NEW_KEY, NEW_JWK = make_client_key("ES256", kid="es-2")
FORGER_KEY, _ = make_client_key("ES256", kid="forged")


class Publisher:
    """Stands in for ``outbound.get_document``: serves ``keys`` (or raises ``fail``), records calls."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = [JWK]
        self.fail: Exception | None = None
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.during: Any = None  # called while "fetching" (to simulate a concurrent request)

    def __call__(self, url: str, **kwargs: Any) -> bytes:
        self.calls.append((url, kwargs))
        if self.during is not None:
            during, self.during = self.during, None
            during()
        if self.fail is not None:
            raise self.fail
        return json.dumps({"keys": self.keys}).encode()


@pytest.fixture
def publisher(monkeypatch):
    stub = Publisher()
    monkeypatch.setattr(outbound, "get_document", stub)
    return stub


@pytest.fixture
def clock(monkeypatch):
    """Moves ``time.time`` forward (for the cache's expiry too): ``clock.advance(seconds)``."""
    real = time.time
    state = SimpleNamespace(offset=0.0)
    monkeypatch.setattr(time, "time", lambda: real() + state.offset)
    state.advance = lambda seconds: setattr(state, "offset", state.offset + seconds)
    return state


def holder(uri: str = URI) -> SimpleNamespace:
    return SimpleNamespace(jwks=None, jwks_uri=uri)


def forged(kid: str = "forged") -> str:
    return sign_jwt({}, FORGER_KEY, alg="ES256", kid=kid)


def good(key: Any = KEY, jwk: dict[str, Any] = JWK) -> str:
    return sign_jwt({}, key, alg="ES256", kid=jwk["kid"])


UNREACHABLE = outbound.TransportError("Outbound GET to https://rp.example.com failed: Timeout.")


# --------------------------------------------------------------------------------------------
# Per URL: one fetch per interval, whatever the traffic


def test_forged_jwts_with_unknown_kids_cause_one_fetch_per_interval(publisher, ciba_settings, clock):
    ciba_settings.set(JWKS_REFRESH_INTERVAL=30)
    for _ in range(20):
        with pytest.raises(ClientJwtError):
            verify_client_jwt(forged(), holder(), algorithms=ALL)
    assert len(publisher.calls) == 1
    clock.advance(31)
    for _ in range(20):
        with pytest.raises(ClientJwtError):
            verify_client_jwt(forged(), holder(), algorithms=ALL)
    assert len(publisher.calls) == 2  # one more refresh in the next interval, no more


def test_failing_url_is_fetched_once_and_the_failure_is_cached(publisher, ciba_settings):
    # Before: a failed fetch was not remembered, so every forged assertion fetched again.
    ciba_settings.set(JWKS_REFRESH_INTERVAL=0.001, JWKS_FAILURE_BACKOFF=60)
    publisher.fail = UNREACHABLE
    for _ in range(10):
        with pytest.raises(ClientJwtError, match="could not be fetched"):
            verify_client_jwt(forged(), holder(), algorithms=ALL)
    assert len(publisher.calls) == 1


def test_failures_back_off_exponentially_up_to_the_cap(publisher, ciba_settings, clock):
    ciba_settings.set(JWKS_REFRESH_INTERVAL=1, JWKS_FAILURE_BACKOFF=10, JWKS_FAILURE_MAX_BACKOFF=40)
    publisher.fail = UNREACHABLE
    attempts_at = []
    for second in range(0, 200):
        before = len(publisher.calls)
        with pytest.raises(ClientJwtError):
            client_keys.fetch_jwks(URI)
        if len(publisher.calls) > before:
            attempts_at.append(second)
        clock.advance(1)
    # waits of 10, 20, 40, then 40 (the cap) seconds between attempts
    assert attempts_at[:5] == [0, 10, 30, 70, 110]


def test_success_after_a_failure_clears_the_backoff(publisher, ciba_settings, clock):
    ciba_settings.set(JWKS_REFRESH_INTERVAL=1, JWKS_FAILURE_BACKOFF=10)
    publisher.fail = UNREACHABLE
    with pytest.raises(ClientJwtError):
        client_keys.fetch_jwks(URI)
    publisher.fail = None
    clock.advance(5)
    with pytest.raises(ClientJwtError, match="next attempt"):
        client_keys.fetch_jwks(URI)
    assert len(publisher.calls) == 1
    clock.advance(6)
    assert client_keys.fetch_jwks(URI)[0].key_id == "es-1"
    assert len(publisher.calls) == 2
    assert cache.get(jwks_cache.FAILURE_PREFIX + jwks_cache._digest(URI)) is None


def test_a_failed_refresh_keeps_the_cached_set_in_use(publisher, ciba_settings, clock):
    ciba_settings.set(JWKS_REFRESH_INTERVAL=1, JWKS_FAILURE_BACKOFF=60)
    verify_client_jwt(good(), holder(), algorithms=ALL)
    publisher.fail = UNREACHABLE
    clock.advance(2)
    with pytest.raises(ClientJwtError):
        verify_client_jwt(forged(), holder(), algorithms=ALL)  # unknown kid: one refresh, fails
    calls = len(publisher.calls)
    clock.advance(2)
    for _ in range(5):
        verify_client_jwt(good(), holder(), algorithms=ALL)  # the cached set still verifies
        with pytest.raises(ClientJwtError):
            verify_client_jwt(forged(), holder(), algorithms=ALL)
    assert len(publisher.calls) == calls  # backing off: no refresh


def test_a_fetch_in_progress_elsewhere_is_not_repeated(publisher, ciba_settings):
    # Another worker holds the gate (it is fetching now, and does not finish in time): this one
    # waits about as long as a fetch may take, then is refused without fetching as well.
    ciba_settings.set(JWKS_REFRESH_INTERVAL=30, JWKS_FETCH_TIMEOUT=0.2)
    assert cache.add(jwks_cache.GATE_PREFIX + jwks_cache._digest(URI), 1, timeout=30)
    started = time.monotonic()
    with pytest.raises(ClientJwtError, match="being fetched"):
        verify_client_jwt(good(), holder(), algorithms=ALL)
    assert publisher.calls == []
    assert 0.2 <= time.monotonic() - started < 0.2 + jwks_cache.AWAIT_SLACK + 1


def test_concurrent_first_requests_wait_for_the_fetch_under_way(publisher, ciba_settings):
    # A client's first requests arrive together on a cold cache: one fetches, the others wait for
    # its set instead of being refused (a legitimate client is not turned away), and fetch nothing.
    ciba_settings.set(JWKS_REFRESH_INTERVAL=30, JWKS_FETCH_TIMEOUT=2)
    assert cache.add(jwks_cache.GATE_PREFIX + jwks_cache._digest(URI), 1, timeout=30)
    entry = {"document": {"keys": [JWK]}, "fetched": time.time()}
    finisher = threading.Timer(
        0.2, lambda: cache.set(jwks_cache.DOCUMENT_PREFIX + jwks_cache._digest(URI), entry)
    )
    finisher.start()
    try:
        header, _claims = verify_client_jwt(good(), holder(), algorithms=ALL)
    finally:
        finisher.join()
    assert header["kid"] == "es-1"
    assert publisher.calls == []


def test_waiting_ends_at_once_when_the_fetch_under_way_fails(publisher, ciba_settings):
    ciba_settings.set(JWKS_REFRESH_INTERVAL=30, JWKS_FETCH_TIMEOUT=5)
    assert cache.add(jwks_cache.GATE_PREFIX + jwks_cache._digest(URI), 1, timeout=30)
    failure = {"failures": 1, "retry_at": time.time() + 60}
    failer = threading.Timer(
        0.1, lambda: cache.set(jwks_cache.FAILURE_PREFIX + jwks_cache._digest(URI), failure)
    )
    failer.start()
    started = time.monotonic()
    try:
        with pytest.raises(ClientJwtError):
            verify_client_jwt(good(), holder(), algorithms=ALL)
    finally:
        failer.join()
    assert time.monotonic() - started < 2
    assert publisher.calls == []


def test_key_rotation_works_once_the_interval_has_passed(publisher, ciba_settings, clock):
    ciba_settings.set(JWKS_REFRESH_INTERVAL=30)
    verify_client_jwt(good(), holder(), algorithms=ALL)
    publisher.keys = [NEW_JWK]  # the client rotates its key
    clock.advance(31)
    header, _claims = verify_client_jwt(good(NEW_KEY, NEW_JWK), holder(), algorithms=ALL)
    assert header["kid"] == "es-2"
    assert len(publisher.calls) == 2


def test_fetches_use_the_short_jwks_timeout(publisher, ciba_settings):
    ciba_settings.set(JWKS_FETCH_TIMEOUT=1.5)
    client_keys.fetch_jwks(URI)
    assert publisher.calls == [(URI, {"max_bytes": 65536, "timeout": 1.5})]


# --------------------------------------------------------------------------------------------
# In total: JWKS_FETCH_LIMIT per window, JWKS_MAX_CONCURRENT_FETCHES per process


def test_fetch_limit_bounds_fetches_across_urls(publisher, ciba_settings, clock):
    ciba_settings.set(JWKS_FETCH_LIMIT=[3, 60])
    urls = [f"https://rp{number}.example.com/jwks.json" for number in range(6)]
    refused = []
    for url in urls:
        try:
            client_keys.fetch_jwks(url)
        except ClientJwtError as exc:
            refused.append(str(exc))
    assert len(publisher.calls) == 3
    assert len(refused) == 3 and all("JWKS_FETCH_LIMIT" in message for message in refused)
    clock.advance(121)  # a new window
    client_keys.fetch_jwks(urls[5])
    assert len(publisher.calls) == 4


def test_fetch_limit_none_is_unlimited(publisher, ciba_settings):
    ciba_settings.set(JWKS_FETCH_LIMIT=None)
    for number in range(70):
        client_keys.fetch_jwks(f"https://rp{number}.example.com/jwks.json")
    assert len(publisher.calls) == 70


def test_concurrent_fetches_in_one_process_are_bounded(publisher, ciba_settings):
    ciba_settings.set(JWKS_MAX_CONCURRENT_FETCHES=1)
    refusals = []

    def second_request():
        try:
            client_keys.fetch_jwks("https://other.example.com/jwks.json")
        except ClientJwtError as exc:
            refusals.append(str(exc))

    publisher.during = second_request  # arrives while the first fetch runs
    client_keys.fetch_jwks(URI)
    assert refusals and "at once" in refusals[0]
    assert [url for url, _ in publisher.calls] == [URI]
    client_keys.fetch_jwks("https://other.example.com/jwks.json")  # free again afterwards
    assert len(publisher.calls) == 2


# --------------------------------------------------------------------------------------------
# Through the endpoint: forged client assertions are invalid_client and fetch at most once


def post(http: Any, fields: dict[str, str]) -> Any:
    data = {"scope": "openid", "login_hint": "alice", **fields}
    return http.post(BC_URL, data=urlencode(data), content_type=FORM)


@pytest.mark.django_db
def test_forged_assertions_at_bc_authorize_fetch_an_unreachable_jwks_uri_once(
    client, user, publisher, ciba_settings
):
    # The finding: each forged assertion naming the client made the OP fetch its jwks_uri.
    ciba_settings.set(JWKS_FAILURE_BACKOFF=60)
    app, _ = create_ciba_client("Remote keys", auth_method=AuthMethod.PRIVATE_KEY_JWT, jwks_uri=URI)
    publisher.fail = UNREACHABLE
    for _ in range(10):
        response = post(client, client_assertion(app, FORGER_KEY, audience=BC_AUD, alg="ES256", kid="x"))
        assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    assert len(publisher.calls) == 1


@pytest.mark.django_db
def test_exhausted_fetch_limit_is_invalid_client_and_cached_clients_still_work(
    client, user, publisher, ciba_settings
):
    ciba_settings.set(JWKS_FETCH_LIMIT=[1, 3600])
    first, _ = create_ciba_client("First", auth_method=AuthMethod.PRIVATE_KEY_JWT, jwks_uri=URI)
    second, _ = create_ciba_client(
        "Second", auth_method=AuthMethod.PRIVATE_KEY_JWT, jwks_uri="https://rp2.example.com/jwks.json"
    )
    fields = client_assertion(first, KEY, audience=BC_AUD, alg="ES256", kid="es-1")
    assert post(client, fields).status_code == 200
    response = post(client, client_assertion(second, KEY, audience=BC_AUD, alg="ES256", kid="es-1"))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")
    assert len(publisher.calls) == 1
    fields = client_assertion(first, KEY, audience=BC_AUD, alg="ES256", kid="es-1")
    assert post(client, fields).status_code == 200  # its set is cached: no fetch needed


# --------------------------------------------------------------------------------------------
# System checks E085-E089


@pytest.mark.parametrize(
    "settings, check_id",
    [
        ({"JWKS_FETCH_TIMEOUT": 0}, "django_ciba.E085"),
        ({"JWKS_FETCH_TIMEOUT": "3"}, "django_ciba.E085"),
        ({"JWKS_FAILURE_BACKOFF": -1}, "django_ciba.E086"),
        ({"JWKS_FAILURE_MAX_BACKOFF": None}, "django_ciba.E079"),
        ({"JWKS_FAILURE_BACKOFF": 700, "JWKS_FAILURE_MAX_BACKOFF": 600}, "django_ciba.E087"),
        ({"JWKS_FETCH_LIMIT": [60]}, "django_ciba.E088"),
        ({"JWKS_FETCH_LIMIT": [0, 60]}, "django_ciba.E088"),
        ({"JWKS_FETCH_LIMIT": "60/60"}, "django_ciba.E088"),
        ({"JWKS_MAX_CONCURRENT_FETCHES": 0}, "django_ciba.E089"),
        ({"JWKS_MAX_CONCURRENT_FETCHES": 2.5}, "django_ciba.E089"),
    ],
)
def test_bad_fetch_settings_are_reported(ciba_settings, settings, check_id):
    from django_ciba.checks.clients import check_jwks_fetch_settings

    ciba_settings.set(**settings)
    assert [message.id for message in check_jwks_fetch_settings()] == [check_id]


def test_default_fetch_settings_pass_the_checks():
    from django_ciba.checks.clients import check_jwks_fetch_settings

    assert check_jwks_fetch_settings() == []
