"""Sender-constrained tokens through nginx with mTLS, driven from Python (requests + PyJWT).

Push mode bound to a key: tokens pushed to the client (CIBA Core §10.3) are bound to the DPoP key
named by ``dpop_jkt`` at bc-authorize (RFC 9449 §10) or to the certificate the client presented
there (RFC 8705 §3), since no token request is made in push mode. Then the negatives: a wrong
certificate at the token endpoint (invalid_client) and at userinfo (invalid_token), a forged
Client-Cert header sent without a TLS client certificate, a stolen DPoP token used without its
key, a replayed proof and a proof for another URL (invalid_dpop_proof), and introspection (RFC
7662) reporting ``cnf`` for bound tokens (RFC 8705 §3.2, RFC 9449 §6.2).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests

from tests.dpop_key import DPoPKey
from tests.integration.fapi import (
    CIBA_GRANT_TYPE,
    MtlsDeployment,
    mtls_deployment,
    www_authenticate,
)
from tests.integration.services import Deadline
from tests.integration.tls import Credential


pytestmark = pytest.mark.integration

MODULE_BUDGET = 120


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[MtlsDeployment]:
    deadline = Deadline(MODULE_BUDGET, "the bound-token module")
    with mtls_deployment(tmp_path_factory.mktemp("fapi-bound"), deadline) as deployment:
        yield deployment


@pytest.fixture(scope="module")
def resource_server(deployment) -> dict[str, Any]:
    """A confidential client with a secret that introspects tokens (RFC 7662 §2.1)."""
    return deployment.register("resource-server")


def userinfo(
    deployment: MtlsDeployment,
    access_token: str,
    *,
    key: DPoPKey | None = None,
    certificate: Credential | None = None,
    scheme: str | None = None,
) -> requests.Response:
    """GET userinfo: with a DPoP proof of ``key`` (scheme DPoP, ``ath``) or as Bearer."""
    headers = {"Authorization": f"{scheme or ('DPoP' if key else 'Bearer')} {access_token}"}
    if key is not None:
        headers["DPoP"] = key.proof("GET", deployment.userinfo_endpoint, access_token=access_token)
    return deployment.session(certificate).get(deployment.userinfo_endpoint, headers=headers, timeout=15)


def assert_invalid_token(response: requests.Response) -> None:
    assert response.status_code == 401, (response.status_code, response.text)
    assert 'error="invalid_token"' in www_authenticate(response), response.headers


def pushed_tokens(deployment: MtlsDeployment, path: str, auth_req_id: str) -> dict[str, Any]:
    (push,) = deployment.receiver.wait_for(1, path=path, timeout=deployment.deadline.left(20))
    body = push.json()
    assert body["auth_req_id"] == auth_req_id
    return body


def introspect(deployment: MtlsDeployment, resource_server: dict[str, Any], token: str) -> dict[str, Any]:
    response = deployment.session().post(
        f"{deployment.issuer}/introspect/",
        data={"token": token},
        auth=(resource_server["client_id"], resource_server["client_secret"]),
        timeout=15,
    )
    assert response.status_code == 200, response.text
    return response.json()


def dpop_tokens(deployment: MtlsDeployment, key: DPoPKey) -> tuple[dict[str, Any], dict[str, Any]]:
    """A poll client, an approved request, and the tokens for a proof of ``key``."""
    client = deployment.register(f"dpop-{key.thumbprint[:8]}", dpop_bound=True)
    session = deployment.session()
    auth_req_id = deployment.approved_request(client, session)
    response = deployment.token(
        client,
        session,
        {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id},
        {"DPoP": key.proof("POST", deployment.token_endpoint)},
    )
    assert response.status_code == 200, response.text
    return client, response.json()


# --- push bound to a key -------------------------------------------------------------------------
def test_push_tokens_are_bound_to_the_dpop_jkt_of_bc_authorize(deployment, resource_server):
    """RFC 9449 §10 (dpop_jkt) with CIBA push §10.3: the pushed token is DPoP-bound to that key."""
    key, other = DPoPKey(), DPoPKey()
    client = deployment.register(
        "push-dpop", mode="push", dpop_bound=True, notification_endpoint=deployment.receiver.url("/push-dpop")
    )
    auth_req_id = deployment.approved_request(
        client, deployment.session(), client_notification_token="n" * 43, dpop_jkt=key.thumbprint
    )
    tokens = pushed_tokens(deployment, "/push-dpop", auth_req_id)
    assert tokens["token_type"] == "DPoP"
    access_token = tokens["access_token"]

    assert userinfo(deployment, access_token, key=key).status_code == 200
    assert_invalid_token(userinfo(deployment, access_token))  # no proof, as Bearer
    assert_invalid_token(userinfo(deployment, access_token, key=other))  # a proof of another key
    assert introspect(deployment, resource_server, access_token)["cnf"] == {"jkt": key.thumbprint}


def test_push_tokens_are_bound_to_the_certificate_of_bc_authorize(deployment, resource_server):
    """RFC 8705 §3 with CIBA push: the pushed token is bound to the certificate presented at
    bc-authorize (tls_client_auth, §2.1)."""
    certificate, other = deployment.pki.client("push-mtls"), deployment.pki.client("push-mtls-other")
    client = deployment.register(
        "push-mtls",
        mode="push",
        auth="tls_client_auth",
        certificate=certificate,
        certificate_bound=True,
        notification_endpoint=deployment.receiver.url("/push-mtls"),
    )
    auth_req_id = deployment.approved_request(
        client, deployment.session(certificate), client_notification_token="m" * 43
    )
    tokens = pushed_tokens(deployment, "/push-mtls", auth_req_id)
    assert tokens["token_type"] == "Bearer"  # RFC 8705 §3: certificate-bound, still Bearer
    access_token = tokens["access_token"]

    assert userinfo(deployment, access_token, certificate=certificate).status_code == 200
    assert_invalid_token(userinfo(deployment, access_token, certificate=other))  # FAPI-16
    assert_invalid_token(userinfo(deployment, access_token))  # no certificate at all
    cnf = introspect(deployment, resource_server, access_token)["cnf"]
    assert cnf == {"x5t#S256": certificate.x5t_s256}


# --- negatives -------------------------------------------------------------------------------------
def test_a_wrong_certificate_at_the_token_endpoint_is_invalid_client(deployment):
    """RFC 8705 §2.1: another CA-issued certificate does not authenticate the client (BC-03)."""
    certificate, other = deployment.pki.client("tok-mtls"), deployment.pki.client("tok-mtls-other")
    client = deployment.register(
        "tok-mtls", auth="tls_client_auth", certificate=certificate, certificate_bound=True
    )
    auth_req_id = deployment.approved_request(client, deployment.session(certificate))
    data = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}
    for session in (deployment.session(other), deployment.session()):
        response = deployment.token(client, session, data)
        assert response.status_code == 401 and response.json()["error"] == "invalid_client", response.text
    response = deployment.token(client, deployment.session(certificate), data)
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "Bearer"


def test_a_forged_client_cert_header_does_not_authenticate(deployment):
    """RFC 8705 behind a proxy: the proxy overwrites Client-Cert, so a client without a TLS client
    certificate cannot claim one by sending the header itself."""
    certificate = deployment.pki.client("forger")
    client = deployment.register("forged", auth="tls_client_auth", certificate=certificate)
    pem = certificate.cert_file.read_text()
    session = deployment.session()
    session.headers.update({"Client-Cert": quote(pem), "X-Client-Cert-Verify": "SUCCESS"})
    response = deployment.bc_authorize(client, session)
    assert response.status_code == 401 and response.json()["error"] == "invalid_client", response.text


def test_a_stolen_dpop_token_is_useless_without_its_key(deployment):
    """RFC 9449 §7.1: proofs of another key, or none, do not let a thief use the token."""
    key = DPoPKey()
    _client, tokens = dpop_tokens(deployment, key)
    assert tokens["token_type"] == "DPoP"
    thief = DPoPKey()
    assert_invalid_token(userinfo(deployment, tokens["access_token"], key=thief))
    assert_invalid_token(userinfo(deployment, tokens["access_token"]))
    assert userinfo(deployment, tokens["access_token"], key=key).status_code == 200


def test_a_replayed_proof_and_a_proof_for_another_url_are_refused(deployment):
    """RFC 9449 §4.3 checks 9 (htu) and §11.1 (replay, jti): 400 invalid_dpop_proof."""
    key = DPoPKey()
    client = deployment.register("dpop-replay", dpop_bound=True)
    session = deployment.session()
    auth_req_id = deployment.approved_request(client, session)
    data = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}

    wrong_htu = key.proof("POST", f"{deployment.issuer}/bc-authorize")
    response = deployment.token(client, session, data, {"DPoP": wrong_htu})
    assert response.status_code == 400 and response.json()["error"] == "invalid_dpop_proof", response.text

    proof = key.proof("POST", deployment.token_endpoint)
    first = deployment.token(client, session, data, {"DPoP": proof})
    assert first.status_code == 200, first.text
    replayed = deployment.token(client, session, data, {"DPoP": proof})
    assert replayed.status_code == 400 and replayed.json()["error"] == "invalid_dpop_proof", replayed.text


def test_introspection_reports_the_dpop_binding(deployment, resource_server):
    """RFC 9449 §6.2: an introspection response names the key a token is bound to (cnf.jkt)."""
    key = DPoPKey()
    _client, tokens = dpop_tokens(deployment, key)
    answer = introspect(deployment, resource_server, tokens["access_token"])
    assert answer["active"] is True
    assert answer["cnf"] == {"jkt": key.thumbprint}
