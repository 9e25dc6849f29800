"""Clients registered dynamically (RFC 7591) complete a CIBA flow.

1. The push client of the registration example in docs/registration.rst (user codes, requests
   signed with RS256, private_key_jwt, an https notification endpoint), registered as printed
   there except for its key, which the test must hold the private half of.
2. A poll client registered with private_key_jwt, a jwks_uri and ``subject_type: pairwise``.

Outbound HTTP is stubbed (a unit test): ``outbound.get_document`` serves the poll client's JWK set
and ``outbound.post_json`` receives the push. The integration suite runs the same registrations
against the served example project (tests/integration/test_registration_flows.py).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlencode

import jwt
import pytest
from django.conf import settings

from django_ciba.approval import decisions
from django_ciba.core import outbound
from django_ciba.core.constants import AUTH_REQ_ID_CLAIM, CIBA_GRANT_TYPE
from django_ciba.models import AuthenticationRequest, CibaClient, PairwiseSubject
from django_ciba.testing import FORM, client_assertion, make_client_key, request_object


pytestmark = pytest.mark.django_db(transaction=True)

ISSUER = settings.OAUTH2_PROVIDER["OIDC_ISS_ENDPOINT"]
DOCS = Path(__file__).resolve().parents[2] / "docs"
USER_CODE = "4711"


def documented_push_registration() -> dict:
    """The JSON block after ``.. _registration-example-push:`` in docs/registration.rst."""
    text = (DOCS / "registration.rst").read_text()
    after = text.split(".. _registration-example-push:", 1)[1]
    block = re.search(r"\.\. code-block:: json\n\n((?:[ ]{3,}.*\n|\n)+)", after)
    assert block, "the push registration example is missing from docs/registration.rst"
    return json.loads(block.group(1))


def verify_user_code(user, user_code, auth_request=None):
    return user.get_username() == "alice" and user_code == USER_CODE


def register(client, metadata: dict) -> dict:
    response = client.post("/o/register", data=json.dumps(metadata), content_type="application/json")
    assert response.status_code == 201, response.content
    assert response["Content-Type"].startswith("application/json")
    return response.json()


def decode_id_token(token: str, client_id: str) -> dict:
    from django_ciba.resolvers import op_signing_keys

    return jwt.decode(token, op_signing_keys()[0], algorithms=["RS256"], audience=client_id, issuer=ISSUER)


@pytest.fixture
def open_registration(ciba_settings):
    ciba_settings.set(REGISTRATION_OPEN=True)


def test_documented_push_client_registers_and_receives_tokens(
    client, user, open_registration, ciba_settings, monkeypatch
):
    ciba_settings.set(
        USER_CODE_SUPPORTED=True, USER_CODE_VERIFIER=f"{__name__}.verify_user_code", RETRY_BASE_DELAY=0.01
    )
    metadata = documented_push_registration()
    assert metadata["backchannel_token_delivery_mode"] == "push"
    assert metadata["backchannel_user_code_parameter"] is True
    assert metadata["backchannel_authentication_request_signing_alg"] == "RS256"
    assert metadata["backchannel_client_notification_endpoint"].startswith("https://")
    private_key, public_jwk = make_client_key("RS256", kid="push-client-test")
    metadata["jwks"] = {"keys": [public_jwk]}

    registered = register(client, metadata)
    client_id = registered["client_id"]
    assert "client_secret" not in registered  # private_key_jwt: nothing shared
    assert registered["backchannel_user_code_parameter"] is True
    ciba = CibaClient.objects.get(application__client_id=client_id)
    assert (ciba.delivery_mode, ciba.request_signing_alg, ciba.user_code_parameter) == ("push", "RS256", True)

    pushed = []
    monkeypatch.setattr(
        outbound,
        "post_json",
        lambda url, body, *, headers=None: (
            pushed.append((url, json.loads(body), headers)) or outbound.OutboundResponse(status=204)
        ),
    )
    application = ciba.application
    signed = request_object(
        application,
        private_key,
        issuer=ISSUER,
        alg="RS256",
        kid="push-client-test",
        scope="openid profile",
        login_hint="alice",
        user_code=USER_CODE,
        binding_message="Counter 4",
        client_notification_token="push-" + "n" * 40,
    )
    auth = client_assertion(application, private_key, audience=ISSUER, alg="RS256", kid="push-client-test")
    response = client.post("/o/bc-authorize", data=urlencode({"request": signed, **auth}), content_type=FORM)
    assert response.status_code == 200, response.content
    auth_req_id = response.json()["auth_req_id"]
    assert "interval" not in response.json()
    auth_request = AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get()
    assert auth_request.binding_message == "Counter 4"

    decisions.approve(auth_request, user=user)

    assert len(pushed) == 1
    url, body, headers = pushed[0]
    assert url == metadata["backchannel_client_notification_endpoint"]
    assert headers["Authorization"] == "Bearer push-" + "n" * 40
    assert body["auth_req_id"] == auth_req_id and body["token_type"] == "Bearer"
    claims = decode_id_token(body["id_token"], client_id)
    assert claims[AUTH_REQ_ID_CLAIM] == auth_req_id
    assert claims["sub"] == str(user.pk)  # a public-subject client


def test_documented_push_client_needs_its_user_code(client, user, open_registration, ciba_settings):
    ciba_settings.set(USER_CODE_SUPPORTED=True, USER_CODE_VERIFIER=f"{__name__}.verify_user_code")
    metadata = documented_push_registration()
    private_key, public_jwk = make_client_key("RS256", kid="k1")
    metadata["jwks"] = {"keys": [public_jwk]}
    application = CibaClient.objects.get(
        application__client_id=register(client, metadata)["client_id"]
    ).application
    signed = request_object(
        application,
        private_key,
        issuer=ISSUER,
        alg="RS256",
        kid="k1",
        scope="openid",
        login_hint="alice",
        client_notification_token="t" * 30,
    )
    auth = client_assertion(application, private_key, audience=ISSUER, alg="RS256", kid="k1")
    response = client.post("/o/bc-authorize", data=urlencode({"request": signed, **auth}), content_type=FORM)
    assert (response.status_code, response.json()["error"]) == (400, "missing_user_code")  # UC-02


JWKS_URI = "https://rp-poll.example.com/keys/jwks.json"


def test_pairwise_private_key_jwt_poll_client_registers_and_polls(
    client, user, open_registration, monkeypatch
):
    private_key, public_jwk = make_client_key("ES256", kid="poll-1")
    fetched = []

    def get_document(url, *, max_bytes, **kwargs):
        fetched.append(url)
        assert url == JWKS_URI
        return json.dumps({"keys": [public_jwk]}).encode()

    monkeypatch.setattr(outbound, "get_document", get_document)
    registered = register(
        client,
        {
            "client_name": "Pairwise poll client",
            "grant_types": [CIBA_GRANT_TYPE, "refresh_token"],
            "response_types": [],
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "ES256",
            "jwks_uri": JWKS_URI,
            "subject_type": "pairwise",
            "backchannel_token_delivery_mode": "poll",
            "scope": "openid profile offline_access",
        },
    )
    client_id = registered["client_id"]
    assert registered["subject_type"] == "pairwise" and "client_secret" not in registered
    application = CibaClient.objects.get(application__client_id=client_id).application

    def authenticated(**form):
        auth = client_assertion(application, private_key, audience=ISSUER, alg="ES256", kid="poll-1")
        return urlencode({**form, **auth})

    response = client.post(
        "/o/bc-authorize",
        data=authenticated(scope="openid offline_access", login_hint="alice"),
        content_type=FORM,
    )
    assert response.status_code == 200, response.content
    auth_req_id = response.json()["auth_req_id"]
    pending = client.post(
        "/o/token/",
        data=authenticated(grant_type=CIBA_GRANT_TYPE, auth_req_id=auth_req_id),
        content_type=FORM,
    )
    assert (pending.status_code, pending.json()["error"]) == (400, "authorization_pending")

    decisions.approve(AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get(), user=user)
    response = client.post(
        "/o/token/",
        data=authenticated(grant_type=CIBA_GRANT_TYPE, auth_req_id=auth_req_id),
        content_type=FORM,
    )
    assert response.status_code == 200, response.content
    tokens = response.json()
    claims = decode_id_token(tokens["id_token"], client_id)
    subject = PairwiseSubject.objects.get(sector="rp-poll.example.com", user=user).subject
    assert claims["sub"] == subject != str(user.pk)  # REG-06: the jwks_uri host is the sector
    userinfo = client.get("/o/userinfo/", HTTP_AUTHORIZATION=f"Bearer {tokens['access_token']}")
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == subject
    assert fetched == [JWKS_URI]  # fetched once, then cached across three client assertions
