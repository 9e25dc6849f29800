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
import os
import queue
import subprocess
import threading

import pytest

from django_ciba.constants import AUTH_REQ_ID_CLAIM
from tests.integration import test_node_client as poll_check
from tests.integration.receiver import self_signed_certificate
from tests.integration.services import Deadline, ServedProject, free_port
from tests.integration.test_node_client import pump, stop


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
    node_stderr: list[str] = []
    events: list[dict] = []
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
        node = subprocess.Popen(
            [node_tools["node"], "ciba-ping.mjs"],
            cwd=node_project,
            env={
                **os.environ,
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
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=pump, args=(node.stdout, lines.put, lines.put), daemon=True).start()
        threading.Thread(target=pump, args=(node.stderr, node_stderr.append), daemon=True).start()

        def next_event(cap: float) -> dict:
            try:
                line = lines.get(timeout=deadline.left(cap))
            except queue.Empty:
                line = None
            details = (
                f"\nevents so far: {events}\nnode stderr:\n{''.join(node_stderr)}"
                f"\nserver log:\n{project.log_tail()}"
            )
            assert line is not None, f"the Node client printed nothing more{details}"
            event = json.loads(line)
            events.append(event)
            assert event.get("event") != "error", f"the Node client failed: {event}{details}"
            return event

        listening = next_event(15)
        assert listening == {"event": "listening", "url": endpoint}

        initiated = next_event(20)
        assert initiated["event"] == "initiated"
        auth_req_id = initiated["auth_req_id"]
        assert isinstance(auth_req_id, str) and len(auth_req_id) >= 22
        assert initiated["expires_in"] > 0

        # Eager tasks: the ping goes out from this command, after the approval's commit.
        assert "approved" in project.manage("ciba_approve", auth_req_id)

        ping = next_event(20)
        assert ping["event"] == "ping"
        assert ping["method"] == "POST" and ping["path"] == "/cb"
        assert ping["authorization_ok"] is True  # PING-02
        assert ping["content_type"] == "application/json"  # PING-03
        assert ping["body"] == {"auth_req_id": auth_req_id}  # PING-03: nothing else

        tokens = next_event(20)
        assert tokens["event"] == "tokens"
        node.wait(timeout=deadline.left(10))
        assert node.returncode == 0, f"{events}\n{''.join(node_stderr)}"
        # The OP's own record: approved for that user, spent by one token response, pinged once.
        record = project.shell_json(
            "import json; from django_ciba.models import AuthenticationRequest as R; "
            f"r = R.objects.by_auth_req_id({auth_req_id!r}).select_related('user').get(); "
            "print(json.dumps({'status': r.status, 'user': r.user.get_username(), "
            "'binding_message': r.binding_message, 'pings': ["
            "(d.status, d.attempts, d.last_status_code) for d in r.deliveries.filter(kind='ping')]}))"
        )
    finally:
        stop(node)
        project.stop()

    claims = tokens["claims"]
    assert claims["sub"] == user_pk
    assert claims["aud"] == client_id or claims["aud"] == [client_id]
    assert claims["iss"] == issuer
    assert claims[AUTH_REQ_ID_CLAIM] == auth_req_id
    assert isinstance(claims["auth_time"], int)
    assert claims["iat"] - 60 <= claims["auth_time"] <= claims["iat"] + 60
    assert tokens["issuer"] == issuer
    assert tokens["token_type"].lower() == "bearer"
    assert tokens["has_access_token"] and tokens["has_refresh_token"]
    assert set(tokens["scope"].split()) == set(SCOPE.split())

    assert record == {
        "status": "consumed",
        "user": USERNAME,
        "binding_message": BINDING_MESSAGE,
        "pings": [["delivered", 1, 204]],
    }
