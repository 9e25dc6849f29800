"""Assurance of approvals: acr, amr and auth_time come from the server (IDT-04, AD-01, AD-04, TOK-11).

The approving session's sign-in (``AUTHENTICATION_CONTEXT``) decides ``amr`` and ``auth_time``;
``ACR_REQUIREMENTS`` turns them into an ``acr`` checked against the request's ``acr_values``; the
refresh grant repeats them (IDT-08, OIDC Core 12.2). See docs/security.rst, "Assurance".
"""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import urlencode

import jwt
import pytest
from django.test import Client
from django.utils import timezone

from django_ciba import assurance
from django_ciba.approval import decisions
from django_ciba.assurance import AuthenticationContext
from django_ciba.exceptions import InsufficientAssurance
from django_ciba.models import AuthenticationRequest, TokenAssurance
from django_ciba.policies import PreAuthorizationPolicy
from django_ciba.testing import FORM, basic_auth, poll
from tests.unit.auth_requests import start


MFA = "urn:django-ciba:acr:mfa"
PASSWORD = "urn:django-ciba:acr:password"
Status = AuthenticationRequest.Status


def approve_url(pk):
    return f"/o/ciba/device/requests/{pk}/approve/"


def page_url(pk):
    return f"/o/ciba/requests/{pk}/"


def claims_of(id_token):
    return jwt.decode(id_token, options={"verify_signature": False})


def sign_in(user, *, at=None, monkeypatch=None):
    """A browser signed in as ``user`` through Django's login (at ``at`` when given)."""
    browser = Client()
    if at is not None:
        monkeypatch.setattr(assurance, "timezone", SimpleNamespace(now=lambda: at))
    browser.force_login(user)
    if at is not None:
        monkeypatch.setattr(assurance, "timezone", timezone)
    return browser


class TOTPDevice:
    """Stands in for django_otp.plugins.otp_totp.models.TOTPDevice (matched by class name)."""


class YubikeyDevice:
    """Stands in for otp_yubikey's YubikeyDevice."""


def verified_otp_context(request, user):
    """An AUTHENTICATION_CONTEXT for tests: what django-otp's OTPMiddleware puts on a user who
    verified a TOTP device, then the shipped django-otp hook."""
    user.is_verified = lambda: True
    user.otp_device = TOTPDevice()
    return assurance.otp_session_context(request, user)


@pytest.fixture
def app_secret(poll_client):
    return poll_client


# --------------------------------------------------------------------------------------------
# The device API: acr and amr from the session, never from the browser


@pytest.mark.django_db
def test_password_session_cannot_approve_a_request_asking_for_mfa(client, user, app_secret):
    # IDT-04 / AD-01 / AD-04: a password-only session does not satisfy an MFA acr; nothing is
    # recorded and the device learns why (403 insufficient_assurance).
    app, secret = app_secret
    _, auth_request = start(client, app, secret, acr_values=MFA)
    browser = sign_in(user)
    response = browser.post(approve_url(auth_request.pk))
    assert response.status_code == 403, response.content
    assert response.json()["error"] == "insufficient_assurance"
    auth_request.refresh_from_db()
    assert auth_request.status == Status.PENDING
    assert (auth_request.acr, auth_request.amr, auth_request.auth_time) == ("", [], None)
    # Denying stays possible.
    assert browser.post(f"/o/ciba/device/requests/{auth_request.pk}/deny/").status_code == 200
    auth_request.refresh_from_db()
    assert auth_request.status == Status.DENIED


@pytest.mark.django_db
def test_password_session_gets_the_password_acr_and_pwd(client, user, app_secret):
    # IDT-04: without acr_values, the strongest acr the session satisfies; amr from the login.
    app, secret = app_secret
    _, auth_request = start(client, app, secret)
    response = sign_in(user).post(approve_url(auth_request.pk))
    assert response.status_code == 200, response.content
    auth_request.refresh_from_db()
    assert (auth_request.acr, auth_request.amr) == (PASSWORD, ["pwd"])


