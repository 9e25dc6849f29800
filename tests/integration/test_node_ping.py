"""The independent-client check, ping mode: openid-client (Node.js) runs CIBA ping mode against the
example project, served over real HTTP on loopback with a PostgreSQL database of its own.

The Node script serves its own HTTPS notification endpoint (a self-signed certificate made here,
trusted by the OP through ``REQUESTS_CA_BUNDLE``), sends a client_notification_token, checks the
ping it gets after ``manage.py ciba_approve`` (PING-02/03) and then redeems the auth_req_id once at
the token endpoint, verifying the ID token against the OP's JWKS.

Without ``CELERY_BROKER_URL`` the example project runs its Celery tasks eagerly, so the ping is
sent by the process that approves (``manage.py ciba_approve``), right after its commit.
"""

from __future__ import annotations

import json

import pytest

from tests.integration import test_node_client as poll_check
from tests.integration.receiver import self_signed_certificate
from tests.integration.services import Deadline, ServedProject, free_port
from tests.integration.test_node_client import NodeScript, assert_tokens_event


# The poll check's fixture, used here by name.
node_project = poll_check.node_project


pytestmark = pytest.mark.integration

USERNAME = "ciba-node-ping"
SCOPE = "openid profile offline_access"
BINDING_MESSAGE = "Node ping 7"
TEST_BUDGET = 60  # seconds for the whole test, npm install excluded


def test_openid_client_completes_ciba_ping_flow(node_tools, node_project, tmp_path):
    deadline = Deadline(TEST_BUDGET, "the ping-mode independent-client check")
    (tmp_path / "tls").mkdir()
    cert_file, key_file = self_signed_certificate(tmp_path / "tls")
    # No broker: tasks run in-process; the OP trusts the Node receiver through REQUESTS_CA_BUNDLE.
    project = ServedProject(tmp_path / "op", broker_url="", ca_file=str(cert_file))
    receiver_port = free_port()
    while receiver_port == project.port:
        receiver_port = free_port()
    issuer = project.issuer
    endpoint = f"https://127.0.0.1:{receiver_port}/cb"
    node = None
    try:
        project.migrate()
        user_pk = project.shell(
            "from django.contrib.auth import get_user_model; "
            f"print(get_user_model().objects.create_user({USERNAME!r}, 'ping@example.com', 'pw').pk)"
        )
        client = json.loads(
            project.manage(
                "ciba_create_client",
                *("--name", "node-ping", "--mode", "ping", "--scope", SCOPE),
                *("--notification-endpoint", endpoint),
            ).strip()
        )
        assert client["delivery_mode"] == "ping" and client["notification_endpoint"] == endpoint
        client_id, client_secret = client["client_id"], client["client_secret"]
        project.start_web(timeout=deadline.left(30))
        node = NodeScript(
            node_tools["node"],
            node_project,
            "ciba-ping.mjs",
            {
                "CIBA_ISSUER": issuer,
                "CIBA_CLIENT_ID": client_id,
                "CIBA_CLIENT_SECRET": client_secret,
                "CIBA_LOGIN_HINT": USERNAME,
                "CIBA_BINDING_MESSAGE": BINDING_MESSAGE,
                "CIBA_SCOPE": SCOPE,
                "CIBA_TIMEOUT_SECONDS": str(int(deadline.left(40))),
                "CIBA_TLS_CERT": str(cert_file),
                "CIBA_TLS_KEY": str(key_file),
                "CIBA_RECEIVER_PORT": str(receiver_port),
            },
            deadline,
            lambda: f"server log:\n{project.log_tail()}",
        )
        listening = node.next_event(15)
        assert listening == {"event": "listening", "url": endpoint}

        initiated = node.next_event(20)
        assert initiated["event"] == "initiated"
        auth_req_id = initiated["auth_req_id"]
        assert isinstance(auth_req_id, str) and len(auth_req_id) >= 22
        assert initiated["expires_in"] > 0

        # Eager tasks: the ping goes out from this command, after the approval's commit.
        assert "approved" in project.manage("ciba_approve", auth_req_id)

        ping = node.next_event(20)
        assert ping["event"] == "ping"
        assert ping["method"] == "POST" and ping["path"] == "/cb"
        assert ping["authorization_ok"] is True  # PING-02
        assert ping["content_type"] == "application/json"  # PING-03
        assert ping["body"] == {"auth_req_id": auth_req_id}  # PING-03: nothing else

        tokens = node.next_event(20)
        assert tokens["event"] == "tokens"
        node.finish()
        # The OP's own record: approved for that user, spent by one token response, pinged once.
        record = project.shell_json(
            "import json; from django_ciba.models import AuthenticationRequest as R; "
            f"r = R.objects.by_auth_req_id({auth_req_id!r}).select_related('user').get(); "
            "print(json.dumps({'status': r.status, 'user': r.user.get_username(), "
            "'binding_message': r.binding_message, 'pings': ["
            "(d.status, d.attempts, d.last_status_code) for d in r.deliveries.filter(kind='ping')]}))"
        )
    finally:
        if node is not None:
            node.stop()
        project.stop()

    assert_tokens_event(tokens, user_pk=user_pk, client_id=client_id, issuer=issuer, auth_req_id=auth_req_id)

    assert record == {
        "status": "consumed",
        "user": USERNAME,
        "binding_message": BINDING_MESSAGE,
        "pings": [["delivered", 1, 204]],
    }
