"""Races against a real PostgreSQL: one auth_req_id, many polls; one request, many decisions.

Every thread has its own database connection (Django's are per thread), all of them start at
once behind a barrier, and each closes its connection when it ends. ``transactional_db`` lets the
threads see the rows the test committed.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.test import Client
from oauth2_provider.models import get_access_token_model, get_refresh_token_model

from django_ciba.approval import decisions
from django_ciba.exceptions import DecisionError
from django_ciba.models import AuthenticationRequest
from django_ciba.testing import bc_authorize, create_ciba_client, poll


pytestmark = pytest.mark.integration

THREADS = 20
MANY = 50  # the heavier races
TIMEOUT = 30


def run_at_once(count: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` in ``count`` threads released together; return results (or exceptions)."""
    barrier = threading.Barrier(count, timeout=TIMEOUT)
    results: list[Any] = [None] * count

    def target(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except BaseException as exc:  # reported by the caller
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(i,), name=f"race-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT)
    alive = [thread.name for thread in threads if thread.is_alive()]
    assert not alive, f"threads still running after {TIMEOUT}s: {alive}"
    return results


@pytest.fixture
def alice(transactional_db):
    return get_user_model().objects.create_user("alice", "alice@example.com", "pw")


@pytest.fixture
def ciba_client(transactional_db):
    return create_ciba_client("Race terminal")


def start_request(
    ciba_client, scope: str = "openid profile offline_access"
) -> tuple[str, AuthenticationRequest]:
    application, secret = ciba_client
    response = bc_authorize(
        Client(), application, secret, scope=scope, login_hint="alice", binding_message="R1"
    )
    assert response.status_code == 200, response.content
    auth_req_id = response.json()["auth_req_id"]
    return auth_req_id, AuthenticationRequest.objects.by_auth_req_id(auth_req_id).get()


def test_database_is_postgresql(transactional_db):
    connection = connections["default"]
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        assert cursor.fetchone()[0].startswith("PostgreSQL")


@pytest.mark.parametrize("threads", [THREADS, MANY])
def test_concurrent_polls_of_an_approved_request_issue_tokens_once(alice, ciba_client, threads):
    """TOK-12: N simultaneous polls of one approved auth_req_id -> one 200, N-1 invalid_grant."""
    application, secret = ciba_client
    auth_req_id, auth_request = start_request(ciba_client)
    decisions.approve(auth_request, user=alice)

    def one_poll(_index: int) -> tuple[int, dict]:
        response = poll(Client(), application, secret, auth_req_id)
        return response.status_code, response.json()

    results = run_at_once(threads, one_poll)

    errors = [result for result in results if isinstance(result, BaseException)]
    assert not errors, errors
    statuses = Counter(status for status, _ in results)
    assert statuses == {200: 1, 400: threads - 1}, results
    [winner] = [body for status, body in results if status == 200]
    assert winner["token_type"] == "Bearer"
    assert winner["access_token"] and winner["id_token"] and winner["refresh_token"]
    losers = [body for status, body in results if status == 400]
    assert all(body["error"] == "invalid_grant" for body in losers), losers

    auth_request.refresh_from_db()
    assert auth_request.status == AuthenticationRequest.Status.CONSUMED
    assert auth_request.tokens_issued_at is not None
    tokens = get_access_token_model().objects.filter(application=application)
    assert tokens.count() == 1
    assert tokens.get().token == winner["access_token"] and tokens.get().user_id == alice.pk
    assert get_refresh_token_model().objects.filter(application=application).count() == 1

    # Spent for good: a later poll is refused too.
    late = poll(Client(), application, secret, auth_req_id)
    assert late.status_code == 400
    assert late.json()["error"] == "invalid_grant"


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_approve_and_deny_yield_exactly_one_outcome(alice, ciba_client, round_):
    """AD-03: approvals and denials racing on one pending request -> exactly one is recorded."""
    _, auth_request = start_request(ciba_client)
    # Each thread decides through its own instance, as separate requests or processes would.
    instances = [AuthenticationRequest.objects.get(pk=auth_request.pk) for _ in range(THREADS)]

    def decide(index: int) -> str:
        instance = instances[index]
        if index % 2 == 0:
            decisions.approve(instance, user=alice)
            return "approved"
        decisions.deny(instance, user=alice)
        return "denied"

    results = run_at_once(THREADS, decide)

    unexpected = [r for r in results if isinstance(r, BaseException) and not isinstance(r, DecisionError)]
    assert not unexpected, unexpected
    winners = [result for result in results if isinstance(result, str)]
    assert len(winners) == 1, results
    refused = [result for result in results if isinstance(result, DecisionError)]
    assert len(refused) == THREADS - 1
    assert {exc.code for exc in refused} == {"not_pending"}, refused

    auth_request.refresh_from_db()
    assert auth_request.status == winners[0]
    assert auth_request.decided_at is not None
    # No authentication context is passed, so even an approval records no auth_time.
    assert auth_request.auth_time is None
    assert bool(auth_request.granted_scope) == (winners[0] == "approved")


def test_concurrent_decisions_and_polls_never_issue_tokens_twice(alice, ciba_client):
    """Polls racing the approval itself: at most one token response, the rest pending or refused."""
    application, secret = ciba_client
    auth_req_id, auth_request = start_request(ciba_client)
    instance = AuthenticationRequest.objects.get(pk=auth_request.pk)

    def work(index: int) -> tuple[int, dict] | str:
        if index == 0:
            decisions.approve(instance, user=alice)
            return "approved"
        response = poll(Client(), application, secret, auth_req_id)
        return response.status_code, response.json()

    results = run_at_once(THREADS, work)

    errors = [result for result in results if isinstance(result, BaseException)]
    assert not errors, errors
    assert results[0] == "approved"
    polls = results[1:]
    successes = [body for status, body in polls if status == 200]
    assert len(successes) <= 1, polls
    allowed = {"authorization_pending", "slow_down", "invalid_grant"}
    assert all(body["error"] in allowed for status, body in polls if status != 200), polls
    assert get_access_token_model().objects.filter(application=application).count() == len(successes)


# --- heavier races (approve/deny/expire with a ping callback; RFC 7592 PUTs)

PING_ENDPOINT = "https://127.0.0.1/ciba/ping"  # loopback: the real outbound refuses it at once


@pytest.fixture
def ping_client(transactional_db):
    return create_ciba_client("Race ping terminal", mode="ping", notification_endpoint=PING_ENDPOINT)


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_approve_deny_expire_yield_one_outcome_and_at_most_one_ping(alice, ping_client, round_):
    """AD-03 / PING-01: approve, deny and expire racing on one ping-mode request -> exactly one
    decision, one audit event per transition and at most one ping delivery.

    The operator's expire is allowed on an approved request whose tokens were not issued yet
    (test_decisions.test_operator_expire_approved_request), so "approved, then expired" is the one
    legitimate pair of transitions; approve and deny never both succeed, and nothing follows a
    denial or an expiry.
    """
    from django_ciba.models import Delivery, RequestEvent

    application, secret = ping_client
    response = bc_authorize(
        Client(),
        application,
        secret,
        scope="openid profile",
        login_hint="alice",
        binding_message="R2",
        client_notification_token="race-notification-token-0123456789",
    )
    assert response.status_code == 200, response.content
    auth_request = AuthenticationRequest.objects.by_auth_req_id(response.json()["auth_req_id"]).get()
    instances = [AuthenticationRequest.objects.get(pk=auth_request.pk) for _ in range(MANY)]

    def decide(index: int) -> str:
        instance = instances[index]
        if index % 3 == 0:
            decisions.approve(instance, user=alice)
            return "approved"
        if index % 3 == 1:
            decisions.deny(instance, user=alice)
            return "denied"
        decisions.expire(instance, actor="operator:race")
        return "expired"

    results = run_at_once(MANY, decide)

    unexpected = [r for r in results if isinstance(r, BaseException) and not isinstance(r, DecisionError)]
    assert not unexpected, unexpected
    winners = Counter(result for result in results if isinstance(result, str))
    assert sum(winners.values()) == len(results) - sum(isinstance(r, DecisionError) for r in results)
    assert winners in ({"approved": 1}, {"denied": 1}, {"expired": 1}, {"approved": 1, "expired": 1}), results
    events = list(
        RequestEvent.objects.filter(
            auth_request=auth_request, event__in=["approved", "denied", "expired"]
        ).order_by("pk")
    )
    sequence = [event.event for event in events]
    assert sequence in (["approved"], ["denied"], ["expired"], ["approved", "expired"]), sequence
    assert Counter(sequence) == winners
    auth_request.refresh_from_db()
    assert auth_request.status == sequence[-1]
    # One ping per decision (approved or denied), none for the expiry (PING-08), never two.
    pings = Delivery.objects.filter(auth_request=auth_request, kind=Delivery.Kind.PING).count()
    assert pings == (0 if sequence == ["expired"] else 1)
    # Besides the device notification sent at creation, no other callback kind (push) appears.
    kinds = set(Delivery.objects.filter(auth_request=auth_request).values_list("kind", flat=True))
    assert kinds <= {Delivery.Kind.PING, Delivery.Kind.DEVICE}, kinds


def test_concurrent_registration_updates_leave_one_consistent_client(transactional_db, settings):
    """REG (RFC 7592 §2.2): concurrent PUTs on one client -> the stored metadata is exactly one of the
    submitted bodies (application and CIBA rows never mixed), and both rows are intact."""
    import json

    from oauth2_provider.models import get_application_model

    from django_ciba.core.constants import CIBA_GRANT_TYPE
    from django_ciba.models import CibaClient

    # User codes supported, so that backchannel_user_code_parameter is stored as sent (an OP
    # without them grants false whatever the body says, RFC 7591 3.2.1).
    settings.CIBA = {
        **settings.CIBA,
        "REGISTRATION_OPEN": True,
        "USER_CODE_SUPPORTED": True,
        "USER_CODE_VERIFIER": "hmac.compare_digest",
    }
    base = {
        "backchannel_token_delivery_mode": "poll",
        "grant_types": [CIBA_GRANT_TYPE],
        "response_types": [],
        "client_name": "Racer",
    }
    created = Client().post("/o/register", json.dumps(base), content_type="application/json")
    assert created.status_code == 201, created.content
    registered = created.json()
    client_id, token = registered["client_id"], registered["registration_access_token"]
    path = "/o/register/" + client_id

    def body(index: int) -> dict:
        # client_name lands on the Application row, the other two on the CibaClient row; all vary
        # with the index, so a mix of two bodies (or of two rows' writes) is visible.
        return {
            **base,
            "client_id": client_id,
            "client_name": f"Racer {index}",
            "backchannel_user_code_parameter": bool(index % 2),
            "contacts": [f"ops-{index}@example.org"],
        }

    def put(index: int) -> tuple[int, dict]:
        response = Client().put(
            path,
            json.dumps(body(index)),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        return response.status_code, response.json()

    results = run_at_once(THREADS, put)

    errors = [result for result in results if isinstance(result, BaseException)]
    assert not errors, errors
    assert all(status == 200 for status, _ in results), results

    Application = get_application_model()
    assert Application.objects.filter(client_id=client_id).count() == 1
    assert CibaClient.objects.filter(application__client_id=client_id).count() == 1
    final = Client().get(path, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert final.status_code == 200, final.content
    stored = final.json()
    index = int(stored["client_name"].removeprefix("Racer "))
    expected = body(index)
    assert stored["backchannel_user_code_parameter"] == expected["backchannel_user_code_parameter"], stored
    assert stored["contacts"] == expected["contacts"], stored
    assert stored["backchannel_token_delivery_mode"] == "poll"
    assert stored["client_id"] == client_id
    row = CibaClient.objects.select_related("application").get(application__client_id=client_id)
    assert row.application.name == stored["client_name"]
    assert row.user_code_parameter is expected["backchannel_user_code_parameter"]
    # The registration access token still (and only) opens it.
    assert Client().get(path, HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
