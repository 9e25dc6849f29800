"""Sender-constrained tokens: DPoP (RFC 9449) and certificate-bound tokens (RFC 8705) at the token
endpoint, bc-authorize, push, userinfo and introspection."""

from __future__ import annotations

import hashlib
import time
from urllib.parse import urlencode

import pytest
from cryptography.x509.oid import NameOID
from oauth2_provider.models import AccessToken, RefreshToken

from django_ciba.approval import decisions
from django_ciba.core.constants import CIBA_GRANT_TYPE
from django_ciba.models import AuthenticationRequest, TokenBinding
from django_ciba.testing import FORM, basic_auth, create_ciba_client
from django_ciba.tokens import dpop_nonces
from tests.dpop_key import DPoPKey, b64url
from tests.unit import auth_requests
from tests.unit.test_push import post  # noqa: F401  (fixture: the fake outbound POST)
from tests.unit.tls_certificates import make_certificate, rfc9440


TOKEN_URL = "http://testserver/o/token/"
USERINFO_URL = "http://testserver/o/userinfo/"
PUSH_ENDPOINT = "https://rp.example.com/cb"


def certificate_header(common_name: str = "client") -> tuple[str, str]:
    """A self-signed certificate as a proxy passes it on (RFC 9440 ``:base64-DER:``), and its
    x5t#S256 thumbprint (RFC 8705 §3.1)."""
    der, _ = make_certificate(subject=[(NameOID.COMMON_NAME, common_name)])
    return rfc9440(der), b64url(hashlib.sha256(der).digest())


def token_request(http, app, secret, body, *, proof=None, certificate=None):
    headers = {"HTTP_AUTHORIZATION": basic_auth(app.client_id, secret)}
    if proof is not None:
        headers["HTTP_DPOP"] = proof
    if certificate is not None:
        headers["HTTP_CLIENT_CERT"] = certificate
    return http.post("/o/token/", data=urlencode(body), content_type=FORM, **headers)


def approved_request(http, app, secret, user, **params):
    auth_req_id, auth_request = auth_requests.start(http, app, secret, **params)
    decisions.approve(auth_request, user=user)
    return auth_req_id


def ciba_poll(http, app, secret, auth_req_id, **kwargs):
    return token_request(
        http, app, secret, {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}, **kwargs
    )


def userinfo(http, access_token, *, scheme="Bearer", proof=None, certificate=None):
    headers = {"HTTP_AUTHORIZATION": f"{scheme} {access_token}"}
    if proof is not None:
        headers["HTTP_DPOP"] = proof
    if certificate is not None:
        headers["HTTP_CLIENT_CERT"] = certificate
    return http.get("/o/userinfo/", **headers)


def binding_of(access_token: str) -> TokenBinding | None:
    checksum = hashlib.sha256(access_token.encode()).hexdigest()
    return TokenBinding.objects.filter(access_token__token_checksum=checksum).first()


@pytest.fixture
def key():
    return DPoPKey()


@pytest.fixture
def mtls_proxy(ciba_settings):
    """The test client's address (127.0.0.1) is a trusted TLS-terminating proxy."""
    ciba_settings.set(MTLS={"TRUSTED_PROXIES": ["127.0.0.1/32"]})


# --------------------------------------------------------------------------------------------
# RFC 9449 §5: the token endpoint


def test_rfc9449_5_a_proof_at_the_ciba_grant_binds_the_tokens(client, user, poll_client, key):
    app, secret = poll_client
    auth_req_id = approved_request(client, app, secret, user)
    response = ciba_poll(client, app, secret, auth_req_id, proof=key.proof("POST", TOKEN_URL))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "DPoP"  # §5.1
    binding = binding_of(body["access_token"])
    assert binding is not None and binding.jkt == key.thumbprint and binding.x5t_s256 == ""


