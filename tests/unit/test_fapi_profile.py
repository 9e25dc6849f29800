"""The FAPI-CIBA profile switch at /bc-authorize and at the token endpoint (FAPI-01..FAPI-15).

``CIBA["PROFILE"] = "fapi-ciba"`` (the whole OP) or ``CibaClient.profile = "fapi-ciba"`` (one client)
turn on FAPI-CIBA ID1's rules. Each refusal test also shows the same request accepted without the
profile, so it fails if the profile's rule is missing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest

from django_ciba.core import profiles
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.models import AuthenticationRequest, AuthMethod, CibaClient, DeliveryMode
from django_ciba.testing import (
    FORM,
    basic_auth,
    client_assertion,
    create_ciba_client,
    make_client_key,
    request_object,
)


pytestmark = pytest.mark.django_db

ISSUER = "http://testserver/o"
BC_URL = "/o/bc-authorize"
TOKEN_URL = "/o/token/"
MINUTE = 60
FAPI = profiles.FAPI_CIBA
KEYS = {alg: make_client_key(alg, kid=f"fapi-{alg}") for alg in ("PS256", "ES256", "RS256")}


@dataclass
class Rp:
    app: Any
    secret: str
    alg: str

    @property
    def key(self) -> Any:
        return KEYS[self.alg][0]

    def assertion(self, alg: str | None = None) -> dict[str, str]:
        return client_assertion(
            self.app, self.key, audience=ISSUER, alg=alg or self.alg, kid=f"fapi-{self.alg}"
        )

    def request(self, alg: str | None = None, **claims: Any) -> str:
        claims = {"scope": "openid", "login_hint": "alice", "binding_message": "W4SCT", **claims}
        return request_object(
            self.app, self.key, issuer=ISSUER, alg=alg or self.alg, kid=f"fapi-{self.alg}", **claims
        )

    def set_profile(self, profile: str) -> None:
        CibaClient.objects.filter(application=self.app).update(profile=profile)
        self.app.refresh_from_db()


def make_rp(name: str, alg: str = "PS256", *, profile: str = FAPI, **fields: Any) -> Rp:
    fields.setdefault("auth_method", AuthMethod.PRIVATE_KEY_JWT)
    app, secret = create_ciba_client(
        name,
        scope="openid",
        jwks={"keys": [KEYS[alg][1]]},
        profile=profile,
        dpop_bound_access_tokens=True,
        **fields,
    )
    return Rp(app, secret, alg)


def post(http: Any, url: str, data: dict[str, str], **headers: Any) -> Any:
    return http.post(url, data=urlencode(data), content_type=FORM, **headers)


def signed(http: Any, rp: Rp, token: str, assertion_alg: str | None = None) -> Any:
    return post(http, BC_URL, {"request": token, **rp.assertion(assertion_alg)})


def assert_error(response: Any, status: int, error: str, reason: str = "") -> None:
    assert response.status_code == status, response.content
    body = response.json()
    assert body["error"] == error, body
    assert reason.lower() in body.get("error_description", "").lower(), body


def assert_ack(response: Any) -> str:
    assert response.status_code == 200, response.content
    return response.json()["auth_req_id"]


@pytest.fixture
def rp(user) -> Rp:
    return make_rp("FAPI RP")


# --------------------------------------------------------------------------------------------
# core.profiles: which clients the profile applies to


def test_fapi_applies_to_the_op_or_to_one_client(ciba_settings):
    client = CibaClient(profile="")
    fapi_client = CibaClient(profile=FAPI)
    assert not profiles.fapi_applies(client) and not profiles.fapi_applies(None)
    assert profiles.fapi_applies(fapi_client)
    # FAPI-15: sender-constrained tokens exactly where the profile applies.
    assert not profiles.requires_sender_constrained_tokens(client)
    assert profiles.requires_sender_constrained_tokens(fapi_client)
    ciba_settings.set(PROFILE=FAPI)
    assert profiles.fapi_applies(client) and profiles.fapi_applies(None)
    assert profiles.requires_sender_constrained_tokens(None)
    assert profiles.FAPI_ALGORITHMS == ("PS256", "ES256")


# --------------------------------------------------------------------------------------------
# bc-authorize


def test_fapi06_signed_fapi_request_is_accepted(client, rp):
    # FAPI-06 / FAPI-12 / FAPI-13: PS256 request object, private_key_jwt PS256: the happy path.
    assert_ack(signed(client, rp, rp.request()))
    assert AuthenticationRequest.objects.get().binding_message == "W4SCT"


def test_fapi06_unsigned_request_refused_under_the_op_profile(client, user, ciba_settings):
    # FAPI-06 (FAPI-CIBA ID1 5.2.2-6): the OP-wide switch requires signed requests, even from a
    # client that registered no request signing algorithm.
    unsigned = make_rp("Unsigned RP", profile="")
    form = {"scope": "openid", "login_hint": "alice", "binding_message": "W4SCT"}
    assert_ack(post(client, BC_URL, {**form, **unsigned.assertion()}))
    ciba_settings.set(PROFILE=FAPI)
    assert_error(post(client, BC_URL, {**form, **unsigned.assertion()}), 400, "invalid_request", "signed")


def test_fapi06_unsigned_request_refused_for_a_fapi_client(client, user):
    # FAPI-06: the client's own profile requires signing too.
    rp = make_rp("Per-client FAPI RP")
    form = {"scope": "openid", "login_hint": "alice", "binding_message": "W4SCT", **rp.assertion()}
    assert_error(post(client, BC_URL, form), 400, "invalid_request", "signed")


def test_fapi13_request_object_rs256_refused_with_a_fapi_assertion(client, user):
    # FAPI-13: a PS256 client assertion, but the request object signed RS256 -> invalid_request.
    rp = make_rp("Two keys RP")
    CibaClient.objects.filter(application=rp.app).update(jwks={"keys": [KEYS["PS256"][1], KEYS["RS256"][1]]})
    token = request_object(
        rp.app,
        KEYS["RS256"][0],
        issuer=ISSUER,
        alg="RS256",
        kid="fapi-RS256",
        scope="openid",
        login_hint="alice",
        binding_message="W4SCT",
    )
    rp.set_profile("")
    assert_ack(signed(client, rp, token))
    rp.set_profile(FAPI)
    token = request_object(
        rp.app,
        KEYS["RS256"][0],
        issuer=ISSUER,
        alg="RS256",
        kid="fapi-RS256",
        scope="openid",
        login_hint="alice",
        binding_message="W4SCT",
    )
    assert_error(signed(client, rp, token), 400, "invalid_request", "RS256")


def test_fapi09_lifetime_over_60_minutes_refused_whatever_the_settings(client, rp, ciba_settings):
    # FAPI-09 (ensure-request-object-exp-is-70-minutes-in-future-fails): exp - nbf <= 60 minutes
    # under the profile, although SIGNED_REQUESTS["MAX_LIFETIME"] allows two hours.
    ciba_settings.set(REQUEST_OBJECT_MAX_LIFETIME=7200, REQUEST_OBJECT_MAX_AGE=7200)
    now = int(time.time())
    rp.set_profile("")
    assert_ack(signed(client, rp, rp.request(exp=now + 70 * MINUTE)))
    rp.set_profile(FAPI)
    assert_error(signed(client, rp, rp.request(exp=now + 70 * MINUTE)), 400, "invalid_request", "too long")


def test_fapi09_nbf_over_60_minutes_old_refused_whatever_the_settings(client, rp, ciba_settings):
    # FAPI-09 (ensure-request-object-nbf-is-70-minutes-in-past-fails), as Part 2 5.2.2-17.
    ciba_settings.set(REQUEST_OBJECT_MAX_LIFETIME=7200, REQUEST_OBJECT_MAX_AGE=7200)
    now = int(time.time())
    old = {"nbf": now - 70 * MINUTE, "iat": now - 70 * MINUTE, "exp": now + 5 * MINUTE}
    rp.set_profile("")
    assert_ack(signed(client, rp, rp.request(**old)))
    rp.set_profile(FAPI)
    assert_error(signed(client, rp, rp.request(**old)), 400, "invalid_request", "too old")


def test_fapi02_binding_message_required_without_other_context(client, rp):
    # FAPI-02 (FAPI-CIBA 5.2.2-2): no binding_message and no unique context -> invalid_request.
    rp.set_profile("")
    assert_ack(signed(client, rp, rp.request(binding_message=None)))
    rp.set_profile(FAPI)
    assert_error(
        signed(client, rp, rp.request(binding_message=None)), 400, "invalid_request", "binding_message"
    )
    empty = rp.request(binding_message=None, authorization_details=[])
    assert_error(signed(client, rp, empty), 400, "invalid_request", "binding_message")


@pytest.mark.parametrize(
    "context",
    [
        {"authorization_details": [{"type": "payment_initiation", "instructedAmount": "10.00"}]},
        {"request_context": {"ip": "198.51.100.7"}},
    ],
    ids=["authorization_details", "request_context"],
)
def test_fapi02_unique_authorization_context_replaces_binding_message(client, rp, context):
    # FAPI-02 / FAPI-10: authorization_details or request_context is the unique context.
    assert_ack(signed(client, rp, rp.request(binding_message=None, **context)))


def test_fapi12_client_secret_refused_at_bc_authorize(client, user):
    # FAPI-12 (Part 2 5.2.2-14) / FAPI-01: a client secret does not authenticate under FAPI-CIBA.
    secret_rp = make_rp("Secret RP", profile="", auth_method=AuthMethod.CLIENT_SECRET_BASIC)
    basic = {"HTTP_AUTHORIZATION": basic_auth(secret_rp.app.client_id, secret_rp.secret)}
    form = {"scope": "openid", "login_hint": "alice", "binding_message": "W4SCT"}
    assert_ack(post(client, BC_URL, form, **basic))
    secret_rp.set_profile(FAPI)
    assert_error(post(client, BC_URL, form, **basic), 401, "invalid_client")


@pytest.mark.parametrize("endpoint", ["backchannel", "token"])
def test_fapi13_client_assertion_rs256_refused(client, user, endpoint):
    # FAPI-13 (ensure-client-assertion-signature-algorithm-in-{backchannel-authorization,
    # token-endpoint}-request-is-RS256-fails): invalid_client, 401.
    rs = make_rp("RS256 assertion RP", "RS256", profile="")
    CibaClient.objects.filter(application=rs.app).update(jwks={"keys": [KEYS["PS256"][1], KEYS["RS256"][1]]})
    ps_request = request_object(
        rs.app,
        KEYS["PS256"][0],
        issuer=ISSUER,
        alg="PS256",
        kid="fapi-PS256",
        scope="openid",
        login_hint="alice",
    )
    auth_req_id = assert_ack(post(client, BC_URL, {"request": ps_request, **rs.assertion()}))
    poll = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}
    assert_error(post(client, TOKEN_URL, {**poll, **rs.assertion()}), 400, "authorization_pending")
    rs.set_profile(FAPI)
    if endpoint == "backchannel":
        ps_request = request_object(
            rs.app,
            KEYS["PS256"][0],
            issuer=ISSUER,
            alg="PS256",
            kid="fapi-PS256",
            scope="openid",
            login_hint="alice",
            binding_message="W4SCT",
        )
        assert_error(post(client, BC_URL, {"request": ps_request, **rs.assertion()}), 401, "invalid_client")
    else:
        assert_error(post(client, TOKEN_URL, {**poll, **rs.assertion()}), 401, "invalid_client")


def test_fapi03_push_client_refused_at_bc_authorize(client, user):
    # FAPI-03 (FAPI-CIBA 5.2.2-3): a push client held to the profile -> unauthorized_client.
    push = make_rp(
        "Push RP", profile="", mode=DeliveryMode.PUSH, notification_endpoint="https://rp.example.com/cb"
    )
    # A DPoP-bound push client names its key (docs/sender-constrained.rst).
    form = {
        "scope": "openid",
        "login_hint": "alice",
        "client_notification_token": "tok-123",
        "dpop_jkt": "k" * 43,
    }
    push_request = push.request(**form)
    assert_ack(signed(client, push, push_request))
    push.set_profile(FAPI)
    assert_error(signed(client, push, push.request(**form)), 400, "unauthorized_client", "push")


# --------------------------------------------------------------------------------------------
# token endpoint


def test_fapi12_client_secret_refused_at_the_token_endpoint(client, user):
    # FAPI-12: the same rule at the token endpoint (a request started before the profile was set).
    secret_rp = make_rp("Secret poller", profile="", auth_method=AuthMethod.CLIENT_SECRET_BASIC)
    basic = {"HTTP_AUTHORIZATION": basic_auth(secret_rp.app.client_id, secret_rp.secret)}
    auth_req_id = assert_ack(post(client, BC_URL, {"scope": "openid", "login_hint": "alice"}, **basic))
    poll = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}
    assert_error(post(client, TOKEN_URL, poll, **basic), 400, "authorization_pending")
    secret_rp.set_profile(FAPI)
    assert_error(post(client, TOKEN_URL, poll, **basic), 401, "invalid_client")


def test_fapi03_push_client_gets_no_grant_at_the_token_endpoint(client, user):
    # FAPI-03: a push client under the profile gets nothing from any grant (unauthorized_client).
    push = make_rp(
        "Push client credentials",
        profile="",
        mode=DeliveryMode.PUSH,
        notification_endpoint="https://rp.example.com/cb",
    )
    # Not DPoP-bound here: without a proof, client_credentials answers before the profile is set.
    CibaClient.objects.filter(application=push.app).update(dpop_bound_access_tokens=False)
    push.app.refresh_from_db()
    grant = {"grant_type": "client_credentials", "scope": "openid"}
    assert post(client, TOKEN_URL, {**grant, **push.assertion()}).status_code == 200
    push.set_profile(FAPI)
    assert_error(post(client, TOKEN_URL, {**grant, **push.assertion()}), 400, "unauthorized_client")


def test_fapi12_applications_without_a_ciba_registration_keep_dot_methods(client, ciba_settings):
    # FAPI-12 applies to CIBA registrations; DOT's own applications (e.g. resource servers calling
    # introspection) keep their client secret under the OP-wide profile.
    app, secret = create_ciba_client("Resource server", profile="")
    CibaClient.objects.filter(application=app).delete()
    app.refresh_from_db()
    ciba_settings.set(PROFILE=FAPI)
    response = post(
        client,
        TOKEN_URL,
        {"grant_type": "client_credentials", "scope": "openid"},
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 200, response.content
