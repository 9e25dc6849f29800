"""The ID token issued with the CIBA grant (IDT-01..IDT-05, IDT-08, TOK-11), verified with PyJWT."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import timedelta
from types import SimpleNamespace
from urllib.parse import urlencode

import jwt
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone
from oauth2_provider.models import AccessToken, IDToken

from django_ciba.approval import decisions
from django_ciba.assurance import AuthenticationContext
from django_ciba.models import AuthenticationRequest
from django_ciba.testing import FORM, basic_auth, bc_authorize, create_ciba_client, poll
from tests.unit.auth_requests import start


AUTH_REQ_ID_CLAIM = "urn:openid:params:jwt:claim:auth_req_id"
RT_HASH_CLAIM = "urn:openid:params:jwt:claim:rt_hash"
ISSUER = settings.OAUTH2_PROVIDER["OIDC_ISS_ENDPOINT"]


def left_half_hash(value: str) -> str:
    digest = hashlib.sha256(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).decode("ascii").rstrip("=")


def jwks(http) -> dict:
    response = http.get("/o/.well-known/jwks.json")
    assert response.status_code == 200, response.content
    return response.json()


def verify(http, id_token: str, audience: str) -> dict:
    """Verify signature, iss, aud, exp and iat against the OP's published JWKS (IDT-01)."""
    header = jwt.get_unverified_header(id_token)
    keys = {key["kid"]: key for key in jwks(http)["keys"]}
    assert header.get("kid") in keys, "the ID token's kid is not in the JWKS"
    key = jwt.PyJWK(keys[header["kid"]])
    return jwt.decode(
        id_token,
        key=key.key,
        algorithms=[header["alg"]],
        audience=audience,
        issuer=ISSUER,
        options={"require": ["iss", "sub", "aud", "exp", "iat"]},
    )


def run_flow(http, app, secret, user, *, scope="openid", approve_kwargs=None, approval_time=None, mp=None):
    """bc-authorize -> approve -> poll; return (auth_req_id, auth_request, token response body)."""
    auth_req_id, auth_request = start(http, app, secret, scope=scope, login_hint=user.get_username())
    if approval_time is not None:
        mp.setattr("django_ciba.approval.decisions.timezone", SimpleNamespace(now=lambda: approval_time))
    decisions.approve(auth_request, user=user, **(approve_kwargs or {}))
    if approval_time is not None:
        mp.undo()
    token_response = poll(http, app, secret, auth_req_id)
    assert token_response.status_code == 200, token_response.content
    auth_request.refresh_from_db()
    return auth_req_id, auth_request, token_response.json()


@pytest.fixture
def app_secret(poll_client):
    return poll_client


@pytest.mark.django_db
def test_id_token_verifies_against_jwks_with_standard_claims(client, user, app_secret):
    # IDT-01: signed with an advertised alg, kid in JWKS, iss / aud / sub / exp / iat.
    app, secret = app_secret
    _, _, body = run_flow(client, app, secret, user)
    claims = verify(client, body["id_token"], app.client_id)
    assert claims["iss"] == ISSUER
    assert claims["aud"] == app.client_id or claims["aud"] == [app.client_id]
    assert claims["sub"] == str(user.pk)
    assert claims["exp"] > claims["iat"]
    header = jwt.get_unverified_header(body["id_token"])
    discovery = client.get("/o/.well-known/openid-configuration").json()
    assert header["alg"] in discovery["id_token_signing_alg_values_supported"]


@pytest.mark.django_db
def test_id_token_fails_verification_for_another_audience(client, user, app_secret):
    # IDT-01: aud is exactly this client, not any client.
    app, secret = app_secret
    _, _, body = run_flow(client, app, secret, user)
    with pytest.raises(jwt.InvalidAudienceError):
        verify(client, body["id_token"], "some-other-client")


@pytest.mark.django_db
def test_id_token_kid_is_published(client, user, app_secret):
    # IDT-01 / FAPI-17: the JWS header carries a kid that is in the OP's JWKS.
    app, secret = app_secret
    _, _, body = run_flow(client, app, secret, user)
    kid = jwt.get_unverified_header(body["id_token"])["kid"]
    assert kid
    assert kid in [key["kid"] for key in jwks(client)["keys"]]