@pytest.mark.django_db
def test_password_session_satisfies_a_password_acr_among_the_requested(client, user, app_secret):
    # IDT-04 / BC-08: the acr is one of the requested values, in the client's order of preference.
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret, acr_values=f"{MFA} {PASSWORD}")
    assert sign_in(user).post(approve_url(auth_request.pk)).status_code == 200
    tokens = poll(client, app, secret, auth_req_id).json()
    claims = claims_of(tokens["id_token"])
    assert (claims["acr"], claims["amr"]) == (PASSWORD, ["pwd"])


@pytest.mark.django_db
def test_otp_verified_session_gets_the_mfa_acr(client, user, app_secret, ciba_settings):
    # IDT-04 / AD-04: the django-otp hook reports the verified second factor, so MFA is satisfied.
    ciba_settings.set(AUTHENTICATION_CONTEXT="tests.unit.test_assurance.verified_otp_context")
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret, acr_values=MFA)
    assert sign_in(user).post(approve_url(auth_request.pk)).status_code == 200
    claims = claims_of(poll(client, app, secret, auth_req_id).json()["id_token"])
    assert claims["acr"] == MFA
    assert claims["amr"] == ["pwd", "otp", "mfa"]


@pytest.mark.django_db
def test_acr_values_outside_acr_values_supported_are_never_satisfied(client, user, app_secret, ciba_settings):
    # IDT-04: only advertised values (ACR_VALUES_SUPPORTED) are issued.
    ciba_settings.set(ACR_VALUES_SUPPORTED=[MFA])
    app, secret = app_secret
    _, auth_request = start(client, app, secret, acr_values=PASSWORD)
    response = sign_in(user).post(approve_url(auth_request.pk))
    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_assurance"


@pytest.mark.django_db
def test_auth_time_is_the_sessions_login_not_the_click(client, user, app_secret, monkeypatch):
    # TOK-11 / OIDC Core 2: auth_time is when the user authenticated, recorded at login.
    user.last_login = timezone.now() - timedelta(days=2)
    user.save(update_fields=["last_login"])
    login_time = timezone.now().replace(microsecond=0) - timedelta(minutes=42)
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    browser = sign_in(user, at=login_time, monkeypatch=monkeypatch)
    assert browser.post(approve_url(auth_request.pk)).status_code == 200
    auth_request.refresh_from_db()
    assert auth_request.auth_time == login_time
    assert auth_request.decided_at - login_time >= timedelta(minutes=41)
    claims = claims_of(poll(client, app, secret, auth_req_id).json()["id_token"])
    assert claims["auth_time"] == int(login_time.timestamp())


@pytest.mark.django_db
def test_session_without_a_recorded_login_time_claims_none(client, user, app_secret):
    # TOK-11: a session opened before the login time was recorded has no known auth_time; it
    # is not replaced by last_login or the click.
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret)
    browser = sign_in(user)
    session = browser.session
    del session[assurance.SESSION_AUTH_TIME_KEY]
    session.save()
    assert browser.post(approve_url(auth_request.pk)).status_code == 200
    auth_request.refresh_from_db()
    assert auth_request.auth_time is None and auth_request.amr == ["pwd"]
    assert "auth_time" not in claims_of(poll(client, app, secret, auth_req_id).json()["id_token"])


# --------------------------------------------------------------------------------------------
# The approval page


@pytest.mark.django_db
def test_page_says_why_it_cannot_approve_and_does_not(client, user, app_secret):
    # IDT-04 / AD-04: the page tells the user what is needed instead of approving.
    app, secret = app_secret
    _, auth_request = start(client, app, secret, acr_values=MFA)
    browser = sign_in(user)
    posted = {"action": "approve", "scope": ["openid"], "acr": MFA, "amr": ["hwk", "mfa"]}
    response = browser.post(page_url(auth_request.pk), posted)
    assert response.status_code == 403
    page = response.content.decode()
    assert "needs a stronger sign-in" in page and "second factor" in page
    assert 'value="deny"' in page
    auth_request.refresh_from_db()
    assert auth_request.status == Status.PENDING
    response = browser.post(page_url(auth_request.pk), {"action": "deny"})
    assert response.status_code == 302
    auth_request.refresh_from_db()
    assert auth_request.status == Status.DENIED


