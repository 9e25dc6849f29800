"""DatabaseUnavailableMiddleware: a database outage is answered 503 ``temporarily_unavailable``.

The outage is stubbed: a function on each endpoint's path raises what Django raises when the
database is unreachable (``OperationalError`` / ``InterfaceError``). tests/integration/
test_database_restart.py restarts a real PostgreSQL under load.
"""

from __future__ import annotations

import hashlib
import json
import logging

import pytest
from django.core import checks
from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, connection
from django.test import Client, RequestFactory, override_settings
from oauth2_provider.models import AccessToken
from oauth2_provider.views import base as dot_views_base

from django_ciba import middleware
from django_ciba.approval import decisions
from django_ciba.checks.settings import check_middleware
from django_ciba.testing import basic_auth, create_auth_request, poll
from django_ciba.validators import OAuth2Validator
from django_ciba.views import bc_authorize as backchannel_view
from tests.unit.auth_requests import start


pytestmark = pytest.mark.django_db

# What a driver's message may carry: none of it may reach the client or the log.
LEAK = 'connection to server at "10.1.2.3", port 5432 failed: password=hunter2 SELECT "oauth2_provider"'
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def token_checksum(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def raising(exc: Exception):
    def fail(*args, **kwargs):
        raise exc

    return fail


def assert_unavailable_json(response) -> None:
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    assert response["Retry-After"] == str(middleware.RETRY_AFTER)
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {
        "error": "temporarily_unavailable",
        "error_description": middleware.DESCRIPTION,
    }
    assert_nothing_leaked(response)


def assert_nothing_leaked(response) -> None:
    text = response.content.decode()
    for fragment in ("Traceback", "hunter2", "10.1.2.3", "SELECT", "OperationalError", "InterfaceError"):
        assert fragment not in text


@pytest.fixture
def app(poll_client):
    return poll_client[0]


@pytest.fixture
def secret(poll_client):
    return poll_client[1]


def bc_authorize(client: Client, app, secret: str, **extra):
    return client.post(
        "/o/bc-authorize",
        data="scope=openid&login_hint=alice",
        content_type="application/x-www-form-urlencoded",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
        **extra,
    )


@pytest.mark.parametrize(
    "exc", [OperationalError(LEAK), InterfaceError(LEAK)], ids=lambda e: type(e).__name__
)
def test_bc_authorize(client, app, secret, user, monkeypatch, exc):
    monkeypatch.setattr(backchannel_view, "start_authentication", raising(exc))
    assert_unavailable_json(bc_authorize(client, app, secret))


def test_bc_authorize_is_json_even_for_a_browser(client, app, secret, user, monkeypatch):
    # A browser's Accept header on a JSON endpoint still gets HTML only when JSON is not accepted;
    # the protocol endpoints are called by clients, which accept JSON or */*.
    monkeypatch.setattr(backchannel_view, "start_authentication", raising(OperationalError(LEAK)))
    assert_unavailable_json(bc_authorize(client, app, secret, HTTP_ACCEPT="application/json"))
    assert_unavailable_json(bc_authorize(client, app, secret, HTTP_ACCEPT="*/*"))


def test_token_endpoint(client, app, secret, user, monkeypatch):
    monkeypatch.setattr(OAuth2Validator, "authenticate_client", raising(OperationalError(LEAK)))
    assert_unavailable_json(poll(client, app, secret, "some-auth-req-id"))


def test_device_api(client, user, monkeypatch):
    client.force_login(user)
    monkeypatch.setattr(decisions, "requests_for_user", raising(OperationalError(LEAK)))
    response = client.get("/o/ciba/device/requests/", HTTP_ACCEPT="application/json")
    assert_unavailable_json(response)


def test_device_api_approve(client, app, user, monkeypatch):
    auth_request = create_auth_request(app, user)
    client.force_login(user)
    monkeypatch.setattr(decisions, "approve", raising(InterfaceError(LEAK)))
    response = client.post(
        f"/o/ciba/device/requests/{auth_request.pk}/approve/", data={}, content_type="application/json"
    )
    assert_unavailable_json(response)


def test_approval_page_answers_html_to_a_browser(client, user, monkeypatch):
    client.force_login(user)
    monkeypatch.setattr(decisions, "requests_for_user", raising(OperationalError(LEAK)))
    response = client.get("/o/ciba/requests/", HTTP_ACCEPT=BROWSER_ACCEPT)
    assert response.status_code == 503
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Retry-After"] == str(middleware.RETRY_AFTER)
    assert response["Cache-Control"] == "no-store"
    assert b"Temporarily unavailable" in response.content
    assert_nothing_leaked(response)


def test_approval_page_answers_json_without_an_html_accept(client, user, monkeypatch):
    client.force_login(user)
    monkeypatch.setattr(decisions, "requests_for_user", raising(OperationalError(LEAK)))
    assert_unavailable_json(client.get("/o/ciba/requests/"))


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        ("", False),
        ("*/*", False),
        ("application/json", False),
        ("text/html", True),
        (BROWSER_ACCEPT, True),
        ("text/html, application/json", False),
        ("text/html, application/problem+json", False),
        ("text/*", False),
    ],
)
def test_wants_html(accept, html):
    request = RequestFactory().get("/", HTTP_ACCEPT=accept) if accept else RequestFactory().get("/")
    assert middleware.wants_html(request) is html