def test_rfc9449_5_without_a_proof_the_tokens_stay_bearer(client, user, poll_client):
    app, secret = poll_client
    auth_req_id = approved_request(client, app, secret, user)
    response = ciba_poll(client, app, secret, auth_req_id)
    assert response.status_code == 200, response.content
    assert response.json()["token_type"] == "Bearer"
    assert TokenBinding.objects.count() == 0


@pytest.mark.parametrize(
    "make_proof",
    [
        pytest.param(lambda key: key.proof("POST", "http://testserver/o/other/"), id="wrong-htu"),
        pytest.param(lambda key: key.proof("GET", TOKEN_URL), id="wrong-htm"),
        pytest.param(lambda key: key.proof("POST", TOKEN_URL, iat=int(time.time()) - 3600), id="stale-iat"),
        pytest.param(lambda key: "not.a.proof", id="garbage"),
        pytest.param(
            lambda key: f"{key.proof('POST', TOKEN_URL)},{key.proof('POST', TOKEN_URL)}", id="two-proofs"
        ),
    ],
)
def test_rfc9449_4_3_a_bad_proof_is_invalid_dpop_proof(client, user, poll_client, key, make_proof):
    app, secret = poll_client
    auth_req_id = approved_request(client, app, secret, user)
    response = ciba_poll(client, app, secret, auth_req_id, proof=make_proof(key))
    assert response.status_code == 400, response.content
    assert response.json()["error"] == "invalid_dpop_proof"
    # The request is not spent: a good proof still gets the tokens.
    assert ciba_poll(client, app, secret, auth_req_id, proof=key.proof("POST", TOKEN_URL)).status_code == 200


def test_rfc9449_11_1_a_replayed_proof_is_refused(client, user, poll_client, key):
    app, secret = poll_client
    auth_req_id, _ = auth_requests.start(client, app, secret)
    proof = key.proof("POST", TOKEN_URL)
    first = ciba_poll(client, app, secret, auth_req_id, proof=proof)
    assert first.json()["error"] == "authorization_pending"
    second = ciba_poll(client, app, secret, auth_req_id, proof=proof)
    assert second.status_code == 400 and second.json()["error"] == "invalid_dpop_proof"


def test_rfc9449_8_a_required_nonce_is_asked_for_then_accepted(client, user, poll_client, key, ciba_settings):
    ciba_settings.set(DPOP={"NONCE_REQUIRED": True})
    app, secret = poll_client
    auth_req_id = approved_request(client, app, secret, user)
    response = ciba_poll(client, app, secret, auth_req_id, proof=key.proof("POST", TOKEN_URL))
    assert response.status_code == 400 and response.json()["error"] == "use_dpop_nonce"
    nonce = response["DPoP-Nonce"]
    assert nonce == dpop_nonces.current()
    response = ciba_poll(client, app, secret, auth_req_id, proof=key.proof("POST", TOKEN_URL, nonce=nonce))
    assert response.status_code == 200, response.content
    assert response.json()["token_type"] == "DPoP"


def test_rfc9449_5_2_a_dpop_bound_client_must_send_a_proof(client, user, key):
    app, secret = create_ciba_client("DPoP client", dpop_bound_access_tokens=True)
    auth_req_id = approved_request(client, app, secret, user)
    response = ciba_poll(client, app, secret, auth_req_id)
    assert response.status_code == 400 and response.json()["error"] == "invalid_dpop_proof"
    assert ciba_poll(client, app, secret, auth_req_id, proof=key.proof("POST", TOKEN_URL)).status_code == 200


def test_rfc9449_5_dpop_disabled_ignores_the_header(client, user, poll_client, key, ciba_settings):
    ciba_settings.set(DPOP={"ENABLED": False})
    app, secret = poll_client
    auth_req_id = approved_request(client, app, secret, user)
    response = ciba_poll(client, app, secret, auth_req_id, proof="garbage")
    assert response.status_code == 200 and response.json()["token_type"] == "Bearer"
    assert "dpop_signing_alg_values_supported" not in client.get("/o/.well-known/openid-configuration").json()


