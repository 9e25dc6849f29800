"""private_key_jwt client authentication (RFC 7523 §2.2, OIDC Core §9) at both endpoints.

The same validator authenticates clients at /bc-authorize and at the token endpoint (BC-03, TOK-02,
REG-07, DISC-06), so most checks run at both: ``endpoint`` is parametrized. At the token endpoint the
client polls a pending request it started; ``authorization_pending`` (or ``slow_down``) proves that it
authenticated, while a failed authentication is always ``invalid_client`` with 401 (AERR-09).

Every refusal test first makes a good request with the same client, so it also shows that the
client would have been accepted.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from oauth2_provider.models import AccessToken, RefreshToken

from django_ciba.approval import decisions
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.models import AuthenticationRequest, AuthMethod, CibaClient, JwtUse
from django_ciba.testing import FORM, basic_auth, client_assertion, create_ciba_client, make_client_key


pytestmark = pytest.mark.django_db

ISSUER = "http://testserver/o"
BC_URL = "/o/bc-authorize"
TOKEN_URL = "/o/token/"
BC_AUD = "http://testserver/o/bc-authorize"
TOKEN_AUD = "http://testserver/o/token/"
JWKS_URI = "https://rp.example.com/jwks.json"

# Key generation is slow: one key per algorithm for the whole module, plus a stranger's key.
KEYS = {alg: make_client_key(alg, kid=f"key-{alg}") for alg in ("PS256", "ES256", "RS256")}
STRANGER_KEY, _ = make_client_key("PS256", kid="key-PS256")


# --------------------------------------------------------------------------------------------
# helpers


@dataclass
class Rp:
    """A registered private_key_jwt client and the private key it signs with."""

    app: Any
    secret: str
    key: Any
    kid: str | None
    alg: str

    def assertion(
        self, audience: str | list[str] = ISSUER, *, key: Any = None, **overrides: Any
    ) -> dict[str, str]:
        options = {"alg": self.alg, "kid": self.kid}
        options.update({name: overrides.pop(name) for name in ("alg", "kid") if name in overrides})
        return client_assertion(self.app, key or self.key, audience=audience, **options, **overrides)


def register(name: str = "Signing RP", alg: str = "PS256", *, jwk: dict | None = None, **fields: Any) -> Rp:
    private_key, public_jwk = KEYS[alg]
    fields.setdefault("auth_method", AuthMethod.PRIVATE_KEY_JWT)
    if "jwks_uri" not in fields:
        fields.setdefault("jwks", {"keys": [jwk or public_jwk]})
    app, secret = create_ciba_client(name, scope="openid profile offline_access", **fields)
    return Rp(app, secret, private_key, (jwk or public_jwk).get("kid"), alg)


def post(http: Any, url: str, data: dict[str, str], **headers: Any) -> Any:
    return http.post(url, data=urlencode(data), content_type=FORM, **headers)


def bc_form(**fields: str) -> dict[str, str]:
    return {"scope": "openid offline_access", "login_hint": "alice", **fields}


def assert_invalid_client(response: Any) -> None:
    """AERR-09 / TOK-02: 401 with the invalid_client error."""
    assert response.status_code == 401, response.content
    assert response.json()["error"] == "invalid_client"


class Endpoint:
    """Sends client-authenticated requests to one endpoint and tells whether the client got in."""

    def __init__(self, http: Any, name: str) -> None:
        self.http, self.name = http, name
        self._pending: dict[int, str] = {}

    def send(self, rp: Rp, fields: dict[str, str], **headers: Any) -> Any:
        if self.name == "backchannel":
            return post(self.http, BC_URL, bc_form(**fields), **headers)
        data = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": self.pending(rp), **fields}
        return post(self.http, TOKEN_URL, data, **headers)

    def pending(self, rp: Rp) -> str:
        """A pending auth_req_id of ``rp``, started once with its registered method."""
        if rp.app.pk not in self._pending:
            if rp.app.ciba.token_endpoint_auth_method == AuthMethod.PRIVATE_KEY_JWT:
                response = post(self.http, BC_URL, bc_form(**rp.assertion(BC_AUD)))
            else:
                basic = basic_auth(rp.app.client_id, rp.secret)
                response = post(self.http, BC_URL, bc_form(), HTTP_AUTHORIZATION=basic)
            assert response.status_code == 200, response.content
            self._pending[rp.app.pk] = response.json()["auth_req_id"]
        return self._pending[rp.app.pk]

    def assert_accepted(self, response: Any) -> None:
        if self.name == "backchannel":
            assert response.status_code == 200, response.content
            assert response.json()["auth_req_id"]
        else:
            assert response.status_code == 400, response.content
            assert response.json()["error"] in ("authorization_pending", "slow_down")


@pytest.fixture(params=["backchannel", "token"])
def endpoint(request, client, user):
    return Endpoint(client, request.param)


@pytest.fixture
def rp(db):
    return register()


def assert_refused(endpoint: Endpoint, rp: Rp, fields: dict[str, str], **headers: Any) -> None:
    """A good assertion of ``rp`` is accepted; ``fields`` (and ``headers``) are refused."""
    endpoint.assert_accepted(endpoint.send(rp, rp.assertion()))
    assert_invalid_client(endpoint.send(rp, fields, **headers))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def claims_for(rp: Rp, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": rp.app.client_id,
        "sub": rp.app.client_id,
        "aud": ISSUER,
        "iat": now,
        "exp": now + 60,
        "jti": f"jti-{time.monotonic_ns()}",
    }
    claims.update(overrides)
    return claims


def assertion_fields(token: str) -> dict[str, str]:
    return {
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": token,
    }


# --------------------------------------------------------------------------------------------
# BC-04 / TOK-02: accepted audiences and algorithms


@pytest.mark.parametrize("audience", [ISSUER, TOKEN_AUD, BC_AUD], ids=["issuer", "token-url", "bc-url"])
def test_bc04_accepts_issuer_token_and_backchannel_urls_as_aud(endpoint, rp, audience):
    endpoint.assert_accepted(endpoint.send(rp, rp.assertion(audience)))


def test_bc04_aud_may_be_a_list_holding_an_accepted_value(endpoint, rp):
    endpoint.assert_accepted(endpoint.send(rp, rp.assertion(["https://other.example", BC_AUD])))


@pytest.mark.parametrize("alg", ["PS256", "ES256", "RS256"])
def test_tok02_each_asymmetric_algorithm_and_key_type_works(endpoint, alg):
    signer = register(f"{alg} RP", alg)
    endpoint.assert_accepted(endpoint.send(signer, signer.assertion()))


def test_reg07_registered_auth_signing_alg_is_accepted(endpoint):
    signer = register("ES256 RP", "ES256", token_endpoint_auth_signing_alg="ES256")
    endpoint.assert_accepted(endpoint.send(signer, signer.assertion()))


def test_bc03_matching_client_id_parameter_is_accepted(endpoint, rp):
    endpoint.assert_accepted(endpoint.send(rp, {"client_id": rp.app.client_id, **rp.assertion()}))


def test_bc03_backchannel_success_records_the_request_for_the_client(client, user, rp):
    response = post(client, BC_URL, bc_form(**rp.assertion(BC_AUD)))
    assert response.status_code == 200, response.content
    auth = AuthenticationRequest.objects.by_auth_req_id(response.json()["auth_req_id"]).get()
    assert auth.client == rp.app and auth.user == user
    assert JwtUse.objects.filter(client=rp.app, kind=JwtUse.Kind.CLIENT_ASSERTION).count() == 1


# --------------------------------------------------------------------------------------------
# AERR-09: refused assertions (401 invalid_client at both endpoints)


def test_aerr09_missing_client_assertion_type_is_refused(endpoint, rp):
    fields = rp.assertion()
    del fields["client_assertion_type"]
    assert_refused(endpoint, rp, fields)


@pytest.mark.parametrize(
    "assertion_type",
    [
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
    ],
)
def test_aerr09_wrong_client_assertion_type_is_refused(endpoint, rp, assertion_type):
    assert_refused(endpoint, rp, {**rp.assertion(), "client_assertion_type": assertion_type})


def test_aerr09_client_assertion_type_without_assertion_is_refused(endpoint, rp):
    fields = rp.assertion()
    del fields["client_assertion"]
    assert_refused(endpoint, rp, fields)


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "a.b.c.d.e"], ids=["garbage", "bad-parts", "jwe"])
def test_aerr09_malformed_assertion_is_refused(endpoint, rp, token):
    assert_refused(endpoint, rp, {**rp.assertion(), "client_assertion": token})


@pytest.mark.parametrize(
    "audience",
    ["https://other.example/o", ISSUER + "/", "http://testserver/o/token", ["https://other.example"]],
    ids=["other-issuer", "issuer-slash", "token-url-no-slash", "list-without-ours"],
)
def test_bc04_wrong_aud_is_refused(endpoint, rp, audience):
    assert_refused(endpoint, rp, rp.assertion(audience))


def test_bc04_missing_aud_is_refused(endpoint, rp):
    assert_refused(endpoint, rp, rp.assertion(aud=None))


def test_bc03_iss_different_from_sub_is_refused(endpoint, rp):
    other = register("Other RP", "ES256")
    assert_refused(endpoint, rp, rp.assertion(sub=other.app.client_id))


def test_bc03_client_id_parameter_different_from_iss_is_refused(endpoint, rp):
    # ensure-different-client-id-and-issuer-in-backchannel-authorization-request: 401 invalid_client.
    other = register("Other RP", "ES256")
    assert_refused(endpoint, rp, {"client_id": other.app.client_id, **rp.assertion()})


def test_aerr09_unknown_client_is_refused(endpoint, rp):
    assert_refused(endpoint, rp, rp.assertion(iss="no-such-client", sub="no-such-client"))


def test_aerr09_expired_assertion_is_refused(endpoint, rp, ciba_settings):
    ciba_settings.set(JWT_LEEWAY=5)
    now = int(time.time())
    assert_refused(endpoint, rp, rp.assertion(iat=now - 120, exp=now - 60))


def test_aerr09_exp_beyond_the_maximum_lifetime_is_refused(endpoint, rp, ciba_settings):
    ciba_settings.set(CLIENT_ASSERTION_MAX_LIFETIME=300, JWT_LEEWAY=5)
    assert_refused(endpoint, rp, rp.assertion(lifetime=400))


@pytest.mark.parametrize(
    "exp", [None, "4102444800", float("nan"), True], ids=["missing", "string", "nan", "bool"]
)
def test_aerr09_missing_or_non_numeric_exp_is_refused(endpoint, rp, exp):
    assert_refused(endpoint, rp, rp.assertion(exp=exp))


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_aerr09_nbf_or_iat_in_the_future_is_refused(endpoint, rp, ciba_settings, claim):
    ciba_settings.set(JWT_LEEWAY=5)
    assert_refused(endpoint, rp, rp.assertion(**{claim: int(time.time()) + 60}, lifetime=300))


def test_aerr09_missing_jti_is_refused(endpoint, rp):
    assert_refused(endpoint, rp, rp.assertion(jti=None))


def test_aerr09_replayed_jti_is_refused(endpoint, rp):
    fields = rp.assertion()
    endpoint.assert_accepted(endpoint.send(rp, fields))
    assert_invalid_client(endpoint.send(rp, fields))
    # A new assertion with the same jti is a replay too; one with a new jti is fine.
    assert_invalid_client(
        endpoint.send(
            rp,
            rp.assertion(
                jti=jwt.decode(fields["client_assertion"], options={"verify_signature": False})["jti"]
            ),
        )
    )
    endpoint.assert_accepted(endpoint.send(rp, rp.assertion()))


def test_aerr09_jti_is_not_spent_by_a_refused_assertion(endpoint, rp):
    # Recorded only after every other check passed: a refused assertion does not burn its jti.
    assert_invalid_client(endpoint.send(rp, rp.assertion("https://other.example", jti="once")))
    endpoint.assert_accepted(endpoint.send(rp, rp.assertion(jti="once")))


@pytest.mark.parametrize("kid", ["key-PS256", None], ids=["same-kid", "no-kid"])
def test_aerr09_signed_with_another_clients_key_is_refused(endpoint, rp, kid):
    assert_refused(endpoint, rp, rp.assertion(key=STRANGER_KEY, kid=kid))


def test_fapi13_alg_none_is_refused(endpoint, rp):
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    token = f"{header}.{b64url(json.dumps(claims_for(rp)).encode())}."
    assert_refused(endpoint, rp, assertion_fields(token))


def test_fapi13_symmetric_alg_is_refused(endpoint, rp):
    # HS256 keyed with the client's own secret: never accepted for private_key_jwt.
    token = jwt.encode(claims_for(rp), rp.secret, algorithm="HS256")
    assert_refused(endpoint, rp, assertion_fields(token))


def test_fapi13_alg_other_than_registered_is_refused(endpoint):
    # The key has no "alg" member, so only the registration restricts it to PS256.
    private_key, public_jwk = KEYS["PS256"]
    jwk = {k: v for k, v in public_jwk.items() if k != "alg"}
    signer = register("PS256 only", jwk=jwk, token_endpoint_auth_signing_alg="PS256")
    assert_refused(endpoint, signer, signer.assertion(alg="RS256"))


def test_fapi13_alg_outside_signing_algorithms_is_refused(endpoint, ciba_settings):
    ciba_settings.set(SIGNING_ALGORITHMS=["PS256", "ES256"])
    private_key, public_jwk = KEYS["PS256"]
    signer = register("Unrestricted", jwk={k: v for k, v in public_jwk.items() if k != "alg"})
    assert_refused(endpoint, signer, signer.assertion(alg="RS256"))


def test_fapi13_registered_alg_no_longer_supported_is_refused(endpoint, rp, ciba_settings):
    CibaClient.objects.filter(application=rp.app).update(token_endpoint_auth_signing_alg="PS256")
    endpoint.assert_accepted(endpoint.send(rp, rp.assertion()))
    ciba_settings.set(SIGNING_ALGORITHMS=["ES256"])
    assert_invalid_client(endpoint.send(rp, rp.assertion()))


def test_aerr09_corrupted_signature_is_refused(endpoint, rp):
    fields = rp.assertion()
    head, body, signature = fields["client_assertion"].split(".")
    middle = len(signature) // 2
    flipped = "A" if signature[middle] != "A" else "B"
    corrupted = f"{head}.{body}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"
    assert_refused(endpoint, rp, {**fields, "client_assertion": corrupted})


def test_aerr09_tampered_claims_are_refused(endpoint, rp):
    head, _body, signature = rp.assertion()["client_assertion"].split(".")
    other = register("Other RP", "ES256")
    body = b64url(json.dumps(claims_for(other)).encode())
    assert_refused(endpoint, rp, assertion_fields(f"{head}.{body}.{signature}"))


def test_aerr05_disabled_ciba_registration_is_unauthorized_client(endpoint, rp):
    # AERR-05 / TOK-04: the assertion still authenticates the client (its registered method holds
    # whether enabled or not), and the disabled client is refused as unauthorized_client, exactly
    # like a disabled client_secret client (RFC 6749 §5.2).
    endpoint.assert_accepted(endpoint.send(rp, rp.assertion()))
    CibaClient.objects.filter(application=rp.app).update(enabled=False)
    response = endpoint.send(rp, rp.assertion())
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "unauthorized_client"


def test_aerr09_disabled_registration_still_requires_its_registered_method(endpoint, rp):
    # REG-07: disabling does not relax the method: a client secret gets invalid_client, not a hint
    # that the client is disabled.
    endpoint.assert_accepted(endpoint.send(rp, rp.assertion()))
    CibaClient.objects.filter(application=rp.app).update(enabled=False)
    assert_invalid_client(endpoint.send(rp, {"client_id": rp.app.client_id, "client_secret": rp.secret}))


def test_aerr09_public_application_is_refused(endpoint, rp):
    endpoint.assert_accepted(endpoint.send(rp, rp.assertion()))
    type(rp.app).objects.filter(pk=rp.app.pk).update(client_type="public")
    assert_invalid_client(endpoint.send(rp, rp.assertion()))


# --------------------------------------------------------------------------------------------
# REG-07 / SEC-11: one method per request, and only the registered one


def test_reg07_client_secret_of_a_private_key_jwt_client_is_refused(endpoint, rp):
    assert_refused(endpoint, rp, {"client_id": rp.app.client_id, "client_secret": rp.secret})


def test_reg07_basic_auth_of_a_private_key_jwt_client_is_refused(endpoint, rp):
    assert_refused(endpoint, rp, {}, HTTP_AUTHORIZATION=basic_auth(rp.app.client_id, rp.secret))


def test_reg07_assertion_plus_basic_auth_is_refused(endpoint, rp):
    assert_refused(endpoint, rp, rp.assertion(), HTTP_AUTHORIZATION=basic_auth(rp.app.client_id, rp.secret))


def test_reg07_assertion_plus_client_secret_is_refused(endpoint, rp):
    assert_refused(endpoint, rp, {**rp.assertion(), "client_secret": rp.secret})


def test_reg07_client_secret_basic_client_presenting_an_assertion_is_refused(endpoint):
    # The client has keys (e.g. for signed requests) but registered client_secret_basic.
    secret_client = register("Secret RP", auth_method=AuthMethod.CLIENT_SECRET_BASIC)
    basic = basic_auth(secret_client.app.client_id, secret_client.secret)
    endpoint.assert_accepted(endpoint.send(secret_client, {}, HTTP_AUTHORIZATION=basic))
    assert_invalid_client(endpoint.send(secret_client, secret_client.assertion()))
    # The same kind of assertion is fine once the client registers private_key_jwt.
    CibaClient.objects.filter(application=secret_client.app).update(
        token_endpoint_auth_method=AuthMethod.PRIVATE_KEY_JWT
    )
    endpoint.assert_accepted(endpoint.send(secret_client, secret_client.assertion()))


def test_reg07_any_method_registration_does_not_enable_private_key_jwt(endpoint):
    # An empty token_endpoint_auth_method accepts DOT's secret methods, not assertions.
    signer = register("Any method RP", auth_method="")
    basic = basic_auth(signer.app.client_id, signer.secret)
    endpoint.assert_accepted(endpoint.send(signer, {}, HTTP_AUTHORIZATION=basic))
    assert_invalid_client(endpoint.send(signer, signer.assertion()))
    CibaClient.objects.filter(application=signer.app).update(
        token_endpoint_auth_method=AuthMethod.PRIVATE_KEY_JWT
    )
    endpoint.assert_accepted(endpoint.send(signer, signer.assertion()))


# --------------------------------------------------------------------------------------------
# TOK-02: complete flows and DOT's other grants


def test_tok02_complete_poll_flow_with_private_key_jwt(client, user, rp):
    response = post(client, BC_URL, bc_form(**rp.assertion(BC_AUD)))
    assert response.status_code == 200, response.content
    auth_req_id = response.json()["auth_req_id"]
    decisions.approve(AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get(), user=user)
    data = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id, **rp.assertion(TOKEN_AUD)}
    response = post(client, TOKEN_URL, data)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["access_token"] and body["refresh_token"]
    id_token = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert id_token["aud"] == rp.app.client_id
    assert AccessToken.objects.get(token_checksum__isnull=False).application == rp.app


def test_tok02_refresh_token_grant_with_private_key_jwt(client, user, rp):
    response = post(client, BC_URL, bc_form(**rp.assertion()))
    auth_req_id = response.json()["auth_req_id"]
    decisions.approve(AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get(), user=user)
    tokens = post(
        client, TOKEN_URL, {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id, **rp.assertion()}
    )
    refresh_token = tokens.json()["refresh_token"]
    grant = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    # Without client authentication, with the secret, or with a bad assertion: refused.
    assert_invalid_client(post(client, TOKEN_URL, grant))
    assert_invalid_client(post(client, TOKEN_URL, {**grant, "client_id": rp.app.client_id}))
    assert_invalid_client(
        post(client, TOKEN_URL, grant, HTTP_AUTHORIZATION=basic_auth(rp.app.client_id, rp.secret))
    )
    assert_invalid_client(post(client, TOKEN_URL, {**grant, **rp.assertion("https://other.example")}))
    response = post(client, TOKEN_URL, {**grant, **rp.assertion(TOKEN_AUD)})
    assert response.status_code == 200, response.content
    assert response.json()["access_token"] != tokens.json()["access_token"]
    assert RefreshToken.objects.filter(application=rp.app, revoked__isnull=True).count() == 1


def test_tok02_assertion_always_means_client_authentication(client, rp):
    # A refresh request naming a public client but carrying an assertion is not treated as a public
    # client's (which would skip authentication): it is authenticated, and fails (client_id != iss).
    Application = type(rp.app)
    public = Application.objects.create(
        name="Public app",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
    )
    grant = {"grant_type": "refresh_token", "refresh_token": "unknown", "client_id": public.client_id}
    assert_invalid_client(post(client, TOKEN_URL, {**grant, **rp.assertion(TOKEN_AUD)}))
    response = post(client, TOKEN_URL, {**grant, "client_id": rp.app.client_id, **rp.assertion(TOKEN_AUD)})
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"


def test_tok02_client_credentials_grant_with_private_key_jwt(client, rp):
    grant = {"grant_type": "client_credentials", "scope": "openid"}
    assert_invalid_client(post(client, TOKEN_URL, {**grant, **rp.assertion(kid="unknown", key=STRANGER_KEY)}))
    response = post(client, TOKEN_URL, {**grant, **rp.assertion(TOKEN_AUD)})
    assert response.status_code == 200, response.content
    assert AccessToken.objects.get(token_checksum__isnull=False).application == rp.app
    assert_invalid_client(
        post(client, TOKEN_URL, grant, HTTP_AUTHORIZATION=basic_auth(rp.app.client_id, rp.secret))
    )


def test_tok02_token_revocation_with_private_key_jwt(client, rp):
    # DOT's revocation endpoint authenticates through the same validator.
    grant = {"grant_type": "client_credentials", "scope": "openid", **rp.assertion(TOKEN_AUD)}
    access_token = post(client, TOKEN_URL, grant).json()["access_token"]
    revoke = {"token": access_token, "token_type_hint": "access_token"}
    assert_invalid_client(
        post(client, "/o/revoke_token/", {**revoke, **rp.assertion("https://other.example")})
    )
    assert AccessToken.objects.filter(application=rp.app).exists()
    response = post(client, "/o/revoke_token/", {**revoke, **rp.assertion()})
    assert response.status_code == 200, response.content
    assert not AccessToken.objects.filter(application=rp.app).exists()


# --------------------------------------------------------------------------------------------
# jwks_uri: fetched through outbound, cached, refetched once for an unknown kid


class JwksServer:
    """Stands in for ``outbound.get_document``: serves ``keys`` and counts the fetches."""

    def __init__(self, *jwks: dict) -> None:
        self.keys = list(jwks)
        self.fetches = 0

    def __call__(self, url: str, *, max_bytes: int, **kwargs: Any) -> bytes:
        assert url == JWKS_URI
        self.fetches += 1
        return json.dumps({"keys": self.keys}).encode()


@pytest.fixture
def jwks_server(monkeypatch):
    server = JwksServer(KEYS["PS256"][1])
    monkeypatch.setattr("django_ciba.core.outbound.get_document", server)
    return server


def test_jwks_uri_client_is_fetched_once_and_cached(endpoint, jwks_server):
    signer = register("Remote keys RP", jwks_uri=JWKS_URI)
    endpoint.assert_accepted(endpoint.send(signer, signer.assertion()))
    endpoint.assert_accepted(endpoint.send(signer, signer.assertion()))
    assert jwks_server.fetches == 1


def test_jwks_uri_unknown_kid_refetches_once(endpoint, jwks_server, ciba_settings):
    ciba_settings.set(JWKS_REFRESH_INTERVAL=0)
    signer = register("Rotating RP", jwks_uri=JWKS_URI)
    endpoint.assert_accepted(endpoint.send(signer, signer.assertion()))
    fetched = jwks_server.fetches
    # The client rotates to an ES256 key: the unknown kid causes exactly one refetch.
    es_key, es_jwk = KEYS["ES256"]
    jwks_server.keys.append(es_jwk)
    endpoint.assert_accepted(
        endpoint.send(signer, signer.assertion(key=es_key, kid=es_jwk["kid"], alg="ES256"))
    )
    assert jwks_server.fetches == fetched + 1
    # A kid that is never published: one refetch, then refused.
    assert_invalid_client(endpoint.send(signer, signer.assertion(kid="never-published")))
    assert jwks_server.fetches == fetched + 2


def test_jwks_uri_refetch_is_rate_limited(endpoint, jwks_server, ciba_settings):
    ciba_settings.set(JWKS_REFRESH_INTERVAL=3600)
    signer = register("Rate-limited RP", jwks_uri=JWKS_URI)
    endpoint.assert_accepted(endpoint.send(signer, signer.assertion()))
    fetched = jwks_server.fetches
    for _ in range(3):
        assert_invalid_client(endpoint.send(signer, signer.assertion(kid="never-published")))
    assert jwks_server.fetches == fetched


def test_jwks_uri_unreachable_is_invalid_client(endpoint, jwks_server, monkeypatch):
    from django.core.cache import cache

    from django_ciba.core import outbound

    signer = register("Offline RP", jwks_uri=JWKS_URI)
    endpoint.assert_accepted(endpoint.send(signer, signer.assertion()))

    def unreachable(url: str, **kwargs: Any) -> bytes:
        raise outbound.OutboundError("connection refused", origin="https://rp.example.com")

    monkeypatch.setattr("django_ciba.core.outbound.get_document", unreachable)
    cache.clear()  # the cached set has expired
    assert_invalid_client(endpoint.send(signer, signer.assertion()))


# --------------------------------------------------------------------------------------------
# Logging: the reason, never the assertion


def test_failure_is_logged_without_the_assertion(client, user, rp, caplog):
    fields = rp.assertion("https://other.example")
    with caplog.at_level("INFO", logger="django_ciba.clients.assertions"):
        assert_invalid_client(post(client, BC_URL, bc_form(**fields)))
    messages = [
        record.getMessage() for record in caplog.records if record.name == "django_ciba.clients.assertions"
    ]
    assert messages and "aud" in messages[0] and rp.app.client_id in messages[0]
    assert all(fields["client_assertion"] not in message for message in messages)
    head, body, signature = fields["client_assertion"].split(".")
    assert all(signature not in message and body not in message for message in messages)
