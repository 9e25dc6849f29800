"""Signed authentication requests: the ``request`` parameter at /o/bc-authorize (CIBA Core §7.1.1).

Every test names the requirement it covers (IDs from ciba-requirements.md): SR-* (signed request),
FAPI-09 (lifetime and age), VAL-01/VAL-02 (order of checks), AERR-01 (invalid_request). The
negative cases mirror the OpenID conformance suite's ``ensure-request-object-*-fails`` modules.
Client authentication is client_secret_basic throughout. Refusals are also checked for the reason
given in ``error_description``, so that a request refused for some other reason does not pass.
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
import pytest

from django_ciba.models import AuthenticationRequest, DeliveryMode, JwtUse
from django_ciba.testing import (
    bc_authorize,
    create_ciba_client,
    make_client_key,
    request_object,
    sign_jwt,
)
from tests.unit.protocol import DESCRIPTION_RE


pytestmark = pytest.mark.django_db

ISSUER = "http://testserver/o"
MINUTE = 60


# --- helpers


@functools.cache
def key_pair(alg: str, label: str) -> tuple[Any, dict[str, Any]]:
    """One key per (alg, label) for the whole module: RSA generation is slow."""
    return make_client_key(alg, kid=f"{label}-{alg}")


@dataclass
class Signer:
    """A client registered for signed requests, with its private key."""

    application: Any
    secret: str
    key: Any
    kid: str
    alg: str

    def token(self, **claims: Any) -> str:
        """A valid signed request for alice with ``scope=openid``; ``claims`` override (None removes)."""
        claims = {"scope": "openid", "login_hint": "alice", **claims}
        return request_object(self.application, self.key, issuer=ISSUER, alg=self.alg, kid=self.kid, **claims)

    def claims(self, **claims: Any) -> dict[str, Any]:
        """A valid claim set (alice, ``scope=openid``, 5 minutes); ``claims`` override it as they are."""
        now = int(time.time())
        return {
            "iss": self.application.client_id,
            "aud": ISSUER,
            "iat": now,
            "nbf": now,
            "exp": now + 5 * MINUTE,
            "jti": secrets.token_urlsafe(16),
            "scope": "openid",
            "login_hint": "alice",
            **claims,
        }

    def post(self, http_client: Any, token: str, **form: Any) -> Any:
        return bc_authorize(http_client, self.application, self.secret, request=token, **form)


def make_signer(name: str, alg: str = "PS256", *, register_alg: bool = True, **fields: Any) -> Signer:
    key, public = key_pair(alg, name)
    application, secret = create_ciba_client(
        name, request_signing_alg=alg if register_alg else "", jwks={"keys": [public]}, **fields
    )
    return Signer(application, secret, key, public["kid"], alg)


@pytest.fixture
def signer(db, user) -> Signer:
    return make_signer("Signing client")


@pytest.fixture
def other(db) -> Signer:
    return make_signer("Other client")


def assert_ack(response) -> dict:
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"auth_req_id", "expires_in", "interval"}
    return body


def assert_refused(response, reason: str | tuple[str, ...], *, rows: int = 0) -> dict:
    """AERR-01: 400 invalid_request whose description mentions ``reason`` (or one of them); VAL-09."""
    assert response.status_code == 400, response.content
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert body["error"] == "invalid_request", body
    assert set(body) == {"error", "error_description"}, body
    assert DESCRIPTION_RE.match(body["error_description"]), body["error_description"]
    reasons = (reason,) if isinstance(reason, str) else reason
    assert any(text.lower() in body["error_description"].lower() for text in reasons), body
    assert AuthenticationRequest.objects.count() == rows
    return body


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# --- SR-01 / SR-11 / SR-12: accepted requests


def test_sr01_signed_request_succeeds_with_the_jwt_values(client, signer):
    # SR-01 / VAL-02: the parameters are the JWT's claims; the stored request holds them.
    token = signer.token(scope="openid profile", binding_message="W4SCT", acr_values="urn:acr:2fa")
    assert_ack(signer.post(client, token))
    stored = AuthenticationRequest.objects.get()
    assert stored.client == signer.application
    assert stored.user.get_username() == "alice"
    assert stored.hint_type == "login_hint"
    assert stored.scope == "openid profile"
    assert stored.binding_message == "W4SCT"
    assert stored.acr_values == "urn:acr:2fa"
    assert JwtUse.objects.filter(client=signer.application, kind=JwtUse.Kind.REQUEST_OBJECT).count() == 1


def test_sr01_form_client_id_matching_the_client_is_allowed(client, signer):
    # SR-10: client_id is a client-authentication parameter and may stay in the form.
    assert_ack(signer.post(client, signer.token(), client_id=signer.application.client_id))


@pytest.mark.parametrize("expiry", ["120", 120, 120.0])
def test_sr11_requested_expiry_as_string_or_number(client, signer, expiry):
    # SR-11: requested_expiry may be a JSON string or a JSON number (ensure-requested-expiry-as-string).
    body = assert_ack(signer.post(client, signer.token(requested_expiry=expiry)))
    assert body["expires_in"] == 120
    assert AuthenticationRequest.objects.get().requested_expiry == 120


@pytest.mark.parametrize("expiry", [120.5, True, None, ["120"], {"s": 120}])
def test_sr11_requested_expiry_of_another_type_refused(client, signer, expiry):
    # SR-11 / AERR-01: neither a string nor an integer number -> invalid_request.
    claims = signer.claims(requested_expiry=expiry)
    token = sign_jwt(claims, signer.key, alg=signer.alg, kid=signer.kid)
    assert_refused(signer.post(client, token), "requested_expiry")


def test_sr12_profile_claims_of_any_json_type_are_ignored(client, signer):
    # SR-12 / BC-14: request_context, authorization_details (objects, arrays) are allowed and ignored.
    token = signer.token(
        request_context={"ip": "198.51.100.7"},
        authorization_details=[{"type": "payment_initiation"}],
        sub="ignored",
    )
    assert_ack(signer.post(client, token))
    assert AuthenticationRequest.objects.get().scope == "openid"


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("login_hint", 12345),
        ("scope", ["openid"]),
        ("binding_message", {"text": "W4SCT"}),
        ("acr_values", None),
        ("user_code", 1234),
        ("login_hint", "ali\x00ce"),
    ],
)
def test_sr12_standard_parameter_must_be_a_json_string(client, signer, claim, value):
    # SR-12: the CIBA parameters are JSON strings in the JWT -> invalid_request naming the claim.
    claims = signer.claims(**{claim: value})
    token = sign_jwt(claims, signer.key, alg=signer.alg, kid=signer.kid)
    assert_refused(signer.post(client, token), claim)


def test_sr12_jwt_parameters_are_validated_like_form_parameters(client, signer):
    # VAL-02 then BC-05: the converted claims go through the usual rules (scope needs openid).
    response = signer.post(client, signer.token(scope="profile"))
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert "openid" in response.json()["error_description"]


def test_sr12_ping_client_notification_token_from_the_jwt(client, user):
    # SR-12 / BC-06: a ping client's client_notification_token comes from the JWT.
    ping = make_signer(
        "Ping signer", mode=DeliveryMode.PING, notification_endpoint="https://rp.example.com/cb"
    )
    assert_ack(
        ping.post(client, ping.token(client_notification_token="8d67dc78-7faa-4d41-aabd-67707b374255"))
    )
    assert AuthenticationRequest.objects.get().client_notification_token_sealed


def test_sr12_ping_client_without_token_in_the_jwt_refused(client, user):
    # SR-10 / BC-06: the token is not looked for anywhere but the JWT.
    ping = make_signer(
        "Ping signer", mode=DeliveryMode.PING, notification_endpoint="https://rp.example.com/cb"
    )
    assert_refused(ping.post(client, ping.token()), "client_notification_token")


def test_sr09_es256_client(client, user):
    # SR-09 / FAPI-13: an ES256 client (P-256 key) signs its requests with ES256.
    es = make_signer("EC client", "ES256")
    assert_ack(es.post(client, es.token()))


def test_sr09_client_without_registered_alg_may_use_any_supported_alg(client, user):
    # SR-09: without request_signing_alg, any of SIGNING_ALGORITHMS is accepted.
    rs = make_signer("RS client", "RS256", register_alg=False)
    assert_ack(rs.post(client, rs.token()))


def test_sr09_unregistered_alg_outside_signing_algorithms_refused(client, user, ciba_settings):
    # SR-09 / FAPI-13: with SIGNING_ALGORITHMS = [PS256, ES256], RS256 is refused.
    ciba_settings.set(SIGNING_ALGORITHMS=["PS256", "ES256"])
    rs = make_signer("RS client", "RS256", register_alg=False)
    assert_refused(rs.post(client, rs.token()), "RS256")


def test_sr09_registered_alg_no_longer_supported_refused(client, signer, ciba_settings):
    # SR-09: the registered alg must also still be one the OP accepts.
    ciba_settings.set(SIGNING_ALGORITHMS=["ES256"])
    assert_refused(signer.post(client, signer.token()), "PS256")


# --- SR-15: typ


@pytest.mark.parametrize("typ", [None, "OautH-auThZ-REQ+jWt", "oauth-authz-req+jwt", "JWT"])
def test_sr15_typ_absent_or_request_object_accepted(client, signer, typ):
    # SR-15: no typ, or oauth-authz-req+jwt compared case-insensitively (as the suite sends it).
    claims = signer.claims()
    # PyJWT adds typ: JWT unless told otherwise; typ=None leaves it out.
    token = sign_jwt(claims, signer.key, alg=signer.alg, kid=signer.kid, typ=typ)
    assert jwt.get_unverified_header(token).get("typ") == typ
    assert_ack(signer.post(client, token))


@pytest.mark.parametrize("typ", ["secevent+jwt", "at+jwt", "JOSE"])
def test_sr15_other_typ_refused(client, signer, typ):
    # SR-15: any other typ -> invalid_request.
    claims = signer.claims()
    token = sign_jwt(claims, signer.key, alg=signer.alg, kid=signer.kid, typ=typ)
    assert_refused(signer.post(client, token), "typ")


# --- SR-03: required claims (ensure-request-object-missing-*-fails)


def test_sr03_missing_aud_fails(client, signer):
    assert_refused(signer.post(client, signer.token(aud=None)), "no aud claim")


def test_sr03_missing_iss_fails(client, signer):
    assert_refused(signer.post(client, signer.token(iss=None)), "no iss claim")


def test_sr03_fapi09_missing_exp_fails(client, signer):
    assert_refused(signer.post(client, signer.token(exp=None)), "no exp claim")


def test_sr03_missing_iat_fails(client, signer):
    assert_refused(signer.post(client, signer.token(iat=None)), "no iat claim")


def test_sr03_fapi09_missing_nbf_fails(client, signer):
    assert_refused(signer.post(client, signer.token(nbf=None)), "no nbf claim")


def test_sr03_missing_jti_fails(client, signer):
    assert_refused(signer.post(client, signer.token(jti=None)), "no jti claim")


@pytest.mark.parametrize(
    ("claim", "value"),
    [("exp", "9999999999"), ("iat", True), ("nbf", None), ("jti", ""), ("jti", "j" * 257)],
)
def test_sr03_claim_of_wrong_type_refused(client, signer, claim, value):
    # SR-03: exp/iat/nbf are numbers, jti a non-empty string of bounded length.
    token = sign_jwt(signer.claims(**{claim: value}), signer.key, alg=signer.alg, kid=signer.kid)
    assert_refused(signer.post(client, token), claim)


def test_sr03_jti_number_refused(client, signer):
    # SR-03: a numeric jti is refused (PyJWT may already reject it while decoding: "malformed").
    token = sign_jwt(signer.claims(jti=42), signer.key, alg=signer.alg, kid=signer.kid)
    assert_refused(signer.post(client, token), ("jti", "malformed"))


@pytest.mark.parametrize("aud", [123, [ISSUER, 7], {"aud": ISSUER}])
def test_sr03_aud_of_wrong_type_refused(client, signer, aud):
    assert_refused(signer.post(client, signer.token(aud=aud)), "aud")


# --- SR-04 / SR-05: aud and iss


def test_sr04_bad_aud_fails(client, signer):
    # SR-04: ensure-request-object-bad-aud-fails.
    assert_refused(signer.post(client, signer.token(aud="https://www.other1.example.com/")), "aud")


def test_sr04_issuer_with_extra_trailing_slash_refused(client, signer):
    # SR-04: the issuer identifier is compared exactly.
    assert_refused(signer.post(client, signer.token(aud=ISSUER + "/")), "aud")


def test_sr04_aud_list_containing_the_issuer_accepted(client, signer):
    # SR-04: aud may be an array that contains the issuer.
    assert_ack(signer.post(client, signer.token(aud=["https://www.other1.example.com/", ISSUER])))


def test_sr05_bad_iss_fails(client, signer, other):
    # SR-05: ensure-request-object-bad-iss-fails (another valid client's client_id).
    assert_refused(signer.post(client, signer.token(iss=other.application.client_id)), "iss")


def test_sr05_client_id_claim_of_another_client_refused(client, signer, other):
    # SR-05 / SR-10: a client_id claim must be the authenticated client's.
    token = signer.token(client_id=other.application.client_id)
    assert_refused(signer.post(client, token, client_id=signer.application.client_id), "client_id")


# --- SR-06 / SR-07 / FAPI-09: times


def test_sr06_expired_exp_fails(client, signer):
    # SR-06: ensure-request-object-expired-exp-fails.
    now = int(time.time())
    token = signer.token(iat=now - 10 * MINUTE, nbf=now - 10 * MINUTE, exp=now - 5 * MINUTE)
    assert_refused(signer.post(client, token), "expired")


def test_fapi09_exp_70_minutes_in_future_fails(client, signer):
    # FAPI-09: ensure-request-object-exp-is-70-minutes-in-future-fails (exp - nbf > 60 minutes).
    now = int(time.time())
    assert_refused(signer.post(client, signer.token(nbf=now, exp=now + 70 * MINUTE)), "exp - nbf")


def test_fapi09_nbf_70_minutes_in_past_fails(client, signer):
    # FAPI-09: ensure-request-object-nbf-is-70-minutes-in-past-fails.
    now = int(time.time())
    token = signer.token(iat=now, nbf=now - 70 * MINUTE, exp=now + 5 * MINUTE)
    assert_refused(signer.post(client, token), "too old")


def test_sr07_nbf_10_minutes_in_future_fails(client, signer):
    # SR-07: ensure-request-object-nbf-is-10-minutes-in-future-fails.
    now = int(time.time())
    token = signer.token(nbf=now + 10 * MINUTE, exp=now + 15 * MINUTE)
    assert_refused(signer.post(client, token), "nbf")


def test_sr07_iat_in_the_future_refused(client, signer):
    now = int(time.time())
    assert_refused(signer.post(client, signer.token(iat=now + 10 * MINUTE)), "iat")


def test_sr07_small_clock_skew_tolerated(client, signer):
    # SR-07: nbf and iat a little ahead (within JWT_LEEWAY) are accepted.
    now = int(time.time())
    assert_ack(signer.post(client, signer.token(iat=now + 10, nbf=now + 10, exp=now + 5 * MINUTE)))


def test_fapi09_limits_follow_the_settings(client, signer, ciba_settings):
    # FAPI-09: REQUEST_OBJECT_MAX_LIFETIME bounds exp - nbf.
    ciba_settings.set(REQUEST_OBJECT_MAX_LIFETIME=60)
    assert_refused(signer.post(client, signer.token()), "exp - nbf")


def test_fapi09_exp_before_nbf_refused(client, signer):
    now = int(time.time())
    assert_refused(signer.post(client, signer.token(nbf=now + 20, exp=now + 10)), "later than nbf")


# --- SR-02 / SR-08 / SR-09 / SR-13: signature


def test_sr02_alg_none_fails(client, signer):
    # SR-02: ensure-request-object-signature-algorithm-is-none-fails.
    claims = signer.claims()
    token = jwt.encode(claims, None, algorithm="none")
    assert token.endswith(".")
    assert_refused(signer.post(client, token), "asymmetric")


def test_sr02_hs256_fails(client, signer):
    # SR-02: a symmetric algorithm is never accepted (here keyed with the client secret).
    claims = signer.claims()
    token = jwt.encode(claims, signer.secret, algorithm="HS256")
    assert_refused(signer.post(client, token), "asymmetric")


def test_sr09_rs256_when_ps256_registered_fails(client, signer):
    # SR-09 / FAPI-13: ensure-request-object-signature-algorithm-is-RS256-fails (same RSA key).
    claims = signer.claims()
    token = sign_jwt(claims, signer.key, alg="RS256", kid=signer.kid)
    assert_refused(signer.post(client, token), "RS256")


def test_sr08_signed_by_other_client_fails(client, signer, other):
    # SR-08: ensure-request-object-signed-by-other-client-fails.
    claims = signer.claims()
    for kid in (other.kid, None):
        token = sign_jwt(claims, other.key, alg="PS256", kid=kid)
        assert_refused(signer.post(client, token), "verifies")


def test_sr08_corrupted_signature_fails(client, signer):
    # SR-08: ensure-request-object-signature-algorithm-is-bad-fails (signature bytes altered).
    header, payload, signature = signer.token().split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    token = ".".join([header, payload, signature[:middle] + flipped + signature[middle + 1 :]])
    assert_refused(signer.post(client, token), "verifies")


def test_sr13_encrypted_request_refused(client, signer):
    # SR-13: a JWE (5 parts) is not accepted.
    token = ".".join(
        [b64({"alg": "RSA-OAEP-256", "enc": "A256GCM", "kid": signer.kid}), "", "iv", "ct", "tag"]
    )
    assert_refused(signer.post(client, token), "encrypted")


def test_sr13_garbage_request_refused(client, signer):
    assert_refused(signer.post(client, "not-a-jwt"), "malformed")


def test_sr08_client_without_keys_sending_request_refused(client, user, poll_client):
    # SR-08: no registered keys, nothing can verify the request.
    app, secret = poll_client
    key, _ = key_pair("PS256", "Keyless")
    token = request_object(app, key, issuer=ISSUER, scope="openid", login_hint="alice")
    assert_refused(bc_authorize(client, app, secret, request=token), "no keys")


# --- SR-10: nothing outside the JWT


@pytest.mark.parametrize("name", ["scope", "login_hint", "binding_message", "requested_expiry", "foo"])
def test_sr10_form_parameter_outside_the_jwt_refused(client, signer, name):
    # SR-10: only client-authentication parameters may accompany request; the error names it.
    body = assert_refused(signer.post(client, signer.token(), **{name: "openid"}), "not in the form")
    assert name in body["error_description"]


def test_sr10_request_uri_refused(client, signer):
    assert_refused(
        signer.post(client, signer.token(), request_uri="https://rp.example.com/r/1"), "request_uri"
    )


def test_sr10_request_uri_alone_refused(client, signer):
    response = bc_authorize(client, signer.application, signer.secret, request_uri="urn:example:1")
    assert_refused(response, "request_uri")


# --- REG-04 / FAPI: unsigned requests refused when signing is required


def test_reg04_registered_alg_requires_signed_request(client, signer):
    # REG-04: a client that registered request_signing_alg must sign.
    response = bc_authorize(client, signer.application, signer.secret, scope="openid", login_hint="alice")
    assert_refused(response, "must send a signed")


def test_require_signed_requests_refuses_unsigned_for_every_client(
    client, user, poll_client, signer, ciba_settings
):
    # FAPI-CIBA 5.2.2-6: REQUIRE_SIGNED_REQUESTS refuses unsigned requests, keys or not.
    ciba_settings.set(REQUIRE_SIGNED_REQUESTS=True)
    unsigned = make_signer("Unsigned-alg client", register_alg=False)
    for app, secret in (poll_client, (unsigned.application, unsigned.secret)):
        response = bc_authorize(client, app, secret, scope="openid", login_hint="alice")
        assert_refused(response, "must send a signed")
    assert_ack(signer.post(client, signer.token()))


# --- SR-14: replay


def test_sr14_replayed_jti_fails(client, signer):
    # SR-14: the same JWT sent twice -> the second is refused.
    token = signer.token()
    assert_ack(signer.post(client, token))
    assert_refused(signer.post(client, token), "replayed", rows=1)


def test_sr14_same_jti_in_a_new_jwt_fails(client, signer):
    assert_ack(signer.post(client, signer.token(jti="once")))
    assert_refused(signer.post(client, signer.token(jti="once", binding_message="again")), "replayed", rows=1)


def test_sr14_refused_jwt_does_not_use_up_its_jti(client, signer):
    # SR-14: the jti is recorded only once every other check of the JWT passed.
    assert_refused(
        signer.post(client, signer.token(jti="kept", aud="https://www.other1.example.com/")), "aud"
    )
    assert_refused(signer.post(client, signer.token(jti="kept", login_hint=7)), "login_hint")
    assert not JwtUse.objects.exists()
    assert_ack(signer.post(client, signer.token(jti="kept")))


def test_sr14_jti_is_per_client(client, signer, other):
    assert_ack(signer.post(client, signer.token(jti="shared")))
    assert_ack(other.post(client, other.token(jti="shared")))


def test_sr14_jti_remembered_until_exp_plus_leeway(client, signer):
    now = int(time.time())
    assert_ack(signer.post(client, signer.token(exp=now + 120)))
    stored = JwtUse.objects.get().expires_at.timestamp()
    assert stored == pytest.approx(now + 120 + 30)


# --- VAL-01 / VAL-02: order


def test_val01_client_authentication_comes_first(client, signer):
    # VAL-01: a bad client secret is invalid_client, whatever the JWT; the JWT is not even read.
    token = signer.token()
    for request in ("garbage", token):
        response = bc_authorize(client, signer.application, "wrong-secret", request=request)
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_client"
    assert not JwtUse.objects.exists()
    assert_ack(signer.post(client, token))


def test_val02_jwt_checked_before_the_user_is_resolved(client, signer):
    # VAL-02: an unknown user inside an expired JWT is invalid_request, not unknown_user_id.
    now = int(time.time())
    token = signer.token(login_hint="nobody", iat=now - 600, nbf=now - 600, exp=now - 300)
    assert_refused(signer.post(client, token), "expired")
