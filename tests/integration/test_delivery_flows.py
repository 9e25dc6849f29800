"""Ping and push end to end with real parts: example_project served by runserver, a Celery worker
(with beat) on a real Redis broker, PostgreSQL, and an HTTPS callback receiver on loopback whose
self-signed certificate the OP trusts through ``REQUESTS_CA_BUNDLE``.

Requests are started over HTTP like any client would, and approved with ``manage.py ciba_approve``
from another process; callbacks are sent by the worker.
"""

from __future__ import annotations

import json
import secrets
import time

import jwt
import pytest
import requests

from django_ciba.core.constants import AUTH_REQ_ID_CLAIM, CIBA_GRANT_TYPE, RT_HASH_CLAIM
from django_ciba.validators import token_hash
from tests.integration.receiver import Reply


pytestmark = pytest.mark.integration

SCOPE = "openid profile offline_access"
# Fast retries and sweeps so the failure scenarios finish in seconds. The lease must exceed the
# outbound timeouts together (check E022).
FAST = {
    "RETRY_BASE_DELAY": 0.5,
    "RETRY_MAX_DELAY": 2,
    "OUTBOUND_CONNECT_TIMEOUT": 2,
    "OUTBOUND_READ_TIMEOUT": 3,
    "DELIVERY_LEASE": 6,
}
SESSION = requests.Session()
SESSION.trust_env = False  # no proxies for loopback


@pytest.fixture
def op(served_project):
    """The served OP: migrated, web server and worker (with beat) running, user ``ada``."""
    project = served_project
    project.env["CIBA_EXAMPLE_SETTINGS"] = json.dumps(FAST)
    project.env["CIBA_EXAMPLE_SWEEP_SECONDS"] = "1"
    project.migrate()
    project.create_user("ada", "ada@example.com", "pw")
    project.start_web()
    project.start_worker()
    return project


def register(project, receiver, mode: str, path: str = "/cb") -> dict:
    return project.create_client(
        *("--name", f"{mode}-rp", "--mode", mode, "--scope", SCOPE),
        *("--notification-endpoint", receiver.url(path)),
    )


def bc_authorize(project, client: dict, token: str) -> dict:
    response = SESSION.post(
        f"{project.issuer}/bc-authorize",
        data={
            "scope": SCOPE,
            "login_hint": "ada",
            "binding_message": "Integration 42",
            "client_notification_token": token,
        },
        auth=(client["client_id"], client["client_secret"]),
        timeout=15,
    )
    assert response.status_code == 200, response.text
    return response.json()