@pytest.mark.django_db
def test_auth_time_is_the_login_time_not_the_approval_or_last_login(client, user, app_secret, monkeypatch):
    # TOK-11 / AD-01 / OIDC Core 2: auth_time is when the approving session authenticated.
    user.last_login = timezone.now() - timedelta(days=3)
    user.save(update_fields=["last_login"])
    login_time = timezone.now().replace(microsecond=0) - timedelta(minutes=7)
    approval_time = timezone.now().replace(microsecond=0) + timedelta(seconds=100)
    context = AuthenticationContext(amr=("pwd",), auth_time=login_time)
    app, secret = app_secret
    _, auth_request, body = run_flow(
        client,
        app,
        secret,
        user,
        approve_kwargs={"context": context},
        approval_time=approval_time,
        mp=monkeypatch,
    )
    claims = verify(client, body["id_token"], app.client_id)
    assert auth_request.decided_at == approval_time
    assert auth_request.auth_time == login_time
    assert claims["auth_time"] == int(login_time.timestamp())


@pytest.mark.django_db
def test_no_auth_time_when_nobody_authenticated(client, user, app_secret):
    # TOK-11 / OIDC Core 2: an approval without a session context claims no authentication time
    # (neither DOT's last_login nor the approval time).
    user.last_login = timezone.now() - timedelta(days=3)
    user.save(update_fields=["last_login"])
    app, secret = app_secret
    _, auth_request, body = run_flow(client, app, secret, user)
    assert auth_request.auth_time is None
    assert "auth_time" not in verify(client, body["id_token"], app.client_id)


@pytest.mark.django_db
def test_acr_claim_derived_from_the_sessions_amr(client, user, app_secret):
    # IDT-04: the acr is the server's, derived from the session's amr (ACR_REQUIREMENTS).
    app, secret = app_secret
    context = AuthenticationContext(amr=("pwd", "otp", "mfa"))
    _, _, body = run_flow(client, app, secret, user, approve_kwargs={"context": context})
    assert verify(client, body["id_token"], app.client_id)["acr"] == "urn:django-ciba:acr:mfa"


@pytest.mark.django_db
def test_no_acr_claim_without_acr(client, user, app_secret):
    # IDT-04: no acr is invented.
    app, secret = app_secret
    _, _, body = run_flow(client, app, secret, user)
    assert "acr" not in verify(client, body["id_token"], app.client_id)


@pytest.mark.django_db
def test_amr_claim_when_approved_with_amr(client, user, app_secret):
    # AD-01: the authentication methods used on the device are reported.
    app, secret = app_secret
    context = AuthenticationContext(amr=("pwd", "otp"))
    _, _, body = run_flow(client, app, secret, user, approve_kwargs={"context": context})
    assert verify(client, body["id_token"], app.client_id)["amr"] == ["pwd", "otp"]


@pytest.mark.django_db
def test_auth_req_id_claim_equals_the_auth_req_id(client, user, app_secret):
    # IDT-02: if present, urn:openid:params:jwt:claim:auth_req_id equals the auth_req_id used.
    app, secret = app_secret
    auth_req_id, _, body = run_flow(client, app, secret, user)
    assert verify(client, body["id_token"], app.client_id)[AUTH_REQ_ID_CLAIM] == auth_req_id


@pytest.mark.django_db
def test_at_hash_matches_the_access_token(client, user, app_secret):
    # IDT-03: at_hash is the left half of SHA-256 of the access token (RS256).
    app, secret = app_secret
    _, _, body = run_flow(client, app, secret, user)
    claims = verify(client, body["id_token"], app.client_id)
    assert claims["at_hash"] == left_half_hash(body["access_token"])


@pytest.mark.django_db
def test_rt_hash_matches_the_refresh_token(client, user, app_secret):
    # IDT-03: rt_hash is correct when a refresh token is issued.
    app, secret = app_secret
    _, _, body = run_flow(client, app, secret, user, scope="openid offline_access")
    assert body["refresh_token"]
    claims = verify(client, body["id_token"], app.client_id)
    assert claims[RT_HASH_CLAIM] == left_half_hash(body["refresh_token"])
    assert claims[RT_HASH_CLAIM] != claims["at_hash"]


