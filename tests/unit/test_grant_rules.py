"""A client's CIBA registration governs every grant it uses at DOT's token endpoint, not only CIBA.

* Disabled registration (TOK-04, AERR-05, RFC 6749 §5.2): the client still authenticates with its
  registered method (REG-07) and is then refused with ``unauthorized_client`` by every grant
  (CIBA, refresh_token, client_credentials, password, authorization_code, the authorization
  endpoint) and by bc-authorize; its access tokens stop validating (userinfo, introspection) and
  push minting stops, until the registration is enabled again.
* Registered ``scope`` (AERR-02): enforced with ``invalid_scope`` for client_credentials, password,
  the authorization endpoint, refresh (after the operator narrowed it), the CIBA grant at the
  token endpoint and push minting.

Every request goes through the real endpoints (Django test client), nothing is stubbed but the
outbound push POST.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.utils import timezone
from oauth2_provider.models import AccessToken, Grant, RefreshToken, get_application_model

from django_ciba import signals
from django_ciba.approval import decisions
from django_ciba.bc_authorize import service as backchannel
from django_ciba.core import outbound
from django_ciba.models import AuthenticationRequest, CibaClient
from django_ciba.testing import FORM, basic_auth, bc_authorize, create_ciba_client, poll, start_request


TOKEN_URL = "/o/token/"
REDIRECT_URI = "https://rp.example.com/cb"
Status = AuthenticationRequest.Status


def post_token(http, data, app, secret):
    return http.post(
        TOKEN_URL,
        data=urlencode(data),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )


def assert_error(response, error, status=400):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"] == error


def set_registration(app, **fields) -> None:
    CibaClient.objects.filter(application=app).update(**fields)


def disable(app) -> None:
    set_registration(app, enabled=False)


def registered_app(grant_type: str, *, scope: str = ""):
    """A confidential application of ``grant_type`` with a CIBA registration."""
    app, secret = create_ciba_client(f"RP {grant_type}", scope=scope)
    type(app).objects.filter(pk=app.pk).update(
        authorization_grant_type=grant_type, redirect_uris=REDIRECT_URI
    )
    app.refresh_from_db()
    return app, secret


def issue_tokens(http, app, secret, user, scope="openid offline_access"):
    auth_req_id, auth_request = start_request(http, app, secret, scope=scope, login_hint="alice")
    decisions.approve(auth_request, user=user)
    response = poll(http, app, secret, auth_req_id)
    assert response.status_code == 200, response.content
    return response.json()


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


# --------------------------------------------------------------------------------------------
# 2c: a disabled registration gets nothing from any grant


@pytest.mark.django_db
def test_tok04_disabled_client_is_refused_the_ciba_grant_and_its_request_stays_unspent(client, user):
    app, secret = create_ciba_client("RP")
    auth_req_id, auth_request = start_request(client, app, secret, scope="openid", login_hint="alice")
    decisions.approve(auth_request, user=user)
    disable(app)
    assert_error(poll(client, app, secret, auth_req_id), "unauthorized_client")
    assert not AccessToken.objects.exists()
    auth_request.refresh_from_db()
    assert auth_request.status == Status.APPROVED


@pytest.mark.django_db
def test_aerr05_disabled_client_is_refused_at_bc_authorize(client, user):
    app, secret = create_ciba_client("RP")
    disable(app)
    response = bc_authorize(client, app, secret, scope="openid", login_hint="alice")
    assert_error(response, "unauthorized_client")
    assert not AuthenticationRequest.objects.exists()


@pytest.mark.django_db
def test_tok04_disabled_client_refresh_tokens_are_refused_until_enabled_again(client, user):
    app, secret = create_ciba_client("RP")
    refresh_token = issue_tokens(client, app, secret, user)["refresh_token"]
    disable(app)
    response = post_token(
        client, {"grant_type": "refresh_token", "refresh_token": refresh_token}, app, secret
    )
    assert_error(response, "unauthorized_client")
    assert AccessToken.objects.count() == 1  # nothing new minted
    set_registration(app, enabled=True)
    response = post_token(
        client, {"grant_type": "refresh_token", "refresh_token": refresh_token}, app, secret
    )
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_tok04_disabled_client_is_refused_client_credentials_although_not_ciba_only(client):
    app, secret = create_ciba_client("RP", ciba_only=False)
    assert post_token(client, {"grant_type": "client_credentials"}, app, secret).status_code == 200
    disable(app)
    response = post_token(client, {"grant_type": "client_credentials"}, app, secret)
    assert_error(response, "unauthorized_client")
    assert AccessToken.objects.count() == 1


@pytest.mark.django_db
def test_ciba_only_still_refuses_client_credentials_when_disabled_or_enabled(client):
    app, secret = create_ciba_client("RP", ciba_only=True)
    assert_error(post_token(client, {"grant_type": "client_credentials"}, app, secret), "unauthorized_client")
    disable(app)
    assert_error(post_token(client, {"grant_type": "client_credentials"}, app, secret), "unauthorized_client")
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_tok04_disabled_client_is_refused_the_password_grant(client, user):
    app, secret = registered_app(get_application_model().GRANT_PASSWORD)
    data = {"grant_type": "password", "username": "alice", "password": "pw", "scope": "openid"}
    assert post_token(client, data, app, secret).status_code == 200
    disable(app)
    assert_error(post_token(client, data, app, secret), "unauthorized_client")
    assert AccessToken.objects.count() == 1


@pytest.mark.django_db
def test_tok04_disabled_client_is_refused_the_authorization_code_grant(client, user):
    app, secret = registered_app(get_application_model().GRANT_AUTHORIZATION_CODE)
    verifier, challenge = pkce()
    Grant.objects.create(
        application=app,
        user=user,
        code="the-code",
        expires=timezone.now() + timedelta(minutes=1),
        redirect_uri=REDIRECT_URI,
        scope="openid",
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    disable(app)
    data = {
        "grant_type": "authorization_code",
        "code": "the-code",
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    assert_error(post_token(client, data, app, secret), "unauthorized_client")
    assert not AccessToken.objects.exists()
    set_registration(app, enabled=True)  # the very same request works once enabled: only the gate
    assert post_token(client, data, app, secret).status_code == 200


def authorize(http, app, scope: str):
    _, challenge = pkce()
    query = {
        "response_type": "code",
        "client_id": app.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": scope,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    return http.get("/o/authorize/?" + urlencode(query))


def redirect_error(response) -> str | None:
    assert response.status_code == 302, (response.status_code, response.content[:300])
    return parse_qs(urlsplit(response["Location"]).query).get("error", [None])[0]


@pytest.mark.django_db
def test_disabled_client_is_refused_at_the_authorization_endpoint(client, user):
    app, _ = registered_app(get_application_model().GRANT_AUTHORIZATION_CODE)
    client.force_login(user)
    assert authorize(client, app, "openid").status_code == 200  # the consent page
    disable(app)
    assert redirect_error(authorize(client, app, "openid")) == "unauthorized_client"


@pytest.mark.django_db
def test_reg07_disabled_client_still_needs_its_registered_method(client):
    # Registered client_secret_basic: client_secret_post is invalid_client, enabled or not.
    app, secret = create_ciba_client("RP")
    disable(app)
    body = {"grant_type": "client_credentials", "client_id": app.client_id, "client_secret": secret}
    response = client.post(TOKEN_URL, data=urlencode(body), content_type=FORM)
    assert_error(response, "invalid_client", status=401)
    wrong = post_token(client, {"grant_type": "client_credentials"}, app, "wrong")
    assert_error(wrong, "invalid_client", status=401)


def introspect(http, token: str, app, secret):
    response = http.post(
        "/o/introspect/",
        data=urlencode({"token": token}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db
def test_disabled_client_access_tokens_are_inactive_and_refused_by_userinfo(client, user):
    app, secret = create_ciba_client("RP")
    access_token = issue_tokens(client, app, secret, user)["access_token"]
    resource_server, rs_secret = create_ciba_client("Resource server")
    assert introspect(client, access_token, resource_server, rs_secret)["active"] is True
    disable(app)
    assert introspect(client, access_token, resource_server, rs_secret) == {"active": False}
    userinfo = client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {access_token}")
    assert userinfo.status_code == 401
    assert "invalid_token" in userinfo["WWW-Authenticate"]
    set_registration(app, enabled=True)
    assert introspect(client, access_token, resource_server, rs_secret)["active"] is True
    assert client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {access_token}").status_code == 200


@pytest.mark.django_db
def test_application_without_registration_keeps_dots_rules(client):
    # No CibaClient row: DOT decides alone (nothing to disable, no registered scope).
    Application = get_application_model()
    secret = "plain-secret-" + "x" * 30
    app = Application.objects.create(
        name="Plain",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
        client_secret=secret,
        algorithm="RS256",
    )
    response = post_token(client, {"grant_type": "client_credentials", "scope": "payments"}, app, secret)
    assert response.status_code == 200, response.content


# --------------------------------------------------------------------------------------------
# 2d: the registered scope holds for every grant (invalid_scope)


@pytest.mark.django_db
def test_aerr02_client_credentials_within_the_registered_scope_only(client):
    app, secret = create_ciba_client("RP", scope="openid payments")
    ok = post_token(client, {"grant_type": "client_credentials", "scope": "payments"}, app, secret)
    assert ok.status_code == 200, ok.content
    wider = post_token(client, {"grant_type": "client_credentials", "scope": "payments email"}, app, secret)
    assert_error(wider, "invalid_scope")
    assert AccessToken.objects.count() == 1


@pytest.mark.django_db
def test_aerr02_password_grant_within_the_registered_scope_only(client, user):
    app, secret = registered_app(get_application_model().GRANT_PASSWORD, scope="openid")
    data = {"grant_type": "password", "username": "alice", "password": "pw", "scope": "openid profile"}
    assert_error(post_token(client, data, app, secret), "invalid_scope")
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_aerr02_authorization_endpoint_within_the_registered_scope_only(client, user):
    app, _ = registered_app(get_application_model().GRANT_AUTHORIZATION_CODE, scope="openid")
    client.force_login(user)
    assert authorize(client, app, "openid").status_code == 200
    assert redirect_error(authorize(client, app, "openid email")) == "invalid_scope"


@pytest.mark.django_db
def test_aerr02_refresh_after_the_registration_narrowed_needs_a_narrower_scope(client, user):
    # The operator narrows the registration: refreshing the old scopes is invalid_scope; asking
    # for scopes within the new registration still works (RFC 6749 §6 lets the client narrow).
    app, secret = create_ciba_client("RP", scope="openid profile offline_access")
    refresh_token = issue_tokens(client, app, secret, user, scope="openid profile offline_access")[
        "refresh_token"
    ]
    set_registration(app, scope="openid offline_access")
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    assert_error(post_token(client, data, app, secret), "invalid_scope")
    assert RefreshToken.objects.filter(revoked__isnull=True).count() == 1  # not rotated
    narrowed = post_token(client, {**data, "scope": "openid offline_access"}, app, secret)
    assert narrowed.status_code == 200, narrowed.content
    assert set(narrowed.json()["scope"].split()) == {"openid", "offline_access"}


@pytest.mark.django_db
def test_aerr02_ciba_grant_rechecks_the_registered_scope_at_token_time(client, user):
    app, secret = create_ciba_client("RP", scope="openid profile")
    auth_req_id, auth_request = start_request(client, app, secret, scope="openid profile", login_hint="alice")
    decisions.approve(auth_request, user=user)
    set_registration(app, scope="openid")
    response = poll(client, app, secret, auth_req_id)
    assert_error(response, "invalid_scope")
    assert not AccessToken.objects.exists()


@pytest.mark.django_db
def test_ciba_grant_within_the_registered_scope_still_mints(client, user):
    app, secret = create_ciba_client("RP", scope="openid profile")
    body = issue_tokens(client, app, secret, user, scope="openid profile")
    assert set(body["scope"].split()) == {"openid", "profile"}


# --------------------------------------------------------------------------------------------
# push minting follows the same rules (PERR-04: transaction_failed, no tokens)

PUSH_ENDPOINT = "https://rp.example.com/push"


@pytest.fixture
def pushes(monkeypatch):
    calls: list[bytes] = []

    def fake_post(url, body, *, headers=None):
        calls.append(body)
        return outbound.OutboundResponse(status=204)

    monkeypatch.setattr("django_ciba.core.outbound.post_json", fake_post)
    return calls


def approve_then(http, user, app, secret, change) -> AuthenticationRequest:
    """Approve a push request, apply ``change`` before the worker mints, then let it mint."""
    _, auth_request = start_request(
        http, app, secret, scope="openid profile", login_hint="alice", client_notification_token="n" * 32
    )
    AuthenticationRequest.objects.filter(pk=auth_request.pk).update(acknowledged_at=None)
    decisions.approve(auth_request, user=user)  # the push waits for the bc-authorize answer
    change()
    backchannel.acknowledge(auth_request)
    auth_request.refresh_from_db()
    return auth_request


@pytest.mark.django_db(transaction=True)
def test_perr04_push_after_the_registration_narrowed_mints_nothing(client, user, pushes):
    app, secret = create_ciba_client(
        "Push RP", mode="push", notification_endpoint=PUSH_ENDPOINT, scope="openid profile"
    )
    auth_request = approve_then(client, user, app, secret, lambda: set_registration(app, scope="openid"))
    assert not AccessToken.objects.exists()
    assert auth_request.status == Status.FAILED
    assert [b'"error":"transaction_failed"' in body for body in pushes] == [True]
    assert not any(b"access_token" in body for body in pushes)


@pytest.mark.django_db(transaction=True)
def test_push_for_a_client_disabled_after_approval_mints_nothing(client, user, pushes):
    # Not even minted and then revoked: the tokens_issued signal never fires.
    issued: list[dict] = []
    signals.tokens_issued.connect(lambda **kw: issued.append(kw), weak=False, dispatch_uid="grant-rules")
    app, secret = create_ciba_client("Push RP", mode="push", notification_endpoint=PUSH_ENDPOINT)
    try:
        auth_request = approve_then(client, user, app, secret, lambda: disable(app))
    finally:
        signals.tokens_issued.disconnect(dispatch_uid="grant-rules")
    assert issued == []
    assert not AccessToken.objects.exists()
    assert auth_request.status == Status.FAILED
    assert pushes == []  # a disabled client is not called back at all


@pytest.mark.django_db(transaction=True)
def test_push_within_the_registered_scope_still_mints(client, user, pushes):
    app, secret = create_ciba_client(
        "Push RP", mode="push", notification_endpoint=PUSH_ENDPOINT, scope="openid profile"
    )
    auth_request = approve_then(client, user, app, secret, lambda: None)
    assert auth_request.status == Status.CONSUMED
    assert AccessToken.objects.count() == 1
    assert any(b"access_token" in body for body in pushes)
