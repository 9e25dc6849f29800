"""A setting of the wrong type is a check error, and the endpoints serving under it answer 503
``temporarily_unavailable`` JSON, never Django's 500 page (django_ciba.checks.serving)."""

from __future__ import annotations

import pytest
from django.test import Client

from django_ciba.approval import decisions
from django_ciba.checks.serving import configuration_errors
from django_ciba.models import AuthenticationRequest
from django_ciba.testing import bc_authorize, poll, start_request


# Wrong-typed values of the settings read while answering bc-authorize, with the check that reports
# each. The limits (SEC-07) are the case first found: CLIENT_RATE_LIMIT = 120 was a 500 per request.
BC_AUTHORIZE = [
    ("CLIENT_RATE_LIMIT", 120, "E060"),
    ("USER_RATE_LIMIT", 120, "E108"),
    ("ABUSE_REPORT_LIMIT", "1/86400", "E109"),
    ("UNAPPROVED_PROMPT_LIMIT", 10, "E067"),
    ("UNAPPROVED_PROMPT_CEILING", [30], "E068"),
    ("MAX_PENDING_PER_CLIENT_USER", "3", "E066"),
    ("USER_CODE_LOCKOUT", "900", "E170"),
    ("DEFAULT_EXPIRES_IN", "300", "E140"),
    ("MAX_EXPIRES_IN", None, "E141"),
    ("INTERVAL", "5", "E012"),
    ("BINDING_MESSAGE_MAX_LENGTH", "128", "E142"),
    ("DELIVERY_MODES", "poll", "E016"),
    ("AUTH_REQ_ID_BYTES", "32", "E017"),
    ("USER_RESOLVERS", "django_ciba.resolvers.NoSuchResolver", "E018"),
    ("DECISION_POLICIES", ["django_ciba.policies.NoSuchPolicy"], "E110"),
    ("DECISION_POLICIES", "django_ciba.policies.PreAuthorizationPolicy", "E110"),
    ("SEALING_KEYS", "", "E025"),
    ("CACHE_ALIAS", "nowhere", "E063"),
    ("LIMITS", 120, "E182"),
]


@pytest.fixture
def served():
    return Client(raise_request_exception=False)


def assert_unavailable(response):
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    assert response["Retry-After"]
    assert response.json()["error"] == "temporarily_unavailable"


@pytest.mark.parametrize("name, value, check_id", BC_AUTHORIZE)
def test_bc_authorize_under_a_wrong_typed_setting_never_answers_500(
    ciba_settings, served, user, poll_client, caplog, name, value, check_id
):
    # SEC-07, VAL-09: the check reports the setting; a request served anyway is either answered as
    # usual (the value is not needed for it) or refused with 503 JSON, and no 500.
    ciba_settings.set(**{name: value})
    assert f"django_ciba.{check_id}" in configuration_errors()
    application, secret = poll_client
    response = bc_authorize(served, application, secret, login_hint="alice", scope="openid")
    assert response.status_code in (200, 503), response.content
    if response.status_code == 503:
        assert_unavailable(response)
        assert f"django_ciba.{check_id}" in caplog.text
        assert "run manage.py check" in caplog.text


@pytest.mark.parametrize("name, number", [("CLIENT_RATE_LIMIT", "E060"), ("USER_RATE_LIMIT", "E108")])
def test_wrong_typed_rate_limit_is_503_not_500(
    ciba_settings, served, user, poll_client, caplog, name, number
):
    # SEC-07: a limit of the wrong type fails closed (no auth_req_id is issued), as 503 JSON.
    ciba_settings.set(**{name: 120})
    application, secret = poll_client
    response = bc_authorize(served, application, secret, login_hint="alice", scope="openid")
    assert_unavailable(response)
    assert AuthenticationRequest.objects.count() == 0
    assert f"django_ciba.{number}" in caplog.text


# Settings read while answering a poll (TOK-*), with the check that reports each.
TOKEN = [
    ("INTERVAL", "5", "E012"),
    ("SLOW_DOWN_INCREMENT", "5", "E015"),
    ("REFRESH_TOKEN_SCOPE", ["offline_access"], None),
    ("SEALING_KEYS", "", "E025"),
    ("CACHE_ALIAS", "nowhere", "E063"),
    ("ACR_REQUIREMENTS", ["mfa"], "E081"),
]


@pytest.mark.parametrize("name, value, check_id", TOKEN)
@pytest.mark.parametrize("approved", [False, True])
def test_token_poll_under_a_wrong_typed_setting_never_answers_500(
    ciba_settings, served, user, poll_client, name, value, check_id, approved
):
    # TOK-12: polled pending and approved, under the wrong value: the usual answer or 503 JSON.
    application, secret = poll_client
    auth_req_id, auth_request = start_request(served, application, secret, login_hint="alice", scope="openid")
    if approved:
        decisions.approve(auth_request, user=user)
    ciba_settings.set(**{name: value})
    if check_id:
        assert f"django_ciba.{check_id}" in configuration_errors()
    response = poll(served, application, secret, auth_req_id)
    assert response.status_code in (200, 400, 503), response.content
    assert response["Content-Type"].startswith("application/json")
    if response.status_code == 503:
        assert_unavailable(response)


def test_discovery_under_a_wrong_typed_setting_never_answers_500(ciba_settings, served):
    # DISC-02: the document lists the delivery modes; an unusable value is 503 JSON, not a 500.
    ciba_settings.set(DELIVERY_MODES=5)
    response = served.get("/o/.well-known/openid-configuration")
    assert_unavailable(response)


def test_a_failure_with_valid_settings_is_left_to_django(served, user, poll_client, monkeypatch):
    # Valid settings: the failure is a bug, not a configuration problem; it is not disguised as a 503.
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("django_ciba.views.bc_authorize.start_authentication", broken)
    assert configuration_errors() == []
    application, secret = poll_client
    response = bc_authorize(served, application, secret, login_hint="alice", scope="openid")
    assert response.status_code == 500


def test_only_failures_become_503(ciba_settings, rf):
    # A 4xx answer (Http404, PermissionDenied...) and a database outage (the middleware's 503) are
    # left alone; any other exception under invalid settings is the 503.
    from django.core.exceptions import PermissionDenied
    from django.db import OperationalError
    from django.http import Http404

    from django_ciba.checks.serving import misconfigured_response

    ciba_settings.set(CLIENT_RATE_LIMIT=120)
    request = rf.post("/o/bc-authorize")
    for exc in (Http404(), PermissionDenied(), OperationalError()):
        assert misconfigured_response(request, exc) is None
    assert misconfigured_response(request, TypeError("'int' object is not subscriptable")).status_code == 503
