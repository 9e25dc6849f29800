"""Acceptance: a pre-authorized ping client gets its ping only after it has
received the bc-authorize response, and tokens on its first poll.

Real parts: example_project served by runserver, a Celery worker on the Redis broker of
``scripts/with-redis``, PostgreSQL, and the HTTPS callback receiver on loopback (trusted by the OP
through ``REQUESTS_CA_BUNDLE``). The pre-authorization is created by an operator (here
``manage.py shell``); nobody approves anything after the request is sent.

Run: ``scripts/with-postgres scripts/with-redis .venv/bin/pytest tests/integration/test_policy_ping.py``.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime

import jwt
import pytest
import requests

from django_ciba.core.constants import AUTH_REQ_ID_CLAIM, CIBA_GRANT_TYPE


pytestmark = pytest.mark.integration

SCOPE = "openid profile"
SESSION = requests.Session()
SESSION.trust_env = False  # no proxies for loopback


@pytest.fixture
def op(served_project):
    """The served OP: migrated, web server and worker running, user ``ada``."""
    project = served_project
    project.migrate()
    project.create_user("ada", "ada@example.com", "pw")
    project.start_web()
    project.start_worker()
    return project


def register_ping_client(project, receiver) -> dict:
    return project.create_client(
        *("--name", "pre-authorized ping RP", "--mode", "ping", "--scope", SCOPE),
        *("--notification-endpoint", receiver.url("/cb")),
    )


def pre_authorize(project, client_id: str, scope: str) -> int:
    """What an operator does in the admin: pre-authorize the client for every user."""
    return int(
        project.shell(
            "from oauth2_provider.models import get_application_model; "
            "from django_ciba.models import PreAuthorization; "
            f"app = get_application_model().objects.get(client_id={client_id!r}); "
            f"print(PreAuthorization.objects.create(client=app, user=None, scope={scope!r}, "
            "note='integration test').pk)"
        )
    )


def request_state(project) -> dict:
    """The request's status and acknowledgement, its deliveries and audit events."""
    return project.shell_json(
        "import json; from django_ciba.models import AuthenticationRequest; "
        "r = AuthenticationRequest.objects.get(); "
        "print(json.dumps({'status': r.status, "
        "'acknowledged_at': r.acknowledged_at and r.acknowledged_at.isoformat(), "
        "'deliveries': [dict(kind=d.kind, status=d.status, attempts=d.attempts, "
        "finished_at=d.finished_at and d.finished_at.isoformat()) for d in r.deliveries.order_by('pk')], "
        "'events': list(r.events.values_list('event', 'actor'))}))"
    )


def wait_for_delivered(project, timeout: float = 30) -> dict:
    end = time.monotonic() + timeout
    while True:
        state = request_state(project)
        if state["deliveries"] and state["deliveries"][-1]["status"] == "delivered":
            return state
        if time.monotonic() > end:
            pytest.fail(
                f"the ping was not recorded as delivered: {state}\n{project.log_tail()}", pytrace=False
            )
        time.sleep(0.3)


def test_pre_authorized_ping_client_is_pinged_after_the_answer_and_gets_tokens_on_first_poll(
    op, callback_receiver
):
    client = register_ping_client(op, callback_receiver)
    grant = pre_authorize(op, client["client_id"], SCOPE)
    token = secrets.token_urlsafe(32)

    response = SESSION.post(
        f"{op.issuer}/bc-authorize",
        data={"scope": SCOPE, "login_hint": "ada", "client_notification_token": token},
        auth=(client["client_id"], client["client_secret"]),
        timeout=15,
    )
    body = response.content  # requests has read the whole answer when post() returns
    answered_at = time.time()
    assert response.status_code == 200, body
    ack = response.json()
    assert set(ack) == {"auth_req_id", "expires_in", "interval"}  # the standard answer

    # PING-01..03: one ping, exactly {auth_req_id}, and not before the answer was received.
    [ping] = callback_receiver.wait_for(1, path="/cb", timeout=30)
    assert ping.time >= answered_at, (ping.time, answered_at)
    assert ping.method == "POST"
    assert ping.headers["Content-Type"] == "application/json"
    assert ping.headers["Authorization"] == f"Bearer {token}"
    assert ping.json() == {"auth_req_id": ack["auth_req_id"]}

    # The OP released the ping only once the answer was written out (acknowledged_at).
    state = wait_for_delivered(op)
    [delivery] = state["deliveries"]  # no device notification for an immediate decision
    assert delivery["kind"] == "ping" and delivery["attempts"] == 1
    acknowledged_at = datetime.fromisoformat(state["acknowledged_at"])
    assert acknowledged_at <= datetime.fromisoformat(delivery["finished_at"])
    assert acknowledged_at.timestamp() <= ping.time
    assert state["events"][:2] == [
        ["created", f"client:{client['client_id']}"],
        ["approved", f"policy:pre-authorization#{grant}"],
    ]

    # TOK-11, TOK-13: the first poll returns the tokens.
    tokens = SESSION.post(
        f"{op.issuer}/token/",
        data={"grant_type": CIBA_GRANT_TYPE, "auth_req_id": ack["auth_req_id"]},
        auth=(client["client_id"], client["client_secret"]),
        timeout=15,
    )
    assert tokens.status_code == 200, tokens.text
    payload = tokens.json()
    assert {"access_token", "token_type", "expires_in", "id_token"} <= set(payload)
    claims = jwt.decode(payload["id_token"], options={"verify_signature": False})
    assert claims[AUTH_REQ_ID_CLAIM] == ack["auth_req_id"]
    assert claims["aud"] == client["client_id"]
    callback_receiver.assert_no_more(1, path="/cb", wait=1)