@pytest.mark.django_db
def test_page_ignores_posted_acr_and_amr(client, user, app_secret):
    # IDT-04: the form's acr / amr are not read; the session's login decides.
    app, secret = app_secret
    _, auth_request = start(client, app, secret)
    posted = {"action": "approve", "acr": MFA, "amr": ["hwk", "mfa"]}
    assert sign_in(user).post(page_url(auth_request.pk), posted).status_code == 302
    auth_request.refresh_from_db()
    assert (auth_request.status, auth_request.acr, auth_request.amr) == (Status.APPROVED, PASSWORD, ["pwd"])


# --------------------------------------------------------------------------------------------
# The hooks and the derivation


def test_default_hook_is_a_password_login_at_the_recorded_time():
    login = timezone.now().replace(microsecond=0)
    request = SimpleNamespace(session={assurance.SESSION_AUTH_TIME_KEY: int(login.timestamp())})
    assert assurance.session_context(request, object()) == AuthenticationContext(("pwd",), login)


@pytest.mark.parametrize(
    ("device", "amr"),
    [
        (TOTPDevice(), ("pwd", "otp", "mfa")),
        (YubikeyDevice(), ("pwd", "otp", "hwk", "mfa")),
        (None, ("pwd", "otp", "mfa")),
    ],
)
def test_otp_hook_adds_the_verified_device(device, amr):
    # AD-04: duck typing on what django-otp sets; django-otp itself is not needed.
    user = SimpleNamespace(is_verified=lambda: True, otp_device=device)
    assert assurance.otp_session_context(SimpleNamespace(session={}), user).amr == amr


@pytest.mark.parametrize("user", [SimpleNamespace(is_verified=lambda: False), SimpleNamespace()])
def test_otp_hook_without_verification_is_a_password_login(user):
    assert assurance.otp_session_context(SimpleNamespace(session={}), user).amr == ("pwd",)


def test_settle_prefers_the_clients_order_and_refuses_unsatisfiable(settings):
    context = AuthenticationContext(amr=("pwd", "otp", "mfa"))
    assert assurance.settle(f"{PASSWORD} {MFA}", context).acr == PASSWORD
    assert assurance.settle(f"urn:unknown {MFA}", context).acr == MFA
    assert assurance.settle("", context).acr == MFA
    assert assurance.settle("", AuthenticationContext(amr=("otp",))).acr == ""
    with pytest.raises(InsufficientAssurance):
        assurance.settle(MFA, AuthenticationContext(amr=("pwd",)))
    with pytest.raises(InsufficientAssurance):
        assurance.settle("urn:unknown", context)
    assert assurance.settle(MFA, None) == assurance.NO_AUTHENTICATION


def test_a_hook_returning_something_else_is_a_configuration_error(ciba_settings):
    ciba_settings.set(AUTHENTICATION_CONTEXT=lambda request, user: {"acr": MFA})
    with pytest.raises(Exception, match="must return an AuthenticationContext"):
        assurance.context_for(SimpleNamespace(session={}), object())


@pytest.mark.django_db
def test_decided_request_reports_not_pending_before_insufficient_assurance(client, user, app_secret):
    # AD-03: a request already decided says so, whatever the session's assurance.
    app, secret = app_secret
    _, auth_request = start(client, app, secret, acr_values=MFA)
    decisions.deny(auth_request, user=user)
    response = sign_in(user).post(approve_url(auth_request.pk))
    assert (response.status_code, response.json()["error"]) == (409, "not_pending")


# --------------------------------------------------------------------------------------------
# Policy approvals and the refresh grant


