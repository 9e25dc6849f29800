"""The independent-client check with rich authorization requests (RFC 9396).

openid-client (Node.js) runs CIBA poll mode against the example project served over real HTTP on
loopback with a PostgreSQL database of its own, with two authorization details types configured
(tests/integration/rar.py). It sends ``authorization_details``, as a JSON string form parameter
(RFC 9396 §3, client_secret_basic) or as an array claim of a signed request it builds itself
(private_key_jwt); the user approves only part of them (the approval service, ``details=[positions]``);
openid-client reads back exactly that part in the token response (§7), a resource server reads it
at introspection (§9.2), and a refresh narrowed to one granted detail (§6.1) carries that one.
"""

from __future__ import annotations

import json

import pytest

from django_ciba.testing import make_client_key
from tests.integration import rar
from tests.integration import test_node_client as poll_check
from tests.integration.services import Deadline, ServedProject
from tests.integration.test_node_client import NodeScript
from tests.integration.test_node_signed import private_jwk


node_project = poll_check.node_project  # the poll check's fixture, used here by name

pytestmark = pytest.mark.integration

USERNAME = "ciba-node-rar"
SCOPE = "openid offline_access"
TEST_BUDGET = 90  # seconds for the whole test, npm install excluded
REQUESTED = [rar.PAYMENT, rar.SCRIPTED_PAYMENT, rar.ACCOUNTS]
APPROVED = [1, 2]  # the first payment is left out: payments allow SUBSET
GRANTED = [rar.SCRIPTED_PAYMENT, rar.ACCOUNTS]


@pytest.mark.parametrize("signed", [False, True], ids=["form", "signed_request"])
def test_openid_client_sends_authorization_details_and_reads_back_the_approved_subset(
    node_tools, node_project, tmp_path, signed
):
    deadline = Deadline(TEST_BUDGET, "the RAR independent-client check")
    project = ServedProject(tmp_path / "op", broker_url="", env=rar.ENV)
    node = None
    try:
        project.migrate(timeout=deadline.left(60))
        project.create_user(USERNAME, "rar@example.com", "pw")
        if signed:
            private_key, public_jwk = make_client_key("PS256", kid="node-rar-1")
            jwks_file = tmp_path / "jwks.json"
            jwks_file.write_text(json.dumps({"keys": [public_jwk]}))
            client = project.create_client(
                *("--name", "node-rar", "--mode", "poll", "--scope", SCOPE),
                *("--auth-method", "private_key_jwt", "--jwks-file", str(jwks_file)),
                *("--signing-alg", "PS256", "--auth-signing-alg", "PS256"),
            )
            credentials = {"CIBA_PRIVATE_JWK": json.dumps(private_jwk(private_key, public_jwk))}
        else:
            client = project.create_client("--name", "node-rar", "--mode", "poll", "--scope", SCOPE)
            credentials = {"CIBA_CLIENT_SECRET": client["client_secret"]}
        resource_server = project.create_client("--name", "Resource server", "--mode", "poll")
        project.start_web(timeout=deadline.left(30))
        node = NodeScript(
            node_tools["node"],
            node_project,
            "ciba-rar.mjs",
            {
                "CIBA_ISSUER": project.issuer,
                "CIBA_CLIENT_ID": client["client_id"],
                **credentials,
                "CIBA_LOGIN_HINT": USERNAME,
                "CIBA_SCOPE": SCOPE,
                "CIBA_BINDING_MESSAGE": "Pay 2 of 3",
                "CIBA_AUTHORIZATION_DETAILS": json.dumps(REQUESTED),
                "CIBA_REFRESH_DETAILS": json.dumps([rar.ACCOUNTS]),
                "CIBA_RS_CLIENT_ID": resource_server["client_id"],
                "CIBA_RS_CLIENT_SECRET": resource_server["client_secret"],
                "CIBA_TIMEOUT_SECONDS": str(int(deadline.left(40))),
            },
            deadline,
            lambda: f"server log:\n{project.log_tail()}",
        )
        initiated = node.next_event(20)
        assert initiated["event"] == "initiated"
        auth_req_id = initiated["auth_req_id"]
        stored = project.shell_json(
            "import json; from django_ciba.models import AuthenticationRequest as R; "
            f"print(json.dumps(R.objects.by_auth_req_id({auth_req_id!r}).get().authorization_details))"
        )
        granted = json.loads(rar.approve_subset(project, auth_req_id, APPROVED))
        tokens = node.next_event(40)
        refreshed = node.next_event(20)
        node.finish()
    finally:
        if node is not None:
            node.stop()
        project.stop()

    # Discovery, as openid-client read it (RFC 9396 §10).
    assert sorted(initiated["types_supported"]) == sorted(rar.TYPES)
    # Stored as sent, markup and non-ASCII text included; granted: the approved part, in order.
    assert stored == REQUESTED
    assert granted == GRANTED
    # The token response openid-client accepted carries exactly the approved part (RFC 9396 §7).
    assert tokens["event"] == "tokens"
    assert tokens["has_access_token"] and tokens["has_refresh_token"]
    assert tokens["authorization_details"] == GRANTED
    # Introspection by a resource server (§9.2): the first access token holds the approved part...
    assert refreshed["event"] == "refreshed"
    assert refreshed["introspected"] == {"active": True, "authorization_details": GRANTED}
    # ... and a refresh asking for one granted detail (§6.1) gets that one, its token too.
    assert refreshed["has_access_token"]
    assert refreshed["authorization_details"] == [rar.ACCOUNTS]
    assert refreshed["introspected_refreshed"] == {"active": True, "authorization_details": [rar.ACCOUNTS]}
