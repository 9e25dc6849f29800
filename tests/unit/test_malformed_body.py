"""Form bodies that cannot be read: 400 ``invalid_request`` JSON at every endpoint, DEBUG on or off.

A form body declared in a charset other than UTF-8 made Django raise ``BadRequest`` wherever
``request.POST`` was read; with ``DEBUG`` on, Django's error page read ``request.POST`` again
and the 400 became a 500 (DOT's introspection, revocation and userinfo views, the CSRF check of
the approval pages). :class:`~django_ciba.middleware.MalformedBodyMiddleware` refuses such bodies
before anything reads them (BC-02, TOK-15, AERR-01).

The test client re-raises an exception that escapes Django's handler even with
``raise_request_exception`` off (a WSGI server would send a 500): :func:`observe` turns it into the
500 a client would see. The example project as shipped (DEBUG on), in its own process, is
tests/system/test_example_project.py.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from django.test import Client, override_settings
from oauth2_provider.models import AccessToken

from django_ciba import middleware
from django_ciba.approval import decisions
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.models import AuthenticationRequest
from django_ciba.testing import FORM, basic_auth, create_auth_request, start_request


# utf8 and Utf_8 name UTF-8 too, but Django refuses every name other than "utf-8" for form bodies.
CHARSETS = ["utf-16", "utf-32", "latin-1", "iso-8859-15", "bogus", "utf-16le", "utf8", "Utf_8"]


class Observed:
    """What a client of a WSGI server would receive: the response, or a 500 for an exception."""

    def __init__(self, response=None) -> None:
        self.response = response
        self.status_code = 500 if response is None else response.status_code

    def error_json(self) -> dict:
        assert self.response is not None, "a 500: the exception escaped Django's handler"
        assert self.response["Content-Type"].startswith("application/json"), self.response["Content-Type"]
        return json.loads(self.response.content)


def observe(http: Client, path: str, body: bytes, content_type: str, **headers) -> Observed:
    try:
        return Observed(http.generic("POST", path, body, content_type=content_type, **headers))
    except Exception:  # noqa: BLE001 - the server would answer 500, which is what is asserted
        return Observed(None)


def encode(form: dict[str, str], charset: str) -> bytes:
    try:
        return urlencode(form).encode(charset)
    except LookupError:
        return urlencode(form).encode("utf-8")


@pytest.fixture
def http():
    # enforce_csrf_checks: the CSRF check reads request.POST, as in production.
    client = Client(enforce_csrf_checks=True)
    client.raise_request_exception = False
    return client


@pytest.fixture
def endpoints(db, user, poll_client):
    """Each POST endpoint with a body it would otherwise act on, and the headers it needs."""
    app, secret = poll_client
    auth_req_id, auth_request = start_request(Client(), app, secret, scope="openid", login_hint="alice")
    decisions.approve(auth_request, user=user)
    pending = create_auth_request(app, user)
    basic = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    return {
        "bc-authorize": ("/o/bc-authorize", {"scope": "openid", "login_hint": "alice"}, basic),
        "token (CIBA)": ("/o/token/", {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}, basic),
        "token (client_credentials)": ("/o/token/", {"grant_type": "client_credentials"}, basic),
        "register": ("/o/register", {"client_name": "x"}, {}),
        "introspect": ("/o/introspect/", {"token": "x"}, basic),
        "revoke": ("/o/revoke_token/", {"token": "x"}, basic),
        "userinfo": ("/o/userinfo/", {"access_token": "x"}, {}),
        "device api": (f"/o/ciba/device/requests/{pending.pk}/approve/", {"acr": "x"}, {}),
        "approval page": (f"/o/ciba/requests/{pending.pk}/", {"decision": "approve"}, {}),
        "authorize": ("/o/authorize/", {"allow": "Authorize"}, {}),
    }


ENDPOINT_NAMES = [
    "bc-authorize",
    "token (CIBA)",
    "token (client_credentials)",
    "register",
    "introspect",
    "revoke",
    "userinfo",
    "device api",
    "approval page",
    "authorize",
]


@pytest.mark.django_db
@pytest.mark.parametrize("debug", [True, False], ids=["DEBUG", "no-DEBUG"])
@pytest.mark.parametrize("charset", CHARSETS)
@pytest.mark.parametrize("name", ENDPOINT_NAMES)
def test_bc02_tok15_form_in_another_charset_is_invalid_request_everywhere(
    http, user, endpoints, name, charset, debug
):
    path, form, headers = endpoints[name]
    http.force_login(user)  # the approval pages and the device API would act for alice
    with override_settings(DEBUG=debug):
        observed = observe(http, path, encode(form, charset), f"{FORM}; charset={charset}", **headers)
    assert observed.status_code == 400, observed.response and observed.response.content[:300]
    assert observed.error_json()["error"] == "invalid_request"
    assert observed.response["Cache-Control"] == "no-store"
    assert not AccessToken.objects.exists()
    assert AuthenticationRequest.objects.filter(status=AuthenticationRequest.Status.APPROVED).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("charset", ["UTF-8", "utf-8", '"utf-8"', "Utf-8"])
def test_bc02_utf8_spelled_any_way_is_accepted(http, user, poll_client, charset):
    app, secret = poll_client
    auth_req_id, auth_request = start_request(Client(), app, secret, scope="openid", login_hint="alice")
    decisions.approve(auth_request, user=user)
    body = urlencode({"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}).encode()
    observed = observe(
        http,
        "/o/token/",
        body,
        f"{FORM}; charset={charset}",
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert observed.status_code == 200, observed.response.content
    assert observed.response.json()["access_token"]


@pytest.mark.django_db
def test_other_content_types_with_a_charset_are_left_to_the_views(http):
    # JSON is the registration endpoint's business (RFC 7591): the middleware only knows forms.
    observed = observe(http, "/o/register", "{}".encode("utf-16"), "application/json; charset=utf-16")
    assert 400 <= observed.status_code < 500
    assert observed.error_json()["error"]


@pytest.mark.django_db
def test_a_browser_gets_an_html_page(http):
    observed = observe(
        http,
        "/o/ciba/requests/1/",
        "decision=approve".encode("utf-16"),
        f"{FORM}; charset=utf-16",
        HTTP_ACCEPT="text/html,application/xhtml+xml;q=0.9",
    )
    assert observed.status_code == 400
    assert observed.response["Content-Type"].startswith("text/html")


@pytest.mark.django_db
def test_without_the_middleware_debug_turned_the_400_into_a_500(http, settings):
    # Why the middleware exists (and what W090 warns about): DOT's userinfo view reads the form.
    # Both through the settings fixture, which restores them (override_settings combined with it
    # left DEBUG on for the modules after this one).
    settings.DEBUG = True
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != middleware.MALFORMED_BODY_MIDDLEWARE_PATH]
    observed = observe(http, "/o/userinfo/", "access_token=x".encode("utf-16"), f"{FORM}; charset=utf-16")
    assert observed.status_code == 500


def test_w090_when_not_installed(settings):
    from django_ciba.checks.settings import check_middleware

    assert check_middleware() == []
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if m != middleware.MALFORMED_BODY_MIDDLEWARE_PATH]
    assert [m.id for m in check_middleware()] == ["django_ciba.W090"]


class CustomBodyMiddleware(middleware.MalformedBodyMiddleware):
    """A project's own subclass counts as installed."""


def test_w090_silent_for_a_subclass(settings):
    from django_ciba.checks.settings import check_middleware

    settings.MIDDLEWARE = [
        "tests.unit.test_malformed_body.CustomBodyMiddleware"
        if m == middleware.MALFORMED_BODY_MIDDLEWARE_PATH
        else m
        for m in settings.MIDDLEWARE
    ]
    assert check_middleware() == []