def refresh(http, app, secret, refresh_token):
    response = http.post(
        "/o/token/",
        data=urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.django_db
def test_refreshed_id_tokens_keep_auth_time_acr_and_amr_across_rotations(
    client, user, app_secret, monkeypatch, settings, ciba_settings
):
    # IDT-08 / OIDC Core 12.2: every ID token of the refresh grant (rotation on) carries the
    # original auth_time, acr and amr, not DOT's last_login.
    settings.OAUTH2_PROVIDER = {**settings.OAUTH2_PROVIDER, "ROTATE_REFRESH_TOKEN": True}
    ciba_settings.set(AUTHENTICATION_CONTEXT="tests.unit.test_assurance.verified_otp_context")
    login_time = timezone.now().replace(microsecond=0) - timedelta(minutes=30)
    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret, scope="openid offline_access", acr_values=MFA)
    browser = sign_in(user, at=login_time, monkeypatch=monkeypatch)
    assert browser.post(approve_url(auth_request.pk)).status_code == 200
    tokens = poll(client, app, secret, auth_req_id).json()
    original = claims_of(tokens["id_token"])
    expected = {"auth_time": int(login_time.timestamp()), "acr": MFA, "amr": ["pwd", "otp", "mfa"]}
    assert {name: original[name] for name in expected} == expected
    user.last_login = timezone.now()  # a later sign-in elsewhere must not leak into auth_time
    user.save(update_fields=["last_login"])
    seen = [tokens["refresh_token"]]
    for _ in range(2):
        tokens = refresh(client, app, secret, tokens["refresh_token"])
        assert tokens["refresh_token"] not in seen  # rotated
        seen.append(tokens["refresh_token"])
        refreshed = claims_of(tokens["id_token"])
        assert {name: refreshed.get(name) for name in expected} == expected
    assert TokenAssurance.objects.get().auth_request_id == auth_request.pk


@pytest.mark.django_db
def test_policy_approval_claims_no_authentication_even_after_refresh(client, user, app_secret):
    # TOK-11 / IDT-08: a pre-authorized request was approved by nobody's authentication; its ID
    # tokens (first and refreshed) carry no auth_time, acr or amr.
    from django_ciba.models import PreAuthorization

    app, secret = app_secret
    PreAuthorization.objects.create(client=app, user=user, scope="openid offline_access")
    assert PreAuthorizationPolicy  # the default DECISION_POLICIES
    user.last_login = timezone.now()
    user.save(update_fields=["last_login"])
    auth_req_id, auth_request = start(client, app, secret, scope="openid offline_access")
    assert auth_request.status == Status.APPROVED
    tokens = poll(client, app, secret, auth_req_id).json()
    for _ in range(2):
        claims = claims_of(tokens["id_token"])
        assert not {"auth_time", "acr", "amr"} & set(claims), claims
        tokens = refresh(client, app, secret, tokens["refresh_token"])
    assert not {"auth_time", "acr", "amr"} & set(claims_of(tokens["id_token"]))


@pytest.mark.django_db
def test_orphaned_token_assurances_are_purged(client, user, app_secret):
    # Cleanup: a kept assurance goes once its refresh-token family is gone, not before.
    from oauth2_provider.models import RefreshToken

    from django_ciba.delivery.maintenance import purge_finished

    app, secret = app_secret
    auth_req_id, auth_request = start(client, app, secret, scope="openid offline_access")
    decisions.approve(auth_request, user=user)
    assert poll(client, app, secret, auth_req_id).status_code == 200
    later = timezone.now() + timedelta(hours=2)
    purge_finished(now=later)
    assert TokenAssurance.objects.count() == 1
    RefreshToken.objects.all().delete()
    purge_finished(now=later)
    assert TokenAssurance.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_pushed_tokens_keep_their_assurance_for_the_refresh_grant(client, user, monkeypatch):
    # PUSH-03 / IDT-08: tokens minted by the worker for a push client get the same claims, and
    # their refresh-token family keeps them for the refresh grant.
    from django_ciba.core.outbound import OutboundResponse
    from django_ciba.testing import create_ciba_client

    sent = []
    monkeypatch.setattr(
        "django_ciba.core.outbound.post_json",
        lambda url, body, *, headers=None: sent.append(json.loads(body)) or OutboundResponse(204),
    )
    app, secret = create_ciba_client(
        "Push RP", mode="push", notification_endpoint="https://rp.example.com/cb"
    )
    _, auth_request = start(
        client, app, secret, scope="openid offline_access", client_notification_token="n" * 32
    )
    login = timezone.now().replace(microsecond=0) - timedelta(minutes=5)
    context = AuthenticationContext(amr=("pwd", "hwk", "mfa"), auth_time=login)
    decisions.approve(auth_request, user=user, context=context)
    pushed = claims_of(sent[0]["id_token"])
    expected = {"auth_time": int(login.timestamp()), "acr": MFA, "amr": ["pwd", "hwk", "mfa"]}
    assert {name: pushed[name] for name in expected} == expected
    refreshed = claims_of(refresh(client, app, secret, sent[0]["refresh_token"])["id_token"])
    assert {name: refreshed.get(name) for name in expected} == expected