def poll(project, client: dict, auth_req_id: str) -> requests.Response:
    return SESSION.post(
        f"{project.issuer}/token/",
        data={"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id},
        auth=(client["client_id"], client["client_secret"]),
        timeout=15,
    )


def approve(project, auth_req_id: str) -> None:
    assert "approved" in project.manage("ciba_approve", auth_req_id)


def deliveries(project) -> list[dict]:
    """The outbox rows of client callbacks (not device notifications), oldest first."""
    return project.shell_json(
        "import json; from django_ciba.models import Delivery; "
        "print(json.dumps(list(Delivery.objects.exclude(kind='device').order_by('pk')"
        ".values('kind', 'status', 'attempts', 'last_status_code', 'error'))))"
    )


def wait_for_status(project, status: str, timeout: float = 30) -> dict:
    end = time.monotonic() + timeout
    while True:
        rows = deliveries(project)
        if rows and rows[-1]["status"] == status:
            return rows[-1]
        if time.monotonic() > end:
            pytest.fail(f"no delivery reached {status!r}: {rows}\n{project.log_tail()}", pytrace=False)
        time.sleep(0.5)


def wait_for_device_notification(project, timeout: float = 30) -> None:
    code = (
        "from django_ciba.models import Delivery; "
        "print(Delivery.objects.filter(kind='device', status='delivered').exists())"
    )
    end = time.monotonic() + timeout
    while project.shell(code) != "True":
        if time.monotonic() > end:
            pytest.fail(f"the device was not notified:\n{project.log_tail()}", pytrace=False)
        time.sleep(0.3)


def assert_ping(request, auth_req_id: str, token: str) -> None:
    assert request.method == "POST"
    assert request.headers["Content-Type"] == "application/json"  # PING-03
    assert request.headers["Authorization"] == f"Bearer {token}"  # PING-02
    assert request.json() == {"auth_req_id": auth_req_id}  # PING-03: nothing else


# --------------------------------------------------------------------------------------------
# Ping


def test_ping_flow_end_to_end(op, callback_receiver):
    client = register(op, callback_receiver, "ping")
    token = secrets.token_urlsafe(32)
    ack = bc_authorize(op, client, token)
    assert poll(op, client, ack["auth_req_id"]).json()["error"] == "authorization_pending"  # TOK-13
    approve(op, ack["auth_req_id"])
    [ping] = callback_receiver.wait_for(1, path="/cb", timeout=30)
    assert_ping(ping, ack["auth_req_id"], token)
    response = poll(op, client, ack["auth_req_id"])
    assert response.status_code == 200, response.text
    assert {"access_token", "id_token", "refresh_token"} <= set(response.json())
    assert wait_for_status(op, "delivered")["last_status_code"] == 204


def test_500_three_times_then_204_delivers_exactly_once(op, callback_receiver):
    callback_receiver.script("/cb", [Reply(500), Reply(500), Reply(500), Reply(204)])
    client = register(op, callback_receiver, "ping")
    token = secrets.token_urlsafe(32)
    ack = bc_authorize(op, client, token)
    approve(op, ack["auth_req_id"])
    calls = callback_receiver.wait_for(4, path="/cb", timeout=40)
    for call in calls:
        assert_ping(call, ack["auth_req_id"], token)
    row = wait_for_status(op, "delivered")
    assert row["attempts"] == 4
    callback_receiver.assert_no_more(4, path="/cb", wait=3)  # sweeps ran meanwhile: no repeat
    assert [call.reply.status for call in callback_receiver.requests("/cb")] == [500, 500, 500, 204]


def test_401_is_called_once_and_tokens_still_issued(op, callback_receiver):
    # PING-07 (no retry after a 401), TOK-16 (tokens whatever the ping's outcome).
    callback_receiver.script("/cb", Reply(401))
    client = register(op, callback_receiver, "ping")
    ack = bc_authorize(op, client, secrets.token_urlsafe(32))
    approve(op, ack["auth_req_id"])
    callback_receiver.wait_for(1, path="/cb", timeout=30)
    row = wait_for_status(op, "failed")
    assert (row["attempts"], row["last_status_code"]) == (1, 401)
    callback_receiver.assert_no_more(1, path="/cb", wait=3)
    response = poll(op, client, ack["auth_req_id"])
    assert response.status_code == 200, response.text


def test_redirect_is_not_followed(op, callback_receiver):
    # PING-06
    callback_receiver.script("/cb", Reply(302, headers={"Location": callback_receiver.url("/elsewhere")}))
    client = register(op, callback_receiver, "ping")
    ack = bc_authorize(op, client, secrets.token_urlsafe(32))
    approve(op, ack["auth_req_id"])
    callback_receiver.wait_for(1, path="/cb", timeout=30)
    assert wait_for_status(op, "failed")["last_status_code"] == 302
    callback_receiver.assert_no_more(1, path="/cb", wait=3)
    assert callback_receiver.requests("/elsewhere") == []


def test_worker_killed_mid_delivery_still_delivers(op, callback_receiver):
    # The first ping is held open by the receiver; the worker is SIGKILLed while it waits.
    callback_receiver.script("/cb", [Reply(204, delay=60), Reply(204)])
    client = register(op, callback_receiver, "ping")
    token = secrets.token_urlsafe(32)
    ack = bc_authorize(op, client, token)
    approve(op, ack["auth_req_id"])
    callback_receiver.wait_for(1, path="/cb", timeout=30)
    op.kill_worker()
    assert deliveries(op)[-1]["status"] == "pending"
    op.start_worker()
    # The lease runs out, the sweep re-enqueues the row, the new worker delivers it.
    calls = callback_receiver.wait_for(2, path="/cb", timeout=45)
    assert_ping(calls[1], ack["auth_req_id"], token)
    row = wait_for_status(op, "delivered")
    assert row["attempts"] == 2


def test_broker_down_during_approval_still_delivers(op, callback_receiver, redis_server):
    client = register(op, callback_receiver, "ping")
    token = secrets.token_urlsafe(32)
    ack = bc_authorize(op, client, token)
    wait_for_device_notification(op)
    redis_server.stop()
    approve(op, ack["auth_req_id"])  # the decision commits although no task can be enqueued
    time.sleep(2)
    assert callback_receiver.requests("/cb") == []
    assert deliveries(op)[-1]["status"] == "pending"
    redis_server.start()
    # Celery 5.7 / kombu 5.7 workers can exit ("Unrecoverable error") when the broker vanishes while
    # a task is being acknowledged; production runs workers under a supervisor that restarts them,
    # and so does this test (docs/delivery.rst). Delivery must follow either way.
    if not op.worker_alive():
        op.start_worker()
    [ping] = callback_receiver.wait_for(1, path="/cb", timeout=45)
    assert_ping(ping, ack["auth_req_id"], token)
    wait_for_status(op, "delivered")


@pytest.mark.parametrize(
    ("first", "attempts"),
    [
        # Answers within OUTBOUND_READ_TIMEOUT (3 s): one call, delivered.
        (Reply(204, delay=1.5), 1),
        # Hangs past the read timeout: the attempt fails, the retry delivers. The receiver got the
        # first ping as well (at-least-once: clients deduplicate by auth_req_id, docs/delivery.rst).
        (Reply(204, delay=6), 2),
        # Closes the connection without answering: retried, delivered.
        (Reply(204, drop=True), 2),
    ],
    ids=["slow", "hangs", "drops"],
)
def test_slow_hanging_or_dropping_receiver(op, callback_receiver, first, attempts):
    callback_receiver.script("/cb", [first, Reply(204)])
    client = register(op, callback_receiver, "ping")
    token = secrets.token_urlsafe(32)
    ack = bc_authorize(op, client, token)
    approve(op, ack["auth_req_id"])
    calls = callback_receiver.wait_for(attempts, path="/cb", timeout=45)
    for call in calls:
        assert_ping(call, ack["auth_req_id"], token)  # every attempt carries the same ping
    row = wait_for_status(op, "delivered", timeout=45)
    assert row["attempts"] == attempts
    callback_receiver.assert_no_more(attempts, path="/cb", wait=3)  # delivered: no further call
    assert poll(op, client, ack["auth_req_id"]).status_code == 200  # the result was not lost


# --------------------------------------------------------------------------------------------
# Push


def test_push_flow_end_to_end(op, callback_receiver):
    client = register(op, callback_receiver, "push")
    token = secrets.token_urlsafe(32)
    ack = bc_authorize(op, client, token)
    assert "interval" not in ack
    approve(op, ack["auth_req_id"])
    [push] = callback_receiver.wait_for(1, path="/cb", timeout=30)
    assert push.headers["Authorization"] == f"Bearer {token}"  # PUSH-01
    assert push.headers["Content-Type"] == "application/json"
    body = push.json()
    assert body["auth_req_id"] == ack["auth_req_id"]  # PUSH-02
    assert body["token_type"] == "Bearer" and body["expires_in"] > 0
    assert {"access_token", "id_token", "refresh_token"} <= set(body)

    # The ID token verifies against the OP's JWKS (found through discovery).
    metadata = SESSION.get(f"{op.issuer}/.well-known/openid-configuration", timeout=10).json()
    jwks = jwt.PyJWKClient(metadata["jwks_uri"])
    key = jwks.get_signing_key_from_jwt(body["id_token"])
    claims = jwt.decode(
        body["id_token"], key.key, algorithms=["RS256"], audience=client["client_id"], issuer=op.issuer
    )
    assert claims[AUTH_REQ_ID_CLAIM] == ack["auth_req_id"]  # PUSH-03
    assert claims["at_hash"] == token_hash(body["access_token"])  # PUSH-04
    assert claims[RT_HASH_CLAIM] == token_hash(body["refresh_token"])  # PUSH-05

    # The pushed access token is live; the push client may not use the token endpoint (TOK-05).
    userinfo = SESSION.get(
        metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=10
    )
    assert userinfo.status_code == 200 and userinfo.json()["sub"] == claims["sub"]
    assert poll(op, client, ack["auth_req_id"]).json()["error"] == "unauthorized_client"
    wait_for_status(op, "delivered")


def test_push_denial_sends_access_denied(op, callback_receiver):
    client = register(op, callback_receiver, "push")
    ack = bc_authorize(op, client, secrets.token_urlsafe(32))
    assert "denied" in op.manage("ciba_deny", ack["auth_req_id"])
    [push] = callback_receiver.wait_for(1, path="/cb", timeout=30)
    body = push.json()
    assert body["error"] == "access_denied" and body["auth_req_id"] == ack["auth_req_id"]  # PERR-02


def test_failed_push_revokes_its_tokens(op, callback_receiver):
    callback_receiver.script("/cb", Reply(403))
    client = register(op, callback_receiver, "push")
    ack = bc_authorize(op, client, secrets.token_urlsafe(32))
    approve(op, ack["auth_req_id"])
    [push] = callback_receiver.wait_for(1, path="/cb", timeout=30)
    wait_for_status(op, "failed")
    access_token = push.json()["access_token"]
    metadata = SESSION.get(f"{op.issuer}/.well-known/openid-configuration", timeout=10).json()
    userinfo = SESSION.get(
        metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {access_token}"}, timeout=10
    )
    assert userinfo.status_code == 401
    status = op.shell(
        "from django_ciba.models import AuthenticationRequest; "
        "print(AuthenticationRequest.objects.get(delivery_mode='push').status)"
    )
    assert status == "failed"
