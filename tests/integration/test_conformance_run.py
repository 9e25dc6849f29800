"""A conformance-style run against the example project with its default settings (SEC-07, VAL-08).

One user, four poll clients, 60 flows: most approved, some denied, and a dozen left unanswered on
purpose (expiry and slow_down tests), each with a short ``requested_expiry``. A conformance suite
does exactly this, and the former default limits (20 requests per user in five minutes, five
waiting requests per user) refused it with ``access_denied``. Here no request may be refused by
a limit: every approved flow gets its tokens, every denied one ``access_denied`` at the token
endpoint, every unanswered one ``expired_token``.

Real parts only: the example project served by runserver on PostgreSQL, a Celery worker with beat
on Redis, requests over HTTP, decisions with ``manage.py ciba_approve`` / ``ciba_deny`` from other
processes.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from django_ciba.core.constants import CIBA_GRANT_TYPE


pytestmark = pytest.mark.integration

USER = "ada"
SCOPE = "openid profile"
CLIENTS = 4
# One client's 15 flows, in order: A approved, D denied, X left to expire, S polled too fast
# (slow_down) and then left to expire. 4 clients: 40 approved, 8 denied, 12 unanswered.
PLAN = "AXADASAAXADAAAA"
UNANSWERED_EXPIRY = 20  # requested_expiry of the flows left unanswered (seconds)
SESSION_LOCAL = threading.local()


def session() -> requests.Session:
    if not hasattr(SESSION_LOCAL, "session"):
        SESSION_LOCAL.session = requests.Session()
        SESSION_LOCAL.session.trust_env = False  # no proxies for loopback
    return SESSION_LOCAL.session


@pytest.fixture
def op(served_project):
    """The example project with its DEFAULT CIBA settings: migrated, web server and worker (with
    beat) running, user ``ada``."""
    project = served_project
    project.env.pop("CIBA_EXAMPLE_SETTINGS", None)
    project.migrate()
    project.create_user(USER, f"{USER}@example.com", "pw")
    project.start_web()
    project.start_worker()
    return project


def bc_authorize(project, client: dict, **params: str) -> requests.Response:
    return session().post(
        f"{project.issuer}/bc-authorize",
        data={"scope": SCOPE, "login_hint": USER, "binding_message": "Conformance", **params},
        auth=(client["client_id"], client["client_secret"]),
        timeout=30,
    )


def poll(project, client: dict, auth_req_id: str) -> requests.Response:
    return session().post(
        f"{project.issuer}/token/",
        data={"grant_type": CIBA_GRANT_TYPE, "auth_req_id": auth_req_id},
        auth=(client["client_id"], client["client_secret"]),
        timeout=30,
    )


def error(response: requests.Response) -> str:
    return response.json().get("error", "") if response.status_code != 200 else ""


def run_client(project, client: dict, refusals: list, outcomes: list) -> list[tuple[str, str]]:
    """Play one client's plan; returns the (kind, auth_req_id) of the flows left unanswered."""
    unanswered = []
    # A negative test first: an unknown user is an ordinary error, not a limit.
    assert error(bc_authorize(project, client, login_hint="nobody-here")) == "unknown_user_id"
    for kind in PLAN:
        params = {"requested_expiry": str(UNANSWERED_EXPIRY)} if kind in "XS" else {}
        response = bc_authorize(project, client, **params)
        if response.status_code != 200:
            refusals.append((kind, response.status_code, response.text))
            continue
        auth_req_id = response.json()["auth_req_id"]
        if kind in "XS":
            assert error(poll(project, client, auth_req_id)) == "authorization_pending"  # TOK-13
            if kind == "S":
                assert error(poll(project, client, auth_req_id)) == "slow_down"  # TOK-14
            unanswered.append((kind, auth_req_id))
            continue
        verb = "approved" if kind == "A" else "denied"
        command = "ciba_approve" if kind == "A" else "ciba_deny"
        assert verb in project.manage(command, auth_req_id)
        answer = poll(project, client, auth_req_id)
        outcomes.append((kind, answer.status_code, answer.json()))
    return unanswered


def test_a_conformance_style_run_with_the_default_settings_is_never_refused(op):
    # SEC-07 / VAL-08: no request of the run is refused by an abuse control; every approved flow
    # gets its tokens (TOK-01), denied ones access_denied (TOK-15), unanswered ones expired_token
    # (TOK-16).
    started = time.monotonic()
    clients = [op.create_client("--name", f"conformance-{n}", "--scope", SCOPE) for n in range(CLIENTS)]
    refusals: list = []
    outcomes: list = []
    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        futures = [pool.submit(run_client, op, client, refusals, outcomes) for client in clients]
        unanswered = [
            (client, flow)
            for client, future in zip(clients, futures, strict=True)
            for flow in future.result()
        ]

    assert refusals == [], refusals
    approved = [body for kind, status, body in outcomes if kind == "A" and status == 200]
    assert len(approved) == CLIENTS * PLAN.count("A") == 40
    assert all(body.get("access_token") and body.get("id_token") for body in approved)
    denied = [body for kind, status, body in outcomes if kind == "D"]
    assert denied == [denied[0]] * len(denied) and denied[0]["error"] == "access_denied"
    assert len(denied) == CLIENTS * PLAN.count("D") == 8
    assert len(unanswered) == CLIENTS * (PLAN.count("X") + PLAN.count("S")) == 12

    time.sleep(UNANSWERED_EXPIRY + 1)
    for client, (_, auth_req_id) in unanswered:
        assert error(poll(op, client, auth_req_id)) == "expired_token"
    # The user's client for the next session is not refused either.
    assert bc_authorize(op, clients[0]).status_code == 200
    assert time.monotonic() - started < 300
