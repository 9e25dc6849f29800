"""Agent requests with real parts (runserver, a Celery worker on Redis, PostgreSQL, an HTTPS callback
receiver): a client cancels its request, and a long wait gets a reminder sent by the worker.
"""

from __future__ import annotations

import json
import secrets
import time

import pytest
import requests

from django_ciba.core.constants import CIBA_GRANT_TYPE


pytestmark = pytest.mark.integration

SCOPE = "openid profile"
SESSION = requests.Session()
SESSION.trust_env = False  # no proxies for loopback


@pytest.fixture
def op(served_project):
    project = served_project
    # Reminders a second after the request, at most one (the schedule's own task runs every
    # minute: the test runs ciba_cleanup instead).
    project.env["CIBA_EXAMPLE_SETTINGS"] = json.dumps({"REMINDERS": {"AFTER": 1, "EVERY": 1, "MAX": 1}})
    project.env["CIBA_EXAMPLE_SWEEP_SECONDS"] = "1"
    project.migrate()
    project.create_user("ada", "ada@example.com", "pw")
    project.start_web()
    project.start_worker()
    return project


def post(project, path: str, client: dict, **data: str) -> requests.Response:
    return SESSION.post(
        f"{project.issuer}/{path}", data=data, auth=(client["client_id"], client["client_secret"]), timeout=15
    )


def device_deliveries(project) -> list[dict]:
    return project.shell_json(
        "import json; from django_ciba.models import Delivery; "
        "print(json.dumps(list(Delivery.objects.filter(kind='device').order_by('pk')"
        ".values('status', 'reminder'))))"
    )


def wait_for_devices(project, expected: list[dict], timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while (rows := device_deliveries(project)) != expected:
        if time.monotonic() > end:
            pytest.fail(f"device deliveries {rows}, expected {expected}\n{project.log_tail()}", pytrace=False)
        time.sleep(0.5)


def test_a_ping_client_cancels_its_request(op, callback_receiver):
    client = op.create_client(
        *("--name", "agent", "--mode", "ping", "--scope", SCOPE),
        *("--notification-endpoint", callback_receiver.url("/cb")),
    )
    ack = post(
        op,
        "bc-authorize",
        client,
        scope=SCOPE,
        login_hint="ada",
        client_notification_token=secrets.token_urlsafe(32),
    ).json()
    wait_for_devices(op, [{"status": "delivered", "reminder": 0}])
    metadata = SESSION.get(f"{op.issuer}/.well-known/openid-configuration", timeout=15).json()
    assert metadata["backchannel_authentication_cancel_endpoint"] == f"{op.issuer}/bc-authorize/cancel"

    answer = post(op, "bc-authorize/cancel", client, auth_req_id=ack["auth_req_id"])
    assert (answer.status_code, answer.json()) == (200, {"status": "cancelled"})
    again = post(op, "bc-authorize/cancel", client, auth_req_id=ack["auth_req_id"])
    assert again.status_code == 200

    polled = post(op, "token/", client, grant_type=CIBA_GRANT_TYPE, auth_req_id=ack["auth_req_id"])
    assert polled.status_code == 400
    assert polled.json() == {
        "error": "invalid_grant",
        "error_description": "The client cancelled the request.",
    }
    # The user can no longer approve it, and the client is never pinged.
    assert "approved" not in op.manage("ciba_approve", ack["auth_req_id"], check=False)
    callback_receiver.assert_no_more(0, path="/cb", wait=3)
    # Another client cannot tell it from an unknown one.
    stranger = op.create_client("--name", "stranger", "--scope", SCOPE)
    theirs = post(op, "bc-authorize/cancel", stranger, auth_req_id=ack["auth_req_id"])
    unknown = post(op, "bc-authorize/cancel", stranger, auth_req_id="x" * 40)
    assert theirs.status_code == unknown.status_code == 400 and theirs.json() == unknown.json()


def test_a_long_wait_gets_one_reminder_from_the_worker(op):
    client = op.create_client("--name", "agent", "--scope", SCOPE)
    response = post(op, "bc-authorize", client, scope=SCOPE, login_hint="ada", requested_expiry="600")
    assert response.status_code == 200, response.text
    wait_for_devices(op, [{"status": "delivered", "reminder": 0}])
    time.sleep(1.5)
    assert "reminded=1" in op.manage("ciba_cleanup")
    wait_for_devices(op, [{"status": "delivered", "reminder": 0}, {"status": "delivered", "reminder": 1}])
    time.sleep(1.5)
    assert "reminded=0" in op.manage("ciba_cleanup")  # MAX is 1
