"""The mTLS harness itself (tests/integration/tls.py, fapi.py): nginx terminating TLS in front of
the example project, as RFC 8705 deployments behind a proxy run it.

- nginx's verdict on a client certificate: a CA-issued one is verified (``SUCCESS``), a
  self-signed one is not (``FAILED:...``) but the connection goes on, none at all gives ``NONE``;
- a client without a certificate still uses the OP over TLS: discovery (https issuer, behind the
  proxy), the JWKS, and bc-authorize authenticated with private_key_jwt (RFC 7523), which also
  shows Django trusting the proxy's X-Forwarded-Proto (the assertion's ``aud`` is the https
  token endpoint of discovery).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import jwt
import pytest

from tests.integration.fapi import MtlsDeployment, mtls_deployment
from tests.integration.services import Deadline


pytestmark = pytest.mark.integration

MODULE_BUDGET = 90


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[MtlsDeployment]:
    deadline = Deadline(MODULE_BUDGET, "the mTLS harness module")
    with mtls_deployment(tmp_path_factory.mktemp("fapi-harness"), deadline) as deployment:
        yield deployment


def tls_verdict(deployment: MtlsDeployment, certificate=None) -> str:
    response = deployment.session(certificate).get(f"{deployment.proxy.url}/tls-check", timeout=10)
    assert response.status_code == 200, response.text
    return response.text.strip()


def test_nginx_verifies_ca_issued_certificates_and_passes_self_signed_ones_on(deployment):
    """RFC 8705 §2.1 (PKI, the proxy verifies the chain) and §2.2 (self-signed: passed on)."""
    pki = deployment.pki
    assert tls_verdict(deployment, pki.client("rp-verified")) == "SUCCESS"
    assert tls_verdict(deployment, pki.self_signed("rp-self-signed")).startswith("FAILED:")
    assert tls_verdict(deployment) == "NONE"


def test_a_client_without_certificate_reads_discovery_and_jwks(deployment):
    session = deployment.session()  # no client certificate
    response = session.get(f"{deployment.issuer}/.well-known/openid-configuration", timeout=10)
    assert response.status_code == 200, response.text
    document = response.json()
    assert document["issuer"] == deployment.issuer
    assert document["token_endpoint"] == deployment.token_endpoint
    assert document["backchannel_authentication_endpoint"] == f"{deployment.issuer}/bc-authorize"
    jwks = session.get(document["jwks_uri"], timeout=10)
    assert jwks.status_code == 200 and jwks.json()["keys"], jwks.text


def test_private_key_jwt_bc_authorize_works_without_a_certificate(deployment):
    """BC-03 / RFC 7523 through the TLS proxy, no client certificate: 200 with an auth_req_id."""
    key = deployment.pki.self_signed("pkjwt-signer")  # only its key pair is used here
    jwks_file = deployment.directory / "pkjwt-jwks.json"
    jwk = key.public_jwk(kid="pkjwt-1")
    del jwk["x5c"]
    jwks_file.write_text(json.dumps({"keys": [jwk]}))
    client = deployment.project.create_client(
        *("--name", "pkjwt", "--mode", "poll", "--scope", "openid profile"),
        *("--auth-method", "private_key_jwt", "--jwks-file", str(jwks_file)),
    )
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": client["client_id"],
            "sub": client["client_id"],
            "aud": deployment.token_endpoint,
            "jti": secrets.token_urlsafe(16),
            "iat": now,
            "exp": now + 60,
        },
        key.key,
        algorithm="ES256",
        headers={"kid": "pkjwt-1"},
    )
    response = deployment.session().post(
        f"{deployment.issuer}/bc-authorize",
        data={
            "scope": "openid profile",
            "login_hint": "ada",
            "binding_message": "TLS 1",
            "client_id": client["client_id"],
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
        },
        timeout=15,
    )
    assert response.status_code == 200, response.text
    assert response.json()["auth_req_id"]
    # nginx answered it (the access log names every request with its certificate verdict).
    assert any(uri == "/o/bc-authorize" and status == 200 for _m, uri, status, _v in _access(deployment))


def _access(deployment: MtlsDeployment) -> list[tuple[str, str, int, str]]:
    return deployment.proxy.access_entries()
