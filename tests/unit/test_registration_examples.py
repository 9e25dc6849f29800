"""Registrations shaped like the CIBA client examples other OPs publish, each completing a flow.

The payloads are written for these tests (own names and values) in the shape that other OPs'
documentation shows for a CIBA client:

* a Gluu-style push client: the CIBA grant,
  ``application_type`` web, an https notification endpoint, requests signed with RS256, user codes
  on, a name, and no keys yet (REG-02, REG-04, REG-05);
* a poll client with a shared secret (REG-01, REG-03);
* a ping client authenticating with ``client_secret_post`` and asking for refresh tokens.

Each registers through ``POST /o/register`` and then completes a flow: bc-authorize, approval, then
tokens (poll, ping) or the push callback. Outbound HTTP is stubbed (``outbound.post_json``).
"""

from __future__ import annotations

import json
from urllib.parse import urlencode, urlsplit

import jwt
import pytest
from django.conf import settings

from django_ciba.approval import decisions
from django_ciba.bc_authorize.request_object import NO_KEYS
from django_ciba.core import outbound
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.models import AuthenticationRequest, CibaClient
from django_ciba.testing import FORM, basic_auth, make_client_key, request_object


pytestmark = pytest.mark.django_db(transaction=True)

ISSUER = settings.OAUTH2_PROVIDER["OIDC_ISS_ENDPOINT"]

GLUU_STYLE_PUSH = {
    "application_type": "web",
    "client_name": "Branch office push RP",
    "grant_types": [CIBA_GRANT_TYPE],
    "backchannel_token_delivery_mode": "push",
    "backchannel_client_notification_endpoint": "https://rp.branch.example.net/ciba/notify",
    "backchannel_authentication_request_signing_alg": "RS256",
    "backchannel_user_code_parameter": True,
}
SECRET_POLL = {
    "client_name": "Call centre poll RP",
    "application_type": "web",
    "grant_types": [CIBA_GRANT_TYPE],
    "backchannel_token_delivery_mode": "poll",
    "backchannel_user_code_parameter": False,
    "token_endpoint_auth_method": "client_secret_basic",
    "id_token_signed_response_alg": "RS256",
    "scope": "openid profile",
}
SECRET_POST_PING = {
    "client_name": "Kiosk ping RP",
    "grant_types": [CIBA_GRANT_TYPE, "refresh_token"],
    "response_types": [],
    "backchannel_token_delivery_mode": "ping",
    "backchannel_client_notification_endpoint": "https://kiosk.example.net/ciba/ping",
    "token_endpoint_auth_method": "client_secret_post",
    "scope": "openid email offline_access",
}


@pytest.fixture
def open_registration(ciba_settings):
    ciba_settings.set(REGISTRATION_OPEN=True)


@pytest.fixture
def outbox(monkeypatch):
    """Notifications and pushes the OP sends: ``(url, body, headers)``."""
    sent = []

    def post_json(url, body, *, headers=None):
        sent.append((url, json.loads(body), headers))
        return outbound.OutboundResponse(status=204)

    monkeypatch.setattr(outbound, "post_json", post_json)
    return sent


def register(http, metadata):
    response = http.post("/o/register", data=json.dumps(metadata), content_type="application/json")
    assert response.status_code == 201, response.content
    return response.json()


def id_token_claims(token, client_id):
    from django_ciba.resolvers import op_signing_keys

    return jwt.decode(token, op_signing_keys()[0], algorithms=["RS256"], audience=client_id, issuer=ISSUER)


def approve(auth_req_id, user):
    decisions.approve(AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get(), user=user)


