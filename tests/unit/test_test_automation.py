"""The conformance suite's automated approval URL, ``CIBA["TEST_AUTOMATION"]`` (AD-05, AD-03, SEC-10).

The suite POSTs, without a body or credentials, to its configured URL with ``{auth_req_id}`` and
``{action}`` (``allow`` / ``deny``) substituted; django-ciba serves
``/o/ciba/test-automation/?secret=...&auth_req_id=...&action=...``. Outbound HTTP (ping and push
callbacks) is stubbed here; tests/integration/test_conformance_automation.py calls the served
example project over HTTP.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

import pytest
from django.urls import reverse

from django_ciba.approval import automation
from django_ciba.core import outbound
from django_ciba.core.log_redaction import RedactAutomationQuery
from django_ciba.models import AuthenticationRequest, RequestEvent
from django_ciba.testing import create_ciba_client, poll, start_request


SECRET = "s3cret-for-the-conformance-suite-0123456789"
ISSUER = "http://testserver/o"
ENDPOINT = "https://rp.example.com/ciba/cb"
URL = "/o/ciba/test-automation/"


@pytest.fixture(autouse=True)
def _debug_off(settings):
    """DEBUG off, as the test settings say (pinned: another module's override may leak DEBUG on).
    Requested first, so that ``settings`` is restored after ``ciba_settings``."""
    settings.DEBUG = False


def automation_url(secret: str = SECRET, **params: str) -> str:
    return f"{URL}?{urlencode({'secret': secret, **params})}"


@pytest.fixture
def enabled(ciba_settings):
    """Enabled on the test suite's deployment (DEBUG off, issuer http://testserver/o: it looks like
    production, so ALLOWED_ISSUER names it)."""
    ciba_settings.set(TEST_AUTOMATION={"ENABLED": True, "SECRET": SECRET, "ALLOWED_ISSUER": ISSUER})


@pytest.fixture
def started(client, user, poll_client):
    app, secret = poll_client
    auth_req_id, auth_request = start_request(client, app, secret, scope="openid", login_hint="alice")
    return app, secret, auth_req_id, auth_request


def call(client, auth_req_id: str, action: str, secret: str = SECRET):
    return client.post(automation_url(secret, auth_req_id=auth_req_id, action=action))


def test_the_url_is_the_one_documented():
    assert reverse("django_ciba:test-automation") == URL


# --- off, wrong secret, production: a plain 404 -------------------------------------------------


def test_off_by_default_the_url_is_a_404(client, started):
    # AD-05: opt-in only; the default settings serve nothing there.
    _, _, auth_req_id, auth_request = started
    response = call(client, auth_req_id, "allow")
    assert response.status_code == 404
    auth_request.refresh_from_db()
    assert auth_request.status == AuthenticationRequest.Status.PENDING


def test_a_wrong_secret_is_a_404_like_an_unknown_url(client, started, enabled):
    _, _, auth_req_id, auth_request = started
    unknown = client.post("/o/ciba/no-such-page/")
    for secret in ("", "wrong", SECRET[:-1], SECRET + "x", SECRET.upper()):
        response = call(client, auth_req_id, "allow", secret=secret)
        assert response.status_code == 404
        assert response.content == unknown.content  # nothing tells a wrong secret from no URL
        assert auth_req_id.encode() not in response.content
    # A missing or repeated secret as well.
    assert (
        client.post(f"{URL}?{urlencode({'auth_req_id': auth_req_id, 'action': 'allow'})}").status_code == 404
    )
    twice = f"{URL}?secret={SECRET}&secret={SECRET}&auth_req_id={auth_req_id}&action=allow"
    assert client.post(twice).status_code == 404
    auth_request.refresh_from_db()
    assert auth_request.status == AuthenticationRequest.Status.PENDING


def test_the_secret_is_compared_in_constant_time(monkeypatch, enabled):
    seen = []
    real = automation.hmac.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(automation.hmac, "compare_digest", spy)
    config = automation.available()
    assert config is not None
    assert automation.secret_matches(config, SECRET) is True
    assert automation.secret_matches(config, "guess") is False
    assert automation.secret_matches(config, None) is False
    assert seen == [(SECRET.encode(), SECRET.encode()), (b"guess", SECRET.encode())]


def test_production_like_deployment_answers_404(client, started, ciba_settings):
    # DEBUG off and a non-loopback issuer, without ALLOWED_ISSUER: refused at run time too (a WSGI
    # server runs no system checks).
    ciba_settings.set(TEST_AUTOMATION={"ENABLED": True, "SECRET": SECRET})
    _, _, auth_req_id, auth_request = started
    assert automation.looks_like_production()
    assert call(client, auth_req_id, "allow").status_code == 404
    ciba_settings.set(TEST_AUTOMATION={"ENABLED": True, "SECRET": SECRET, "ALLOWED_ISSUER": "https://x/o"})
    assert call(client, auth_req_id, "allow").status_code == 404
    auth_request.refresh_from_db()
    assert auth_request.status == AuthenticationRequest.Status.PENDING


def test_a_short_or_unsafe_secret_is_a_404(client, started, ciba_settings):
    _, _, auth_req_id, _ = started
    for secret in ("", "short", "x" * 31, "a/b" + "x" * 40, "ä" * 40):
        ciba_settings.set(TEST_AUTOMATION={"ENABLED": True, "SECRET": secret, "ALLOWED_ISSUER": ISSUER})
        assert call(client, auth_req_id, "allow", secret=secret).status_code == 404


def test_malformed_settings_are_a_404(client, started, ciba_settings):
    _, _, auth_req_id, _ = started
    ciba_settings.set(TEST_AUTOMATION={"ENABLED": "yes", "SECRET": SECRET, "ALLOWED_ISSUER": ISSUER})
    assert call(client, auth_req_id, "allow").status_code == 404


@pytest.mark.parametrize(
    ("debug", "issuer", "production"),
    [
        (False, "http://testserver/o", True),
        (False, "https://op.example.com/o", True),
        (False, None, True),
        (True, "https://op.example.com/o", False),
        (False, "http://127.0.0.1:8000/o", False),
        (False, "http://[::1]:8000/o", False),
        (False, "http://localhost:8000/o", False),
        (False, "https://op.localhost/o", False),
        (False, "https://127.example.com/o", True),
        (False, "http://[bad/o", True),
    ],
)
def test_the_production_rule(settings, debug, issuer, production):
    settings.DEBUG = debug
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": issuer}
    assert automation.looks_like_production() is production


def test_a_loopback_issuer_needs_no_allowed_issuer(settings, client, started, ciba_settings):
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "OIDC_ISS_ENDPOINT": "http://127.0.0.1:8000/o"}
    ciba_settings.set(TEST_AUTOMATION={"ENABLED": True, "SECRET": SECRET})
    _, _, auth_req_id, _ = started
    assert call(client, auth_req_id, "allow").status_code == 200


def test_debug_on_needs_no_allowed_issuer(settings, client, started, ciba_settings):
    settings.DEBUG = True
    ciba_settings.set(TEST_AUTOMATION={"ENABLED": True, "SECRET": SECRET})
    _, _, auth_req_id, _ = started
    assert call(client, auth_req_id, "deny").status_code == 200


# --- approve and deny as the suite does ----------------------------------------------------------


def test_allow_approves_and_the_client_gets_its_tokens(client, started, enabled):
    # AD-05 / AD-03: the suite's "allow"; the poll then gets tokens (TOK-01).
    app, secret, auth_req_id, auth_request = started
    response = client.post(
        automation_url(auth_req_id=auth_req_id, action="allow"), HTTP_ACCEPT="application/json"
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"status": "approved"}
    assert auth_req_id not in response.content.decode()
    auth_request.refresh_from_db()
    # Nobody authenticated: no acr, amr or auth_time (as an operator approval).
    assert (auth_request.acr, auth_request.amr, auth_request.auth_time) == ("", [], None)
    tokens = poll(client, app, secret, auth_req_id)
    assert tokens.status_code == 200
    assert {"access_token", "id_token"} <= tokens.json().keys()


def test_deny_denies_and_the_client_gets_access_denied(client, started, enabled):
    # AD-05 / AD-03 / TOK-15: the suite's "deny" (user-rejects-authentication).
    app, secret, auth_req_id, auth_request = started
    response = call(client, auth_req_id, "deny")
    assert response.status_code == 200
    assert response.json() == {"status": "denied"}
    answer = poll(client, app, secret, auth_req_id)
    assert answer.status_code == 400
    assert answer.json()["error"] == "access_denied"


def test_decisions_are_audited_as_test_automation(client, started, enabled):
    _, _, auth_req_id, auth_request = started
    call(client, auth_req_id, "allow")
    event = RequestEvent.objects.get(auth_request=auth_request, event="approved")
    assert event.actor == automation.ACTOR == "test-automation"
    assert auth_req_id not in str(event.detail)


def test_a_request_with_acr_values_is_approved_without_an_acr(client, user, poll_client, enabled):
    app, secret = poll_client
    auth_req_id, auth_request = start_request(
        client, app, secret, scope="openid", login_hint="alice", acr_values="urn:django-ciba:acr:mfa"
    )
    assert call(client, auth_req_id, "allow").status_code == 200
    auth_request.refresh_from_db()
    assert auth_request.status == AuthenticationRequest.Status.APPROVED
    assert auth_request.acr == ""


@pytest.fixture
def http(monkeypatch):
    calls = []

    def post_json(url, body, *, headers=None):
        calls.append({"url": url, "body": body, "headers": dict(headers or {})})
        return outbound.OutboundResponse(status=204, headers={})

    monkeypatch.setattr(outbound, "post_json", post_json)
    return calls


@pytest.mark.parametrize("action", ["allow", "deny"])
def test_ping_clients_are_pinged(client, user, enabled, http, django_capture_on_commit_callbacks, action):
    # PING-01: the decision is delivered as for any decision.
    app, secret = create_ciba_client("Ping RP", mode="ping", notification_endpoint=ENDPOINT)
    auth_req_id, _ = start_request(
        client, app, secret, scope="openid", login_hint="alice", client_notification_token="t" * 40
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert call(client, auth_req_id, action).status_code == 200
    [ping] = http
    assert ping["url"] == ENDPOINT
    assert json.loads(ping["body"]) == {"auth_req_id": auth_req_id}


def test_push_clients_get_their_tokens_pushed(
    client, user, enabled, http, django_capture_on_commit_callbacks
):
    # PUSH-01: an automated approval pushes the tokens.
    app, secret = create_ciba_client("Push RP", mode="push", notification_endpoint=ENDPOINT)
    auth_req_id, _ = start_request(
        client, app, secret, scope="openid", login_hint="alice", client_notification_token="t" * 40
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert call(client, auth_req_id, "allow").status_code == 200
    [pushed] = http
    assert pushed["url"] == ENDPOINT
    assert b"access_token" in pushed["body"] and b"id_token" in pushed["body"]


# --- bad input: JSON errors, never a 500 -----------------------------------------------------------


@pytest.mark.parametrize("action", ["", "approve", "ALLOW", "allow ", "denyx"])
def test_an_unknown_action_is_400(client, started, enabled, action):
    _, _, auth_req_id, auth_request = started
    response = call(client, auth_req_id, action)
    assert response.status_code == 400
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "action must be allow or deny.",
    }
    auth_request.refresh_from_db()
    assert auth_request.status == AuthenticationRequest.Status.PENDING


def test_missing_or_repeated_parameters_are_400(client, started, enabled):
    _, _, auth_req_id, _ = started
    assert client.post(automation_url(auth_req_id=auth_req_id)).status_code == 400
    assert client.post(automation_url(action="allow")).status_code == 400
    both = f"{URL}?secret={SECRET}&auth_req_id={auth_req_id}&auth_req_id=x&action=allow"
    response = client.post(both)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_an_unknown_auth_req_id_is_a_json_404(client, started, enabled):
    urls = [
        automation_url(auth_req_id=unknown, action="allow") for unknown in ("no-such-id", "x" * 5000, "é")
    ]
    urls.append(f"{URL}?secret={SECRET}&auth_req_id=%FF%FE%00&action=allow")  # not UTF-8
    for url in urls:
        response = client.post(url)
        assert response.status_code == 404
        assert response.json() == {
            "error": "not_found",
            "error_description": "No authentication request has that auth_req_id.",
        }


def test_a_finished_request_is_a_json_409(client, started, enabled):
    _, _, auth_req_id, _ = started
    assert call(client, auth_req_id, "deny").status_code == 200
    for action in ("allow", "deny"):
        response = call(client, auth_req_id, action)
        assert response.status_code == 409
        assert response.json()["error"] == "not_pending"


def test_an_expired_request_is_a_json_409(client, started, enabled):
    _, _, auth_req_id, auth_request = started
    AuthenticationRequest.objects.filter(pk=auth_request.pk).update(expires_at=auth_request.created_at)
    response = call(client, auth_req_id, "allow")
    assert response.status_code == 409
    assert response.json()["error"] == "expired"


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_other_methods_are_405_with_the_right_secret(client, started, enabled, method):
    _, _, auth_req_id, _ = started
    response = getattr(client, method)(automation_url(auth_req_id=auth_req_id, action="allow"))
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.json()["error"] == "invalid_request"


def test_no_csrf_token_is_needed(started, enabled):
    from django.test import Client

    _, _, auth_req_id, _ = started
    strict = Client(enforce_csrf_checks=True)
    assert call(strict, auth_req_id, "allow").status_code == 200


# --- SEC-10: neither the auth_req_id nor the secret is logged -----------------------------------


def test_nothing_logs_the_auth_req_id_or_the_secret(client, started, enabled, caplog):
    _, _, auth_req_id, _ = started
    caplog.set_level(logging.DEBUG)
    call(client, auth_req_id, "allow")  # 200
    call(client, auth_req_id, "allow")  # 409, logged by django.request
    call(client, auth_req_id, "bogus")  # 400
    call(client, "unknown-id", "allow")  # 404 JSON
    call(client, auth_req_id, "allow", secret="wrong")  # 404
    assert caplog.records
    # Every message and attribute of the records, except django.request's ``request`` object (the
    # caller's own request, whose URL a handler may render: see docs/testing.rst).
    text = "\n".join(
        record.getMessage() + repr({k: v for k, v in vars(record).items() if k != "request"})
        for record in caplog.records
    )
    assert auth_req_id not in text
    assert SECRET not in text


def test_the_development_servers_request_line_loses_the_query():
    # runserver logs '"%s" %s %s' with the request line on django.server.
    line = f"POST /o/ciba/test-automation/?secret={SECRET}&auth_req_id=abc&action=allow HTTP/1.1"
    record = logging.LogRecord(
        "django.server", logging.INFO, __file__, 1, '"%s" %s %s', (line, "200", "22"), None
    )
    assert RedactAutomationQuery().filter(record) is True
    assert record.getMessage() == '"POST /o/ciba/test-automation/?[redacted] HTTP/1.1" 200 22'
    other = logging.LogRecord(
        "django.server", logging.INFO, __file__, 1, '"%s" %s %s', ("GET /o/x?a=b", "200", "1"), None
    )
    RedactAutomationQuery().filter(other)
    assert other.getMessage() == '"GET /o/x?a=b" 200 1'


def test_the_filter_is_installed_on_the_development_servers_logger():
    assert any(isinstance(f, RedactAutomationQuery) for f in logging.getLogger("django.server").filters)