def test_one_log_line_with_the_class_only(client, app, secret, user, monkeypatch, caplog):
    monkeypatch.setattr(backchannel_view, "start_authentication", raising(OperationalError(LEAK)))
    with caplog.at_level(logging.DEBUG):
        bc_authorize(client, app, secret)
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in records] == ["django_ciba.middleware"]
    message = records[0].getMessage()
    assert "OperationalError" in message and "/o/bc-authorize" in message
    assert records[0].exc_info is None
    for record in caplog.records:
        assert "hunter2" not in record.getMessage() and "10.1.2.3" not in record.getMessage()


@pytest.mark.parametrize(
    "exc",
    [ValueError("boom"), IntegrityError("duplicate"), DatabaseError("other")],
    ids=lambda e: type(e).__name__,
)
def test_other_exceptions_are_left_alone(client, app, secret, user, monkeypatch, exc):
    monkeypatch.setattr(backchannel_view, "start_authentication", raising(exc))
    with pytest.raises(type(exc)):
        bc_authorize(client, app, secret)


def test_process_exception_returns_none_for_other_exceptions():
    instance = middleware.DatabaseUnavailableMiddleware(lambda request: None)  # type: ignore[arg-type,return-value]
    request = RequestFactory().get("/")
    assert instance.process_exception(request, KeyError("x")) is None
    response = instance.process_exception(request, OperationalError(LEAK))
    assert response is not None and response.status_code == 503
    assert json.loads(response.content)["error"] == "temporarily_unavailable"


# --- check W070 ----------------------------------------------------------------------------


class CustomMiddleware(middleware.DatabaseUnavailableMiddleware):
    """A project's own subclass counts as installed."""


def test_w070_when_not_installed(settings):
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != middleware.MIDDLEWARE_PATH]
    messages = check_middleware()
    assert [m.id for m in messages] == ["django_ciba.W070"]
    assert messages[0].level == checks.WARNING
    assert "django_ciba.W070" in [m.id for m in checks.run_checks()]


def test_w070_silent_when_installed_or_subclassed(settings):
    assert check_middleware() == []
    settings.MIDDLEWARE = [
        "tests.unit.test_middleware.CustomMiddleware" if m == middleware.MIDDLEWARE_PATH else m
        for m in settings.MIDDLEWARE
    ]
    assert check_middleware() == []


@override_settings(MIDDLEWARE=["no.such.Middleware"])
def test_w070_with_unimportable_middleware():
    assert [m.id for m in check_middleware()] == ["django_ciba.W070", "django_ciba.W090"]


# --- the token endpoint: tokens committed, then the database goes away ------------------------


class BrokenTokenModel:
    """Stands in for DOT's access-token model in the read-back that follows the token response."""

    class objects:  # noqa: N801 - mimics a model manager
        @staticmethod
        def get(**kwargs):
            raise OperationalError(LEAK)


def approved_request(client, app, secret, user):
    auth_req_id, auth_request = start(client, app, secret)
    decisions.approve(auth_request, user=user)
    return auth_req_id


@pytest.mark.django_db(transaction=True)
def test_issued_tokens_are_answered_when_the_database_fails_afterwards(
    client, app, secret, user, monkeypatch, caplog
):
    # DOT reads the new access token back (app_authorized) after the grant committed it; a failure
    # there must not turn issued tokens into a 503 (the retry would only get invalid_grant).
    auth_req_id = approved_request(client, app, secret, user)
    monkeypatch.setattr(dot_views_base, "get_access_token_model", lambda: BrokenTokenModel)
    with caplog.at_level(logging.WARNING):
        response = poll(client, app, secret, auth_req_id)
    assert response.status_code == 200, response.content
    body = response.json()
    assert {"access_token", "id_token", "token_type"} <= set(body)
    assert response["Cache-Control"] == "no-store"
    assert AccessToken.objects.filter(token_checksum=token_checksum(body["access_token"])).exists()
    assert [r.name for r in caplog.records if r.levelno >= logging.WARNING] == ["django_ciba.views.token"]
    monkeypatch.undo()
    assert poll(client, app, secret, auth_req_id).json()["error"] == "invalid_grant"  # spent, once


@pytest.mark.django_db(transaction=True)
def test_with_atomic_requests_the_failure_rolls_back_and_is_a_503(client, app, secret, user, monkeypatch):
    # ATOMIC_REQUESTS: the failure rolls the tokens back, so a 503 is right and a retry gets them.
    auth_req_id = approved_request(client, app, secret, user)
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    monkeypatch.setattr(dot_views_base, "get_access_token_model", lambda: BrokenTokenModel)
    assert_unavailable_json(poll(client, app, secret, auth_req_id))
    assert not AccessToken.objects.exists()
    monkeypatch.undo()
    response = poll(client, app, secret, auth_req_id)
    assert response.status_code == 200, response.content
    assert AccessToken.objects.count() == 1
