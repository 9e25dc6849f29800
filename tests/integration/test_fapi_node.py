"""Sender-constrained tokens with an independent client: openid-client (Node.js) through nginx
terminating TLS with client certificates (tests/integration/tls.py) in front of the example project.

- mTLS (RFC 8705): ``TlsClientAuth()`` with the client's certificate presented by a custom fetch,
  poll (tls_client_auth, a CA-issued certificate) and ping (self_signed_tls_client_auth); the
  tokens are certificate-bound (``token_type`` Bearer, RFC 8705 §3) and userinfo accepts them with
  that certificate only (another one: 401 invalid_token; FAPI-15, FAPI-16);
- DPoP (RFC 9449): a DPoP handle, poll and ping; ``token_type`` DPoP (§5), userinfo with a proof
  bound to the token (``ath``, §7.1) succeeds, the same token as a plain Bearer token is refused.

The OP's own record is checked too: the token's binding (``cnf``) names that certificate's
``x5t#S256`` or that key's thumbprint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration import test_node_client as poll_check
from tests.integration.fapi import USERNAME, MtlsDeployment, mtls_deployment
from tests.integration.services import Deadline, free_port, tail
from tests.integration.test_node_client import NodeScript
from tests.integration.tls import Credential, b64url


node_project = poll_check.node_project  # the fixture, used here by name

pytestmark = pytest.mark.integration

MODULE_BUDGET = 150  # seconds: the deployment and four Node flows
SETTINGS = {"INTERVAL": 1}  # openid-client polls every second


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[MtlsDeployment]:
    deadline = Deadline(MODULE_BUDGET, "the FAPI Node module")
    with mtls_deployment(tmp_path_factory.mktemp("fapi-node"), deadline, SETTINGS) as deployment:
        yield deployment


def run_node_flow(
    deployment: MtlsDeployment,
    node_tools: dict[str, str],
    node_project,
    script: str,
    client: dict[str, Any],
    mode: str,
    env: dict[str, str],
) -> dict[str, dict[str, Any]]:
    """Run ``script`` (poll or ping), approve its request, and return its events by name."""
    environment = {
        "CIBA_ISSUER": deployment.issuer,
        "CIBA_CLIENT_ID": client["client_id"],
        "CIBA_LOGIN_HINT": USERNAME,
        "CIBA_CA_FILE": str(deployment.pki.ca_file),
        "CIBA_MODE": mode,
        "CIBA_BINDING_MESSAGE": f"Node {mode} 7",
        "CIBA_TIMEOUT_SECONDS": str(int(deployment.deadline.left(30))),
        **env,
    }
    if mode == "ping":
        assert "CIBA_RECEIVER_PORT" in env, "the port of the registered notification endpoint"
        environment.update(
            CIBA_RECEIVER_CERT=str(deployment.pki.server.cert_file),
            CIBA_RECEIVER_KEY=str(deployment.pki.server.key_file),
        )
    node = NodeScript(
        node_tools["node"],
        node_project,
        script,
        environment,
        deployment.deadline,
        lambda: (
            f"OP logs:\n{deployment.project.log_tail()}\n{deployment.proxy.log_tail()}\n"
            f"nginx access (time method uri status certificate verdict):\n{tail(deployment.proxy.access_log)}"
        ),
    )
    try:
        events: dict[str, dict[str, Any]] = {}
        while "http" not in events:
            event = node.next_event(30)
            events[event["event"]] = event
            if event["event"] == "initiated":
                deployment.approve(event["auth_req_id"])
        node.process.wait(timeout=deployment.deadline.left(10))
        if node.process.returncode != 0:
            node.next_event(5)  # the error event: fails with the script's details
        node.finish()
    finally:
        node.stop()
    if mode == "ping":
        assert events["ping"]["authorization_ok"] and events["ping"]["auth_req_id_ok"], events
    return events


def binding(deployment: MtlsDeployment, client_id: str) -> dict[str, str]:
    """The OP's cnf of the client's (one) access token: {"jkt": ...} or {"x5t#S256": ...}."""
    return deployment.project.shell_json(
        "import json; from django_ciba.models import TokenBinding; "
        f"rows = [b.confirmation for b in TokenBinding.objects.filter("
        f"access_token__application__client_id={client_id!r})]; "
        "print(json.dumps(rows[0] if len(rows) == 1 else rows))"
    )


def assert_refused(event: dict[str, Any]) -> None:
    refused = event["refused"]
    assert refused is not None, f"userinfo accepted the token: {event}"
    assert refused["status"] == 401 and refused["error"] == "invalid_token", event


def jwk_thumbprint(jwk: dict[str, str]) -> str:
    """RFC 7638 §3 for an EC key."""
    members = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    return b64url(
        hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    )


@pytest.mark.parametrize(
    ("auth", "mode"), [("tls_client_auth", "poll"), ("self_signed_tls_client_auth", "ping")]
)
def test_openid_client_gets_certificate_bound_tokens_over_mtls(
    deployment, node_tools, node_project, auth, mode
):
    """RFC 8705 §2.1 / §2.2 client authentication and §3 certificate-bound tokens (FAPI-15, FAPI-16)."""
    pki = deployment.pki
    name = f"node-{auth}-{mode}"
    certificate: Credential = pki.client(name) if auth == "tls_client_auth" else pki.self_signed(name)
    other = pki.client(f"{name}-other")
    endpoint = "" if mode == "poll" else "https://127.0.0.1:{port}/cb"
    env = {
        "CIBA_CLIENT_CERT": str(certificate.cert_file),
        "CIBA_CLIENT_KEY": str(certificate.key_file),
        "CIBA_OTHER_CERT": str(other.cert_file),
        "CIBA_OTHER_KEY": str(other.key_file),
    }
    if mode == "ping":
        port = free_port()
        endpoint = endpoint.format(port=port)
        env["CIBA_RECEIVER_PORT"] = str(port)
    client = deployment.register(
        name,
        mode=mode,
        auth=auth,
        certificate=certificate,
        certificate_bound=True,
        notification_endpoint=endpoint,
    )
    events = run_node_flow(deployment, node_tools, node_project, "ciba-mtls.mjs", client, mode, env)

    tokens = events["tokens"]
    assert tokens["token_type"].lower() == "bearer"  # RFC 8705 §3: still a Bearer token
    assert tokens["claims"]["aud"] in (client["client_id"], [client["client_id"]])
    assert events["userinfo"]["sub"] == tokens["claims"]["sub"]
    assert_refused(events["userinfo_other_certificate"])
    assert binding(deployment, client["client_id"]) == {"x5t#S256": certificate.x5t_s256}


@pytest.mark.parametrize("mode", ["poll", "ping"])
def test_openid_client_gets_dpop_bound_tokens(deployment, node_tools, node_project, mode):
    """RFC 9449 §5 (token_type DPoP), §7.1 (userinfo with a proof; no proof: invalid_token)."""
    name = f"node-dpop-{mode}"
    env: dict[str, str] = {}
    endpoint = ""
    if mode == "ping":
        port = free_port()
        endpoint = f"https://127.0.0.1:{port}/cb"
        env["CIBA_RECEIVER_PORT"] = str(port)
    client = deployment.register(name, mode=mode, dpop_bound=True, notification_endpoint=endpoint)
    env["CIBA_CLIENT_SECRET"] = client["client_secret"]
    events = run_node_flow(deployment, node_tools, node_project, "ciba-dpop.mjs", client, mode, env)

    tokens = events["tokens"]
    assert tokens["token_type"].lower() == "dpop"
    assert events["userinfo"]["sub"] == tokens["claims"]["sub"]
    assert_refused(events["userinfo_bearer"])
    token_requests = [r for r in events["http"]["requests"] if r["path"] == "/o/token/"]
    assert token_requests and all(r["dpop"] for r in token_requests), token_requests
    assert binding(deployment, client["client_id"]) == {"jkt": jwk_thumbprint(events["dpop_key"]["jwk"])}
