"""How the soak classifies callbacks and token answers (benchmarks/soak_traffic.py), without a server."""

import json
import time
from types import SimpleNamespace

import jwt
import pytest

from benchmarks.soak_traffic import Flow, Traffic


CLAIM = "urn:openid:params:jwt:claim:auth_req_id"


@pytest.fixture
def traffic():
    return Traffic(
        "http://127.0.0.1:1",
        {},
        ["bench-user-00001"],
        receiver=None,
        threads=1,
        rate=1,
        seconds=1,
        grace=1,
        seed=1,
        log=lambda message: None,
    )


def add_flow(traffic, auth_req_id, mode, plan, *, committed=True):
    now = time.monotonic()
    flow = Flow(auth_req_id, mode, plan, token=f"token-{auth_req_id}", started=now, expires=now + 300)
    flow.committed = now if committed else None
    traffic.flows[auth_req_id] = flow
    return flow


def callback(path, body, token, arrived=None):
    return SimpleNamespace(
        path=path,
        json=lambda: body,
        headers={"Authorization": f"Bearer {token}"},
        monotonic=arrived or time.monotonic(),
    )


def id_token(auth_req_id):
    return jwt.encode({CLAIM: auth_req_id}, "k" * 32, algorithm="HS256")


def response(status, body):
    return SimpleNamespace(status_code=status, json=lambda: body, text=json.dumps(body))


def test_a_push_with_tokens_is_expected_once_and_a_duplicate_is_not(traffic):
    flow = add_flow(traffic, "a", "push", "approve")
    body = {"auth_req_id": "a", "access_token": "x", "id_token": id_token("a")}
    traffic.callback(callback("/push", body, flow.token))
    assert traffic.stats.unexpected_total == 0
    assert flow.done and flow.tokens == 1
    traffic.callback(callback("/push", body, flow.token))
    assert traffic.stats.unexpected["push received"] == 1
    assert "duplicate" in traffic.stats.samples[0]


def test_callbacks_for_unknown_requests_wrong_tokens_or_wrong_plans_are_unexpected(traffic):
    traffic.callback(callback("/ping", {"auth_req_id": "nobody"}, "t"))
    flow = add_flow(traffic, "b", "ping", "approve")
    traffic.callback(callback("/ping", {"auth_req_id": "b"}, "not-the-token"))
    expiring = add_flow(traffic, "c", "ping", "expire", committed=False)
    traffic.callback(callback("/ping", {"auth_req_id": "c"}, expiring.token))
    denied = add_flow(traffic, "d", "push", "deny")
    traffic.callback(callback("/push", {"auth_req_id": "d", "error": "expired_token"}, denied.token))
    assert traffic.stats.unexpected_total == 4
    assert flow.callbacks == 1


def test_the_push_error_of_the_plan_is_expected(traffic):
    denied = add_flow(traffic, "e", "push", "deny")
    traffic.callback(callback("/push", {"auth_req_id": "e", "error": "access_denied"}, denied.token))
    expired = add_flow(traffic, "f", "push", "expire", committed=False)
    traffic.callback(callback("/push", {"auth_req_id": "f", "error": "expired_token"}, expired.token))
    assert traffic.stats.unexpected_total == 0
    assert denied.outcome == "push access_denied" and expired.outcome == "push expired_token"


def test_token_answers_are_checked_against_the_plan(traffic):
    approved = add_flow(traffic, "g", "poll", "approve")
    traffic.outcome(
        approved, response(200, {"access_token": "x", "id_token": id_token("g")}), 0.01, 0, "poll"
    )
    assert traffic.stats.unexpected_total == 0 and approved.tokens == 1
    # tokens for a denied flow, an ID token of another request, an early expired_token, a 500
    denied = add_flow(traffic, "h", "poll", "deny")
    traffic.outcome(denied, response(200, {"access_token": "x", "id_token": id_token("h")}), 0.01, 0, "poll")
    other = add_flow(traffic, "i", "ping", "approve")
    traffic.outcome(other, response(200, {"access_token": "x", "id_token": id_token("zz")}), 0.01, 0, "ping")
    early = add_flow(traffic, "j", "poll", "expire", committed=False)
    traffic.outcome(early, response(400, {"error": "expired_token"}), 0.01, time.monotonic(), "poll")
    broken = add_flow(traffic, "k", "poll", "deny")
    traffic.outcome(broken, response(500, {}), 0.01, time.monotonic(), "poll")
    assert traffic.stats.unexpected_total == 4
    # the expected refusals
    refused = add_flow(traffic, "l", "ping", "deny")
    traffic.outcome(refused, response(400, {"error": "access_denied"}), 0.01, time.monotonic(), "ping")
    assert traffic.stats.unexpected_total == 4