@pytest.mark.django_db
def test_no_rt_hash_without_refresh_token(client, user, app_secret):
    # IDT-03: no rt_hash when no refresh token was issued.
    app, secret = app_secret
    _, _, body = run_flow(client, app, secret, user, scope="openid")
    assert "refresh_token" not in body
    assert RT_HASH_CLAIM not in verify(client, body["id_token"], app.client_id)


@pytest.mark.django_db
def test_no_c_hash_or_s_hash(client, user, app_secret):
    # IDT-05: CIBA ID tokens carry neither c_hash nor s_hash.
    app, secret = app_secret
    _, _, body = run_flow(client, app, secret, user)
    claims = verify(client, body["id_token"], app.client_id)
    assert "c_hash" not in claims and "s_hash" not in claims


@pytest.mark.django_db
def test_granted_subset_of_scopes_is_reflected(client, user, app_secret):
    # AD-01 / TOK-11: the user grants fewer scopes than requested; the tokens carry only those.
    app, secret = app_secret
    _, auth_request, body = run_flow(
        client,
        app,
        secret,
        user,
        scope="openid profile email payments",
        approve_kwargs={"scopes": ["openid", "email"]},
    )
    assert auth_request.scopes == ["openid", "profile", "email", "payments"]
    assert set(body["scope"].split()) == {"openid", "email"}
    assert set(AccessToken.objects.get().scope.split()) == {"openid", "email"}
    id_token_row = IDToken.objects.get(jti=verify(client, body["id_token"], app.client_id)["jti"])
    assert set(id_token_row.scope.split()) == {"openid", "email"}
    introspection = client.post(
        "/o/introspect/",
        data=urlencode({"token": body["access_token"]}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    ).json()
    assert set(introspection["scope"].split()) == {"openid", "email"}


@pytest.mark.django_db
def test_sub_is_the_approving_users_pk_for_each_user(client, user, app_secret):
    # IDT-01: sub names the hinted user, not the client or another user.
    bob = get_user_model().objects.create_user("bob", "bob@example.com", "pw")
    app, secret = app_secret
    _, _, body = run_flow(client, app, secret, bob)
    assert verify(client, body["id_token"], app.client_id)["sub"] == str(bob.pk) != str(user.pk)


@pytest.mark.django_db
def test_ping_client_id_token_has_the_same_claims(client, user):
    # IDT-01..03 / TOK-13: ping clients polling get the same ID token.
    app, secret = create_ciba_client("Ping", mode="ping", notification_endpoint="https://rp.example.com/cb")
    response = bc_authorize(
        client, app, secret, scope="openid", login_hint="alice", client_notification_token="n" * 32
    )
    auth_req_id = response.json()["auth_req_id"]
    decisions.approve(AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get(), user=user)
    body = poll(client, app, secret, auth_req_id).json()
    claims = verify(client, body["id_token"], app.client_id)
    assert claims[AUTH_REQ_ID_CLAIM] == auth_req_id
    assert claims["at_hash"] == left_half_hash(body["access_token"])


@pytest.mark.django_db
def test_refreshed_id_token_keeps_iss_sub_and_aud(client, user, app_secret):
    # IDT-08: a refresh returns an ID token with the same iss and sub, hashes matching the new tokens.
    app, secret = app_secret
    _, _, body = run_flow(client, app, secret, user, scope="openid offline_access")
    first = verify(client, body["id_token"], app.client_id)
    response = client.post(
        "/o/token/",
        data=urlencode({"grant_type": "refresh_token", "refresh_token": body["refresh_token"]}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 200, response.content
    refreshed_body = response.json()
    refreshed = verify(client, refreshed_body["id_token"], app.client_id)
    assert (refreshed["iss"], refreshed["sub"]) == (first["iss"], first["sub"])
    assert refreshed["jti"] != first["jti"]
    assert refreshed["at_hash"] == left_half_hash(refreshed_body["access_token"])
    # The CIBA-only claim belongs to the CIBA redemption, not to later refreshes.
    assert AUTH_REQ_ID_CLAIM not in refreshed


@pytest.mark.django_db
def test_id_token_payload_is_json_with_no_secret_of_the_request(client, user, app_secret):
    # SEC-10: the ID token carries no client_notification_token or stored hash.
    app, secret = app_secret
    _, auth_request, body = run_flow(client, app, secret, user)
    payload = body["id_token"].split(".")[1]
    decoded = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert auth_request.auth_req_id_hash not in json.dumps(decoded)
