"""Sender-constrained CIBA tokens with an independent Python client: requests-oauth2client 1.8.0
(the ``test`` extra) through nginx terminating TLS with client certificates (tests/integration/tls.py).

The library drives every OAuth request itself: ``OAuth2Client.from_discovery_document`` (the OP's
metadata; the issuer must match), ``backchannel_authentication_request`` (bc-authorize),
``BackChannelAuthenticationPollingJob`` (the token endpoint, ``authorization_pending`` before
approval), ``userinfo`` (a POST with the token as its ``requests`` auth) and ``refresh_token``.

What requests-oauth2client 1.8.0 supports, and so what is tested here:

- DPoP (RFC 9449): a ``DPoPKey`` signs a proof for each token request (§4, ``dpop_key`` passed
  through the polling job's ``requests_kwargs``), a ``token_type`` DPoP answer becomes a
  ``DPoPToken`` (§5) whose requests carry a proof with ``ath`` (§7.1); a refresh of a DPoPToken is
  proved with the same key. Server nonces: ``use_dpop_nonce`` at the token endpoint (400 and a
  ``DPoP-Nonce`` header, §8.1: retried with the nonce, the key keeps it as ``as_nonce``) and at a
  resource (401 ``WWW-Authenticate: DPoP`` and ``DPoP-Nonce``, §9: retried, ``rs_nonce``).
- mTLS (RFC 8705): no client authentication class of its own for tls_client_auth or
  self_signed_tls_client_auth (§2.1, §2.2) and it ignores ``mtls_endpoint_aliases`` (§5); the
  certificate is the ``requests`` session's (``session.cert``, the CA in ``session.verify``) and
  ``PublicApp`` sends the ``client_id`` form parameter §2 requires. Certificate-bound tokens (§3)
  need nothing from the client: they stay ``token_type`` Bearer.

Not supported by the library, so not tested with it: DPoP proofs at bc-authorize or ``dpop_jkt``
as a named parameter (push mode bound to a key is tested from Python in test_fapi_bound_tokens.py),
CIBA ping or push notifications (it only polls), ID token validation for CIBA (its
``validate_id_token`` needs an authorization response). A DPoP 401 that carries no ``DPoP-Nonce``
(a proof of the wrong key) makes the library raise ``MissingDPoPNonce`` instead of returning the
response (it treats every DPoP challenge as a nonce request): the test reads the 401 from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests
from requests_oauth2client import (
    BackChannelAuthenticationPollingJob,
    BearerToken,
    ClientSecretBasic,
    DPoPKey,
    DPoPToken,
    OAuth2Client,
    PublicApp,
)
from requests_oauth2client.dpop import MissingDPoPNonce

from tests.integration.fapi import SCOPE, USERNAME, MtlsDeployment, mtls_deployment, www_authenticate
from tests.integration.services import Deadline
from tests.integration.test_fapi_node import binding
from tests.integration.tls import Credential


pytestmark = pytest.mark.integration

MODULE_BUDGET = 120  # seconds, per deployment: its start and the flows run against it
SETTINGS: dict[str, Any] = {"INTERVAL": 1}  # the polling job waits one interval before each poll
NONCE_SETTINGS: dict[str, Any] = {"INTERVAL": 1, "DPOP": {"NONCE_REQUIRED": True}}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[MtlsDeployment]:
    deadline = Deadline(MODULE_BUDGET, "the requests-oauth2client module")
    with mtls_deployment(tmp_path_factory.mktemp("fapi-python"), deadline, SETTINGS) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def nonce_deployment(tmp_path_factory) -> Iterator[MtlsDeployment]:
    deadline = Deadline(MODULE_BUDGET, "the requests-oauth2client nonce deployment")
    with mtls_deployment(
        tmp_path_factory.mktemp("fapi-python-nonce"), deadline, NONCE_SETTINGS
    ) as deployment:
        yield deployment


def oauth2_client(
    deployment: MtlsDeployment, auth: Any, certificate: Credential | None = None
) -> OAuth2Client:
    """The library's client from the OP's discovery document, over a session presenting
    ``certificate`` (or none). The library does not read ``backchannel_authentication_endpoint``
    from the document itself, so it is handed over."""
    session = deployment.session(certificate)
    response = session.get(f"{deployment.issuer}/.well-known/openid-configuration", timeout=15)
    assert response.status_code == 200, response.text
    metadata = response.json()
    return OAuth2Client.from_discovery_document(
        metadata,
        issuer=deployment.issuer,
        auth=auth,
        session=session,
        backchannel_authentication_endpoint=metadata["backchannel_authentication_endpoint"],
    )


def ciba_poll(
    deployment: MtlsDeployment, client: OAuth2Client, message: str, **requests_kwargs: Any
) -> BearerToken:
    """bc-authorize, one poll before approval (authorization_pending: no token), approval, then
    polls until the token endpoint answers tokens (CIBA Core §7, §10.1, §11)."""
    answer = client.backchannel_authentication_request(
        scope=SCOPE, login_hint=USERNAME, binding_message=message
    )
    assert answer.auth_req_id and answer.interval == 1, vars(answer)
    job = BackChannelAuthenticationPollingJob(client, answer, requests_kwargs=requests_kwargs)
    assert job() is None  # authorization_pending
    deployment.approve(answer.auth_req_id)
    token = None
    while token is None:
        deployment.deadline.left()  # fails the test when the module's budget is spent
        token = job()
    return token


def refused_status(call: Any) -> requests.Response:
    """The error response of a library call expected to be refused."""
    with pytest.raises((requests.HTTPError, MissingDPoPNonce)) as refused:
        call()
    response = refused.value.response
    assert response is not None
    return response


def assert_invalid_token(response: requests.Response) -> None:
    assert response.status_code == 401, (response.status_code, response.text)
    assert 'error="invalid_token"' in www_authenticate(response), response.headers


def test_dpop_bound_tokens_with_requests_oauth2client(deployment):
    """RFC 9449 §4 (a proof at the token endpoint), §5 (token_type DPoP, cnf.jkt of that key), §7.1
    (userinfo with a proof bound to the token by ``ath``): 200; the same token as a plain Bearer
    token, or with a proof of another key: 401 invalid_token. A refresh proved with the same key
    (§5) gives a new access token bound to it."""
    registered = deployment.register("python-dpop", dpop_bound=True)
    client = oauth2_client(
        deployment, ClientSecretBasic(registered["client_id"], registered["client_secret"])
    )
    key = DPoPKey.generate(alg="ES256")

    token = ciba_poll(deployment, client, "Python DPoP 1", dpop_key=key)
    assert isinstance(token, DPoPToken) and token.token_type == "DPoP", token
    assert binding(deployment, registered["client_id"]) == {"jkt": key.dpop_jkt}
    claims = client.userinfo(token)
    assert claims["sub"] and token.id_token is not None and claims["sub"] == token.id_token.subject

    assert_invalid_token(refused_status(lambda: client.userinfo(BearerToken(token.access_token))))
    stolen = DPoPToken(token.access_token, _dpop_key=DPoPKey.generate(alg="ES256"))
    assert_invalid_token(refused_status(lambda: client.userinfo(stolen)))

    assert token.refresh_token
    refreshed = client.refresh_token(token)
    assert isinstance(refreshed, DPoPToken) and refreshed.token_type == "DPoP", refreshed
    assert refreshed.access_token != token.access_token
    assert client.userinfo(refreshed)["sub"] == claims["sub"]
    assert_invalid_token(refused_status(lambda: client.userinfo(BearerToken(refreshed.access_token))))


@pytest.mark.parametrize("auth", ["tls_client_auth", "self_signed_tls_client_auth"])
def test_certificate_bound_tokens_with_requests_oauth2client(deployment, auth):
    """RFC 8705 §2.1 (tls_client_auth, a CA-issued certificate) or §2.2 (self_signed_tls_client_auth)
    client authentication with the certificate of the library's session, and §3: the tokens stay
    Bearer, bound to that certificate (cnf x5t#S256); userinfo with it: 200, with another one: 401
    invalid_token (FAPI-15, FAPI-16)."""
    pki = deployment.pki
    name = f"python-{auth}"
    certificate = pki.client(name) if auth == "tls_client_auth" else pki.self_signed(name)
    registered = deployment.register(name, auth=auth, certificate=certificate, certificate_bound=True)
    client = oauth2_client(deployment, PublicApp(registered["client_id"]), certificate)

    token = ciba_poll(deployment, client, "Python mTLS 2")
    assert type(token) is BearerToken and token.token_type == "Bearer", token  # RFC 8705 §3
    assert binding(deployment, registered["client_id"]) == {"x5t#S256": certificate.x5t_s256}
    assert client.userinfo(token)["sub"] == token.id_token.subject

    thief = oauth2_client(deployment, PublicApp(registered["client_id"]), pki.client(f"{name}-other"))
    assert_invalid_token(refused_status(lambda: thief.userinfo(token)))
    no_certificate = oauth2_client(deployment, PublicApp(registered["client_id"]))
    assert_invalid_token(refused_status(lambda: no_certificate.userinfo(token)))


def test_requests_oauth2client_follows_dpop_nonces(nonce_deployment):
    """RFC 9449 §8 with CIBA["DPOP"]["NONCE_REQUIRED"]: the token endpoint answers the first proof
    400 use_dpop_nonce with a DPoP-Nonce header and the library retries with it (the key keeps it
    as ``as_nonce``); §9: userinfo answers 401 ``WWW-Authenticate: DPoP error="use_dpop_nonce"``
    and a DPoP-Nonce, the library retries (``rs_nonce``) and gets the claims."""
    deployment = nonce_deployment
    registered = deployment.register("python-dpop-nonce", dpop_bound=True)
    client = oauth2_client(
        deployment, ClientSecretBasic(registered["client_id"], registered["client_secret"])
    )
    key = DPoPKey.generate(alg="ES256")
    assert key.as_nonce is None and key.rs_nonce is None

    token = ciba_poll(deployment, client, "Python nonce 3", dpop_key=key)
    assert isinstance(token, DPoPToken) and token.token_type == "DPoP", token
    assert key.as_nonce, "the token endpoint never asked for a nonce (RFC 9449 §8.1)"
    assert binding(deployment, registered["client_id"]) == {"jkt": key.dpop_jkt}

    assert client.userinfo(token)["sub"] == token.id_token.subject
    assert key.rs_nonce, "userinfo never asked for a nonce (RFC 9449 §9)"
    assert_invalid_token(refused_status(lambda: client.userinfo(BearerToken(token.access_token))))