def test_gluu_style_push_client_registers_its_algorithm_before_its_keys(
    client, user, open_registration, outbox
):
    # REG-04: the algorithm is accepted without keys; REG-05 / RFC 7591 §3.2.1: user codes are
    # not offered (USER_CODE_SUPPORTED off), so the OP grants false and says so.
    body = register(client, GLUU_STYLE_PUSH)
    assert body["backchannel_authentication_request_signing_alg"] == "RS256"
    assert body["backchannel_user_code_parameter"] is False
    assert "jwks" not in body and "jwks_uri" not in body
    client_id, secret = body["client_id"], body["client_secret"]
    ciba = CibaClient.objects.get(application__client_id=client_id)
    assert (ciba.request_signing_alg, ciba.user_code_parameter, ciba.has_keys) == ("RS256", False, False)
    auth = {"HTTP_AUTHORIZATION": basic_auth(client_id, secret)}
    token = "push-" + "t" * 40

    # AERR-01 / SR-08: until keys are registered every request is refused with a clear reason.
    unsigned = client.post(
        "/o/bc-authorize",
        data=urlencode({"scope": "openid", "login_hint": "alice", "client_notification_token": token}),
        content_type=FORM,
        **auth,
    )
    private_key, public_jwk = make_client_key("RS256", kid="branch-1")

    def sign() -> str:
        return request_object(
            ciba.application,
            private_key,
            issuer=ISSUER,
            alg="RS256",
            kid="branch-1",
            scope="openid",
            login_hint="alice",
            client_notification_token=token,
        )

    signed = sign()
    early = client.post("/o/bc-authorize", data=urlencode({"request": signed}), content_type=FORM, **auth)
    for response in (unsigned, early):
        assert response.status_code == 400, response.content
        assert response.json() == {"error": "invalid_request", "error_description": NO_KEYS}
    assert "jwks or jwks_uri" in NO_KEYS
    assert not AuthenticationRequest.objects.exists()

    # RFC 7592: the client adds its keys with a client update, then its signed requests work.
    update = {**GLUU_STYLE_PUSH, "client_id": client_id, "jwks": {"keys": [public_jwk]}}
    updated = client.put(
        urlsplit(body["registration_client_uri"]).path,
        data=json.dumps(update),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {body['registration_access_token']}",
    )
    assert updated.status_code == 200, updated.content
    assert updated.json()["jwks"] == {"keys": [public_jwk]}
    assert updated.json()["backchannel_user_code_parameter"] is False
    signed = sign()
    response = client.post("/o/bc-authorize", data=urlencode({"request": signed}), content_type=FORM, **auth)
    assert response.status_code == 200, response.content
    auth_req_id = response.json()["auth_req_id"]

    approve(auth_req_id, user)

    assert len(outbox) == 1
    url, pushed, headers = outbox[0]
    assert url == GLUU_STYLE_PUSH["backchannel_client_notification_endpoint"]
    assert headers["Authorization"] == f"Bearer {token}"
    assert pushed["auth_req_id"] == auth_req_id and pushed["access_token"]
    assert id_token_claims(pushed["id_token"], client_id)["sub"] == str(user.pk)


def test_gluu_style_push_client_keeps_user_codes_when_the_op_supports_them(
    client, open_registration, ciba_settings
):
    # REG-05: with user codes on, the same registration gets backchannel_user_code_parameter true.
    ciba_settings.set(USER_CODE_SUPPORTED=True, USER_CODE_VERIFIER="hmac.compare_digest")
    body = register(client, GLUU_STYLE_PUSH)
    assert body["backchannel_user_code_parameter"] is True
    assert CibaClient.objects.get(application__client_id=body["client_id"]).user_code_parameter is True


def test_secret_poll_client_registers_and_polls_for_tokens(client, user, open_registration, outbox):
    # REG-01, REG-03, TOK-02: a poll client with a shared secret.
    body = register(client, SECRET_POLL)
    assert body["backchannel_token_delivery_mode"] == "poll" and body["scope"] == "openid profile"
    auth = {"HTTP_AUTHORIZATION": basic_auth(body["client_id"], body["client_secret"])}
    response = client.post(
        "/o/bc-authorize",
        data=urlencode({"scope": "openid profile", "login_hint": "alice", "binding_message": "Call 7"}),
        content_type=FORM,
        **auth,
    )
    assert response.status_code == 200, response.content
    auth_req_id = response.json()["auth_req_id"]
    grant = urlencode({"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id})
    pending = client.post("/o/token/", data=grant, content_type=FORM, **auth)
    assert (pending.status_code, pending.json()["error"]) == (400, "authorization_pending")

    approve(auth_req_id, user)

    tokens = client.post("/o/token/", data=grant, content_type=FORM, **auth)
    assert tokens.status_code == 200, tokens.content
    assert id_token_claims(tokens.json()["id_token"], body["client_id"])["sub"] == str(user.pk)
    assert outbox == []  # REG-01: a poll client is never called back


def test_secret_post_ping_client_registers_is_pinged_and_collects_tokens(
    client, user, open_registration, outbox
):
    # REG-02, PING: the ping goes to the registered endpoint; the client then fetches the tokens
    # authenticating with client_secret_post, and gets a refresh token (offline_access).
    body = register(client, SECRET_POST_PING)
    assert body["token_endpoint_auth_method"] == "client_secret_post"
    credentials = {"client_id": body["client_id"], "client_secret": body["client_secret"]}
    token = "ping-" + "p" * 40
    response = client.post(
        "/o/bc-authorize",
        data=urlencode(
            {
                "scope": "openid email offline_access",
                "login_hint": "alice",
                "client_notification_token": token,
                **credentials,
            }
        ),
        content_type=FORM,
    )
    assert response.status_code == 200, response.content
    auth_req_id = response.json()["auth_req_id"]

    approve(auth_req_id, user)

    assert outbox == [
        (
            SECRET_POST_PING["backchannel_client_notification_endpoint"],
            {"auth_req_id": auth_req_id},
            outbox[0][2],
        )
    ]
    assert outbox[0][2]["Authorization"] == f"Bearer {token}"
    tokens = client.post(
        "/o/token/",
        data=urlencode({"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id, **credentials}),
        content_type=FORM,
    )
    assert tokens.status_code == 200, tokens.content
    assert tokens.json()["refresh_token"] and tokens.json()["id_token"]
