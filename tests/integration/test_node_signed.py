"""The independent-client check with a signed request and private_key_jwt.

openid-client (Node.js) runs CIBA poll mode against the example project served over real HTTP on
loopback with a PostgreSQL database of its own, configured from discovery only. It authenticates
with ``private_key_jwt`` at the backchannel and token endpoints (RFC 7523, BC-03/BC-04, TOK-02) and
sends the authentication request as a signed Request Object (SR-01..SR-15) that openid-client
builds itself. The client was created with ``manage.py ciba_create_client --auth-method
private_key_jwt --jwks-file ... --signing-alg PS256``, so an unsigned request would be refused.
"""

from __future__ import annotations

import json

import jwt
import pytest

from django_ciba.testing import make_client_key
from tests.integration import test_node_client as poll_check
from tests.integration.services import Deadline, ServedProject
from tests.integration.test_node_client import NodeScript, assert_tokens_event


node_project = poll_check.node_project  # the poll check's fixture, used here by name

pytestmark = pytest.mark.integration

USERNAME = "ciba-node-signed"
SCOPE = "openid profile offline_access"
BINDING_MESSAGE = "Signed 12"
TEST_BUDGET = 60  # seconds for the whole test, npm install excluded


def private_jwk(private_key, public_jwk: dict) -> dict:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private_key))
    return {**jwk, "kid": public_jwk["kid"], "alg": "PS256", "use": "sig"}


def test_openid_client_signed_request_and_private_key_jwt(node_tools, node_project, tmp_path):
    deadline = Deadline(TEST_BUDGET, "the signed-request independent-client check")
    private_key, public_jwk = make_client_key("PS256", kid="node-signed-1")
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps({"keys": [public_jwk]}))
    project = ServedProject(tmp_path / "op", broker_url="")
    node = None
    try:
        project.migrate()
        user_pk = project.shell(
            "from django.contrib.auth import get_user_model; "
            f"print(get_user_model().objects.create_user({USERNAME!r}, 'signed@example.com', 'pw').pk)"
        )
        client = json.loads(
            project.manage(
                "ciba_create_client",
                *("--name", "node-signed", "--mode", "poll", "--scope", SCOPE),
                *("--auth-method", "private_key_jwt", "--jwks-file", str(jwks_file)),
                *("--signing-alg", "PS256", "--auth-signing-alg", "PS256"),
            ).strip()
        )
        assert client["token_endpoint_auth_method"] == "private_key_jwt"
        assert "client_secret" not in client
        client_id = client["client_id"]
        project.start_web(timeout=deadline.left(30))
        node = NodeScript(
            node_tools["node"],
            node_project,
            "ciba-signed.mjs",
            {
                "CIBA_ISSUER": project.issuer,
                "CIBA_CLIENT_ID": client_id,
                "CIBA_PRIVATE_JWK": json.dumps(private_jwk(private_key, public_jwk)),
                "CIBA_LOGIN_HINT": USERNAME,
                "CIBA_BINDING_MESSAGE": BINDING_MESSAGE,
                "CIBA_SCOPE": SCOPE,
                "CIBA_TIMEOUT_SECONDS": str(int(deadline.left(40))),
            },
            deadline,
            lambda: f"server log:\n{project.log_tail()}",
        )
        initiated = node.next_event(20)
        assert initiated["event"] == "initiated"
        auth_req_id = initiated["auth_req_id"]
        assert initiated["expires_in"] > 0 and initiated["interval"] >= 1
        assert "approved" in project.manage("ciba_approve", auth_req_id)
        tokens = node.next_event(40)
        node.finish()
        record = project.shell_json(
            "import json; from django_ciba.models import AuthenticationRequest as R, JwtUse; "
            f"r = R.objects.by_auth_req_id({auth_req_id!r}).select_related('user').get(); "
            "print(json.dumps({'status': r.status, 'user': r.user.get_username(), "
            "'binding_message': r.binding_message, 'scope': r.scope, "
            "'jtis': sorted(set(JwtUse.objects.values_list('kind', flat=True)))}))"
        )
    finally:
        if node is not None:
            node.stop()
        project.stop()

    issuer = project.issuer
    assert_tokens_event(tokens, user_pk=user_pk, client_id=client_id, issuer=issuer, auth_req_id=auth_req_id)
    # The values came from inside the Request Object, and both kinds of JWT were recorded once used.
    assert record == {
        "status": "consumed",
        "user": USERNAME,
        "binding_message": BINDING_MESSAGE,
        "scope": SCOPE,
        "jtis": ["assertion", "request"],
    }