def test_rfc9449_5_1_discovery_lists_the_proof_algorithms(client, ciba_settings):
    ciba_settings.set(DPOP={"SIGNING_ALGORITHMS": ["ES256", "PS256"]})
    metadata = client.get("/o/.well-known/openid-configuration").json()
    assert metadata["dpop_signing_alg_values_supported"] == ["ES256", "PS256"]


def test_rfc9449_5_every_grant_client_credentials(client, db, key):
    app, secret = create_ciba_client("Back office")
    response = token_request(
        client, app, secret, {"grant_type": "client_credentials"}, proof=key.proof("POST", TOKEN_URL)
    )
    assert response.status_code == 200, response.content
    assert response.json()["token_type"] == "DPoP"
    assert binding_of(response.json()["access_token"]).jkt == key.thumbprint


def test_rfc9449_5_refresh_grant_binds_the_new_access_token(client, user, poll_client, key):
    app, secret = poll_client
    auth_req_id = approved_request(client, app, secret, user, scope="openid offline_access")
    tokens = ciba_poll(client, app, secret, auth_req_id, proof=key.proof("POST", TOKEN_URL)).json()
    # A confidential client's refresh token is bound to its authentication, not to the key (§5).
    assert not TokenBinding.objects.filter(refresh_token__isnull=False).exists()
    other = DPoPKey()
    refreshed = token_request(
        client,
        app,
        secret,
        {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        proof=other.proof("POST", TOKEN_URL),
    )
    assert refreshed.status_code == 200, refreshed.content
    assert refreshed.json()["token_type"] == "DPoP"
    assert binding_of(refreshed.json()["access_token"]).jkt == other.thumbprint
    again = token_request(
        client,
        app,
        secret,
        {"grant_type": "refresh_token", "refresh_token": refreshed.json()["refresh_token"]},
    )
    assert again.status_code == 200 and again.json()["token_type"] == "Bearer"
    assert binding_of(again.json()["access_token"]) is None


# --------------------------------------------------------------------------------------------
# dpop_jkt at bc-authorize (by analogy with RFC 9449 §10), push bound to the key


def test_dpop_jkt_binds_a_polled_request_to_that_key(client, user, poll_client, key):
    app, secret = poll_client
    auth_req_id = approved_request(client, app, secret, user, dpop_jkt=key.thumbprint)
    response = ciba_poll(client, app, secret, auth_req_id, proof=DPoPKey().proof("POST", TOKEN_URL))
    assert response.status_code == 400 and response.json()["error"] == "invalid_dpop_proof"
    response = ciba_poll(client, app, secret, auth_req_id)
    assert response.status_code == 400 and response.json()["error"] == "invalid_dpop_proof"
    response = ciba_poll(client, app, secret, auth_req_id, proof=key.proof("POST", TOKEN_URL))
    assert response.status_code == 200 and binding_of(response.json()["access_token"]).jkt == key.thumbprint


@pytest.mark.parametrize("value", ["short", "x" * 44, "a" * 42 + "+/"])
def test_dpop_jkt_must_be_a_thumbprint(client, user, poll_client, value):
    app, secret = poll_client
    response = auth_requests.ask(client, app, secret, dpop_jkt=value)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


@pytest.mark.django_db(transaction=True)  # the outbox is dispatched after commit, as in production
def test_push07_push_tokens_are_bound_to_the_dpop_jkt(client, user, key, post):  # noqa: F811
    """PUSH-07: pushed tokens never pass the token endpoint; they are bound to the key named at
    bc-authorize, and only a proof of that key uses them."""
    app, secret = create_ciba_client("Push RP", mode="push", notification_endpoint=PUSH_ENDPOINT)
    _, auth_request = auth_requests.start(client, app, secret, dpop_jkt=key.thumbprint)
    auth_request.refresh_from_db()  # acknowledged: the answer went out, pushes may follow
    assert auth_request.binding_jkt == key.thumbprint
    decisions.approve(auth_request, user=user)
    pushed = post.calls[0].json
    assert pushed["token_type"] == "DPoP"
    assert binding_of(pushed["access_token"]).jkt == key.thumbprint
    proof = key.proof("GET", USERINFO_URL, access_token=pushed["access_token"])
    assert userinfo(client, pushed["access_token"], scheme="DPoP", proof=proof).status_code == 200
    assert userinfo(client, pushed["access_token"]).status_code == 401


def test_a_dpop_bound_push_client_must_name_its_key(client, user):
    app, secret = create_ciba_client(
        "Push RP", mode="push", notification_endpoint=PUSH_ENDPOINT, dpop_bound_access_tokens=True
    )
    response = auth_requests.ask(client, app, secret)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


# --------------------------------------------------------------------------------------------
# RFC 9449 §7: userinfo (a protected resource)


@pytest.fixture
def dpop_tokens(client, user, poll_client, key):
    app, secret = poll_client
    auth_req_id = approved_request(client, app, secret, user)
    return ciba_poll(client, app, secret, auth_req_id, proof=key.proof("POST", TOKEN_URL)).json()


def assert_challenge(response, scheme, error):
    assert response.status_code == 401, response.content
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith(f"{scheme} ") and f'error="{error}"' in challenge


def test_rfc9449_7_1_userinfo_accepts_the_token_with_a_proof(client, user, dpop_tokens, key):
    token = dpop_tokens["access_token"]
    response = userinfo(
        client, token, scheme="DPoP", proof=key.proof("GET", USERINFO_URL, access_token=token)
    )
    assert response.status_code == 200, response.content
    assert response.json()["sub"] == str(user.pk)


def test_rfc9449_7_2_a_dpop_bound_token_as_bearer_is_refused(client, dpop_tokens, key):
    token = dpop_tokens["access_token"]
    assert_challenge(userinfo(client, token), "DPoP", "invalid_token")
    proof = key.proof("GET", USERINFO_URL, access_token=token)
    assert_challenge(userinfo(client, token, proof=proof), "DPoP", "invalid_token")


def test_rfc9449_7_1_a_stolen_token_without_the_key_is_refused(client, dpop_tokens):
    token = dpop_tokens["access_token"]
    thief = DPoPKey()
    response = userinfo(
        client, token, scheme="DPoP", proof=thief.proof("GET", USERINFO_URL, access_token=token)
    )
    assert_challenge(response, "DPoP", "invalid_token")
    assert_challenge(userinfo(client, token, scheme="DPoP"), "DPoP", "invalid_dpop_proof")


def test_rfc9449_4_3_12_the_proof_must_carry_ath(client, dpop_tokens, key):
    token = dpop_tokens["access_token"]
    response = userinfo(client, token, scheme="DPoP", proof=key.proof("GET", USERINFO_URL))
    assert_challenge(response, "DPoP", "invalid_dpop_proof")
    assert 'algs="' in response["WWW-Authenticate"]


def test_rfc9449_9_userinfo_asks_for_a_nonce(client, dpop_tokens, key, ciba_settings):
    ciba_settings.set(DPOP={"NONCE_REQUIRED": True})
    token = dpop_tokens["access_token"]
    response = userinfo(
        client, token, scheme="DPoP", proof=key.proof("GET", USERINFO_URL, access_token=token)
    )
    assert_challenge(response, "DPoP", "use_dpop_nonce")
    nonce = response["DPoP-Nonce"]
    proof = key.proof("GET", USERINFO_URL, access_token=token, nonce=nonce)
    assert userinfo(client, token, scheme="DPoP", proof=proof).status_code == 200


def test_a_bearer_token_with_the_dpop_scheme_is_refused(client, user, poll_client, key):
    app, secret = poll_client
    token = ciba_poll(client, app, secret, approved_request(client, app, secret, user)).json()["access_token"]
    assert userinfo(client, token).status_code == 200
    response = userinfo(
        client, token, scheme="DPoP", proof=key.proof("GET", USERINFO_URL, access_token=token)
    )
    assert_challenge(response, "DPoP", "invalid_token")


def test_rfc9449_6_2_introspection_reports_the_binding(client, dpop_tokens, key):
    app, secret = create_ciba_client("Resource server")
    response = client.post(
        "/o/introspect/",
        data=urlencode({"token": dpop_tokens["access_token"]}),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["active"] is True
    assert body["cnf"] == {"jkt": key.thumbprint}
    assert body["token_type"] == "DPoP"


# --------------------------------------------------------------------------------------------
# RFC 8705 §3: certificate-bound tokens


@pytest.fixture
def bound_client(db):
    return create_ciba_client("mTLS-bound", tls_client_certificate_bound_access_tokens=True)


def test_fapi15_fapi16_rfc8705_3_tokens_are_bound_to_the_certificate(client, user, bound_client, mtls_proxy):
    """FAPI-15: the tokens carry the certificate's thumbprint; FAPI-16: another certificate is refused."""
    app, secret = bound_client
    certificate, thumbprint = certificate_header()
    response = client.post(
        "/o/bc-authorize",
        data=urlencode(auth_requests.request_params(app)),
        content_type=FORM,
        HTTP_AUTHORIZATION=basic_auth(app.client_id, secret),
        HTTP_CLIENT_CERT=certificate,
    )
    assert response.status_code == 200, response.content
    auth_req_id = response.json()["auth_req_id"]
    auth_request = AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get()
    assert auth_request.binding_x5t == thumbprint
    decisions.approve(auth_request, user=user)
    other, _ = certificate_header("other")
    response = ciba_poll(client, app, secret, auth_req_id, certificate=other)
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    response = ciba_poll(client, app, secret, auth_req_id, certificate=certificate)
    assert response.status_code == 200, response.content
    tokens = response.json()
    assert tokens["token_type"] == "Bearer"
    assert binding_of(tokens["access_token"]).x5t_s256 == thumbprint
    assert userinfo(client, tokens["access_token"], certificate=certificate).status_code == 200
    assert_challenge(userinfo(client, tokens["access_token"], certificate=other), "Bearer", "invalid_token")
    assert_challenge(userinfo(client, tokens["access_token"]), "Bearer", "invalid_token")


def test_rfc8705_3_a_bound_client_without_a_certificate_is_refused(client, user, bound_client, mtls_proxy):
    app, secret = bound_client
    response = auth_requests.ask(client, app, secret)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    response = token_request(client, app, secret, {"grant_type": "client_credentials"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_rfc8705_3_client_credentials_are_bound_too(client, db, bound_client, mtls_proxy):
    app, secret = bound_client
    certificate, thumbprint = certificate_header()
    response = token_request(
        client, app, secret, {"grant_type": "client_credentials"}, certificate=certificate
    )
    assert response.status_code == 200, response.content
    assert binding_of(response.json()["access_token"]).x5t_s256 == thumbprint


def test_bindings_go_with_their_tokens(client, user, poll_client, key):
    app, secret = poll_client
    auth_req_id = approved_request(client, app, secret, user)
    ciba_poll(client, app, secret, auth_req_id, proof=key.proof("POST", TOKEN_URL))
    assert TokenBinding.objects.count() == 1
    AccessToken.objects.all().delete()
    RefreshToken.objects.all().delete()
    assert TokenBinding.objects.count() == 0


# --------------------------------------------------------------------------------------------
# RFC 9449 §5: a public client's refresh token is bound to the key


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # DOT's notice about the password grant
def test_rfc9449_5_a_public_clients_refresh_token_is_bound_to_the_key(client, user, key):
    from oauth2_provider.models import get_application_model

    Application = get_application_model()
    app = Application.objects.create(
        name="Public app",
        client_type=Application.CLIENT_PUBLIC,
        authorization_grant_type=Application.GRANT_PASSWORD,
        algorithm="RS256",
    )

    def request(body, proof):
        return client.post(
            "/o/token/",
            data=urlencode({**body, "client_id": app.client_id}),
            content_type=FORM,
            **({"HTTP_DPOP": proof} if proof else {}),
        )

    tokens = request(
        {"grant_type": "password", "username": "alice", "password": "pw"}, key.proof("POST", TOKEN_URL)
    )
    assert tokens.status_code == 200, tokens.content
    refresh_token = tokens.json()["refresh_token"]
    binding = TokenBinding.objects.get(refresh_token__token=refresh_token)
    assert binding.jkt == key.thumbprint
    refresh = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    stolen = request(refresh, DPoPKey().proof("POST", TOKEN_URL))
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_dpop_proof"
    assert request(refresh, None).json()["error"] == "invalid_dpop_proof"
    refreshed = request(refresh, key.proof("POST", TOKEN_URL))
    assert refreshed.status_code == 200, refreshed.content
    assert refreshed.json()["token_type"] == "DPoP"


# --------------------------------------------------------------------------------------------
# FAPI-15: under the FAPI-CIBA profile every token is sender-constrained


def test_fapi15_the_profile_requires_a_binding_at_the_token_endpoint(client, user, key):
    from django_ciba.models import CibaClient
    from tests.unit.test_fapi_profile import make_rp, signed

    rp = make_rp("FAPI RP")
    CibaClient.objects.filter(application=rp.app).update(dpop_bound_access_tokens=False)
    rp.app.refresh_from_db()
    response = signed(client, rp, rp.request())
    assert response.status_code == 200, response.content
    auth_req_id = response.json()["auth_req_id"]
    decisions.approve(AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get(), user=user)
    poll_body = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}

    def poll_with(**headers):
        data = urlencode({**poll_body, **rp.assertion()})
        return client.post("/o/token/", data=data, content_type=FORM, **headers)

    refused = poll_with()
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"
    assert "Sender-constrained" in refused.json()["error_description"]
    issued = poll_with(HTTP_DPOP=key.proof("POST", TOKEN_URL))
    assert issued.status_code == 200, issued.content
    assert issued.json()["token_type"] == "DPoP"


# --------------------------------------------------------------------------------------------
# RFC 9449 §5.2: the dpop_bound_access_tokens client metadata


def test_rfc9449_5_2_registration_stores_and_returns_dpop_bound_access_tokens(client, db, ciba_settings):
    from django_ciba.models import CibaClient
    from tests.unit.test_registration import POLL, assert_refused, register

    ciba_settings.set(REGISTRATION_OPEN=True)
    response = register(client, {**POLL, "client_name": "DPoP RP", "dpop_bound_access_tokens": True})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["dpop_bound_access_tokens"] is True
    assert CibaClient.objects.get(application__client_id=body["client_id"]).dpop_bound_access_tokens
    plain = register(client, {**POLL, "client_name": "Plain RP"}).json()
    assert plain["dpop_bound_access_tokens"] is False
    assert_refused(register(client, {**POLL, "dpop_bound_access_tokens": "yes"}), "dpop_bound_access_tokens")
    ciba_settings.set(DPOP={"ENABLED": False})
    assert_refused(register(client, {**POLL, "dpop_bound_access_tokens": True}), "dpop_bound_access_tokens")


def test_dpop_jkt_as_a_claim_of_a_signed_request(client, user, key):
    # SR-11: in a signed request the parameters come from the JWT, dpop_jkt included.
    from tests.unit.test_fapi_profile import make_rp, signed

    rp = make_rp("Signed RP", profile="")
    response = signed(client, rp, rp.request(dpop_jkt=key.thumbprint))
    assert response.status_code == 200, response.content
    auth_request = AuthenticationRequest.objects.by_auth_req_id(response.json()["auth_req_id"]).get()
    assert auth_request.binding_jkt == key.thumbprint
