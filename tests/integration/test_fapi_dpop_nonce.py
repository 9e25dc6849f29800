"""DPoP with server-provided nonces (RFC 9449 §8, §9), CIBA["DPOP"]["NONCE_REQUIRED"] = True,
through nginx with TLS.

- openid-client (Node) recovers by itself: the token endpoint answers its first proof 400
  ``use_dpop_nonce`` with a ``DPoP-Nonce`` header, it retries with that nonce, and the poll flow
  ends with DPoP-bound tokens that userinfo accepts;
- from Python: a proof without a nonce gets 400 ``use_dpop_nonce`` and a ``DPoP-Nonce`` header at
  the token endpoint (§8.1), and 401 with ``WWW-Authenticate: DPoP error="use_dpop_nonce"`` and a
  ``DPoP-Nonce`` header at userinfo (§9); the same request with the nonce given succeeds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.dpop_key import DPoPKey
from tests.integration import test_node_client as poll_check
from tests.integration.fapi import CIBA_GRANT_TYPE, MtlsDeployment, mtls_deployment, www_authenticate
from tests.integration.services import Deadline
from tests.integration.test_fapi_node import run_node_flow


node_project = poll_check.node_project  # the fixture, used here by name

pytestmark = pytest.mark.integration

MODULE_BUDGET = 100
SETTINGS = {"INTERVAL": 1, "DPOP": {"NONCE_REQUIRED": True}}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[MtlsDeployment]:
    deadline = Deadline(MODULE_BUDGET, "the DPoP nonce module")
    with mtls_deployment(tmp_path_factory.mktemp("fapi-nonce"), deadline, SETTINGS) as deployment:
        yield deployment


def test_openid_client_recovers_from_use_dpop_nonce(deployment, node_tools, node_project):
    """RFC 9449 §8.1: the client retries with the DPoP-Nonce it was given; the flow succeeds."""
    client = deployment.register("node-dpop-nonce", dpop_bound=True)
    env = {"CIBA_CLIENT_SECRET": client["client_secret"]}
    events = run_node_flow(deployment, node_tools, node_project, "ciba-dpop.mjs", client, "poll", env)

    assert events["tokens"]["token_type"].lower() == "dpop"
    assert events["userinfo"]["sub"] == events["tokens"]["claims"]["sub"]
    exchanges = [(r["path"], r["status"], r["dpop_nonce"]) for r in events["http"]["requests"]]
    token_answers = [(status, nonce) for path, status, nonce in exchanges if path == "/o/token/"]
    assert token_answers[0] == (400, True), exchanges  # use_dpop_nonce, with a DPoP-Nonce header
    assert token_answers[-1][0] == 200, exchanges


def test_a_proof_without_nonce_is_answered_use_dpop_nonce(deployment):
    """RFC 9449 §8.1 at the token endpoint (400) and §9 at userinfo (401, WWW-Authenticate)."""
    key = DPoPKey()
    client = deployment.register("dpop-nonce", dpop_bound=True)
    session = deployment.session()
    auth_req_id = deployment.approved_request(client, session)
    data = {"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id}

    refused = deployment.token(client, session, data, {"DPoP": key.proof("POST", deployment.token_endpoint)})
    assert refused.status_code == 400 and refused.json()["error"] == "use_dpop_nonce", refused.text
    nonce = refused.headers.get("DPoP-Nonce")
    assert nonce, refused.headers

    proof = key.proof("POST", deployment.token_endpoint, nonce=nonce)
    response = deployment.token(client, session, data, {"DPoP": proof})
    assert response.status_code == 200, response.text
    access_token = response.json()["access_token"]
    assert response.json()["token_type"] == "DPoP"

    headers = {
        "Authorization": f"DPoP {access_token}",
        "DPoP": key.proof("GET", deployment.userinfo_endpoint, access_token=access_token),
    }
    challenged = session.get(deployment.userinfo_endpoint, headers=headers, timeout=15)
    assert challenged.status_code == 401, challenged.text
    challenge = www_authenticate(challenged)
    assert challenge.startswith("DPoP") and 'error="use_dpop_nonce"' in challenge, challenge
    nonce = challenged.headers.get("DPoP-Nonce")
    assert nonce, challenged.headers

    headers["DPoP"] = key.proof("GET", deployment.userinfo_endpoint, access_token=access_token, nonce=nonce)
    answered = session.get(deployment.userinfo_endpoint, headers=headers, timeout=15)
    assert answered.status_code == 200, answered.text
