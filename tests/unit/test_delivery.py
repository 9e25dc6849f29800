"""Device notifications and ping callbacks through the outbox (AD-01, PING-01..09, TOK-13, TOK-16).

Outbound HTTP is stubbed here (unit tests); tests/integration runs the same flows against a real
HTTPS receiver, a real Redis broker and a real Celery worker.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from django_ciba import signals
from django_ciba.approval import decisions
from django_ciba.backends import locmem
from django_ciba.core import outbound
from django_ciba.delivery import worker as delivery
from django_ciba.models import AuthenticationRequest, Delivery
from django_ciba.testing import create_ciba_client, poll, start_request
from tests.unit.auth_requests import NOTIFICATION_TOKEN, start


# Real commits: deliveries are dispatched by on_commit callbacks, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

ENDPOINT = "https://rp.example.com/ciba/cb"
Kind = Delivery.Kind


class FakeClient:
    """Stands in for outbound.post_json: records calls, answers from a script."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.replies: list[object] = []
        self.on_call = None

    def __call__(self, url: str, body: bytes, *, headers=None):
        self.calls.append({"url": url, "body": body, "headers": dict(headers or {})})
        if self.on_call is not None:
            self.on_call()
        reply = self.replies.pop(0) if self.replies else outbound.OutboundResponse(status=204, headers={})
        if isinstance(reply, Exception):
            raise reply
        return reply


@pytest.fixture
def http(monkeypatch):
    fake = FakeClient()
    monkeypatch.setattr(outbound, "post_json", fake)
    return fake


@pytest.fixture
def ping_client(db):
    return create_ciba_client("Ping RP", mode="ping", notification_endpoint=ENDPOINT, scope="")


@pytest.fixture
def events():
    seen: list[tuple[str, dict]] = []
    names = [name for name in dir(signals) if isinstance(getattr(signals, name), signals.Signal)]
    receivers = {}
    for name in names:

        def receiver(sender, name=name, **kwargs):
            seen.append((name, kwargs))

        receivers[name] = receiver
        getattr(signals, name).connect(receiver)
    yield seen
    for name, receiver in receivers.items():
        getattr(signals, name).disconnect(receiver)


def make_due(pk: int) -> None:
    Delivery.objects.filter(pk=pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


# --------------------------------------------------------------------------------------------
# The authentication device (AD-01)


def test_bc_authorize_notifies_the_device_after_commit(client, user, poll_client, events):
    app, secret = poll_client
    auth_req_id, auth_request = start_request(
        client, app, secret, scope="openid", login_hint="alice", binding_message="Teller 7: 4711"
    )
    [notification] = locmem.outbox
    assert notification.auth_request_pk == auth_request.pk
    assert notification.user == user
    assert notification.binding_message == "Teller 7: 4711"
    assert notification.client_name == "Teller terminal"
    assert notification.scopes == ("openid",)
    # SEC-10: nothing in the notification carries the auth_req_id.
    assert auth_req_id not in repr(notification)
    [device] = Delivery.objects.filter(kind=Kind.DEVICE)
    assert device.status == Delivery.Status.DELIVERED and device.attempts == 1
    assert ("device_notified", {"kind": "device"}) in [
        (name, {"kind": kwargs.get("kind")}) for name, kwargs in events
    ]


def test_device_notification_is_not_sent_before_commit(client, user, poll_client):
    # The backend runs only after the request's transaction committed.
    app, secret = poll_client
    with transaction.atomic():
        start_request(client, app, secret, scope="openid", login_hint="alice")
        assert locmem.outbox == []
    assert len(locmem.outbox) == 1


def test_approval_url_carries_the_pk_never_the_auth_req_id(client, user, poll_client, ciba_settings):
    ciba_settings.set(APPROVAL_URL="https://op.example.com/approve/{pk}")
    app, secret = poll_client
    auth_req_id, auth_request = start_request(client, app, secret, scope="openid", login_hint="alice")
    assert locmem.outbox[0].approval_url == f"https://op.example.com/approve/{auth_request.pk}"


def test_transient_device_failure_is_retried(client, user, poll_client):
    locmem.fail_next(1)
    app, secret = poll_client
    _, auth_request = start_request(client, app, secret, scope="openid", login_hint="alice")
    device = Delivery.objects.get(auth_request=auth_request)
    assert device.status == Delivery.Status.PENDING
    assert device.attempts == 1
    assert device.next_attempt_at > timezone.now()
    assert "NotificationError" in device.last_error
    assert locmem.outbox == []
    make_due(device.pk)
    assert delivery.deliver(device.pk) == "delivered"
    assert len(locmem.outbox) == 1


def test_permanent_device_failure_is_final(client, user, poll_client, events):
    locmem.fail_next(1, permanent=True)
    app, secret = poll_client
    _, auth_request = start_request(client, app, secret, scope="openid", login_hint="alice")
    device = Delivery.objects.get(auth_request=auth_request)
    assert device.status == Delivery.Status.FAILED
    assert [kwargs["kind"] for name, kwargs in events if name == "delivery_failed"] == ["device"]
    # The request itself stays pending: the user may still decide another way.
    auth_request.refresh_from_db()
    assert auth_request.status == AuthenticationRequest.Status.PENDING


def test_device_notification_of_a_decided_request_is_cancelled(client, user, poll_client):
    locmem.fail_next(1)
    app, secret = poll_client
    _, auth_request = start_request(client, app, secret, scope="openid", login_hint="alice")
    decisions.deny(auth_request, user=user)
    device = Delivery.objects.get(auth_request=auth_request)
    make_due(device.pk)
    assert delivery.deliver(device.pk) == "cancelled"
    assert locmem.outbox == []


def test_device_retries_stop_when_the_request_expires(client, user, poll_client):
    locmem.fail_next(5)
    app, secret = poll_client
    _, auth_request = start_request(
        client, app, secret, scope="openid", login_hint="alice", requested_expiry="1"
    )
    device = Delivery.objects.get(auth_request=auth_request)
    assert device.status == Delivery.Status.FAILED  # the backoff would end after the expiry


def test_deliver_is_idempotent(client, user, poll_client):
    app, secret = poll_client
    _, auth_request = start_request(client, app, secret, scope="openid", login_hint="alice")
    device = Delivery.objects.get(auth_request=auth_request)
    assert delivery.deliver(device.pk) == "skipped"
    assert delivery.deliver(10**9) == "skipped"
    assert len(locmem.outbox) == 1


# --------------------------------------------------------------------------------------------
# Ping mode (PING-01..09)


def test_ping_after_approval(client, user, ping_client, http, events):
    auth_req_id, auth_request = start(client, *ping_client)
    assert http.calls == []  # nothing before the decision
    decisions.approve(auth_request, user=user)
    [call] = http.calls
    assert call["url"] == ENDPOINT  # PING-01
    assert call["headers"]["Authorization"] == f"Bearer {NOTIFICATION_TOKEN}"  # PING-02
    assert json.loads(call["body"]) == {"auth_req_id": auth_req_id}  # PING-03: only auth_req_id
    ping = Delivery.objects.get(auth_request=auth_request, kind=Kind.PING)
    assert ping.status == Delivery.Status.DELIVERED and ping.last_status_code == 204
    assert "delivered" in [name for name, _ in events]


def test_ping_after_denial(client, user, ping_client, http):
    auth_req_id, auth_request = start(client, *ping_client)
    decisions.deny(auth_request, user=user)
    [call] = http.calls
    assert json.loads(call["body"]) == {"auth_req_id": auth_req_id}
    app, secret = ping_client
    response = poll(client, app, secret, auth_req_id)
    assert response.json()["error"] == "access_denied"  # TOK-10 after a ping


def test_poll_client_is_never_called(client, user, poll_client, http):
    # PING-09
    app, secret = poll_client
    _, auth_request = start_request(client, app, secret, scope="openid", login_hint="alice")
    decisions.approve(auth_request, user=user)
    assert http.calls == []
    assert not Delivery.objects.exclude(kind=Kind.DEVICE).exists()


def test_no_ping_on_expiry(client, user, ping_client, http):
    # PING-08: optional; this OP does not ping on expiry.
    _, auth_request = start(client, *ping_client)
    decisions.expire(auth_request)
    assert http.calls == []


def test_ping_client_may_poll_before_and_after(client, user, ping_client, http):
    # TOK-13: ping clients poll like poll clients.
    auth_req_id, auth_request = start(client, *ping_client)
    app, secret = ping_client
    assert poll(client, app, secret, auth_req_id).json()["error"] == "authorization_pending"
    decisions.approve(auth_request, user=user)
    assert poll(client, app, secret, auth_req_id).status_code == 200


@pytest.mark.parametrize("status", [401, 403, 404, 400])
def test_4xx_is_final_and_tokens_are_still_issued(client, user, ping_client, http, status, events):
    # PING-07: no retry after a 4xx; TOK-16: tokens do not depend on the ping.
    http.replies = [outbound.OutboundResponse(status=status, headers={})]
    auth_req_id, auth_request = start(client, *ping_client)
    decisions.approve(auth_request, user=user)
    ping = Delivery.objects.get(auth_request=auth_request, kind=Kind.PING)
    assert ping.status == Delivery.Status.FAILED and ping.last_status_code == status
    assert delivery.deliver(ping.pk) == "skipped"
    assert len(http.calls) == 1
    assert "delivery_failed" in [name for name, _ in events]
    app, secret = ping_client
    assert poll(client, app, secret, auth_req_id).status_code == 200


def test_redirect_is_final(client, user, ping_client, http):
    # PING-06: a 3xx is never followed (outbound.post_json does not follow) nor retried.
    http.replies = [outbound.OutboundResponse(status=302, headers={"location": "https://evil.example/"})]
    _, auth_request = start(client, *ping_client)
    decisions.approve(auth_request, user=user)
    ping = Delivery.objects.get(auth_request=auth_request, kind=Kind.PING)
    assert ping.status == Delivery.Status.FAILED
    assert [call["url"] for call in http.calls] == [ENDPOINT]


def test_200_with_body_is_success(client, user, ping_client, http):
    # PING-05
    http.replies = [outbound.OutboundResponse(status=200, headers={"content-type": "text/html"})]
    _, auth_request = start(client, *ping_client)
    decisions.approve(auth_request, user=user)
    assert Delivery.objects.get(auth_request=auth_request, kind=Kind.PING).status == Delivery.Status.DELIVERED


@pytest.mark.parametrize(
    "reply",
    [
        outbound.OutboundResponse(status=500, headers={}),
        outbound.OutboundResponse(status=503, headers={}),
        outbound.TransportError("ReadTimeoutError"),
    ],
    ids=["500", "503", "timeout"],
)
def test_transient_failures_are_retried_until_success(client, user, ping_client, http, reply):
    http.replies = [reply, reply, reply]
    _, auth_request = start(client, *ping_client)
    decisions.approve(auth_request, user=user)
    ping = Delivery.objects.get(auth_request=auth_request, kind=Kind.PING)
    for attempt in (1, 2, 3):
        ping.refresh_from_db()
        assert ping.status == Delivery.Status.PENDING and ping.attempts == attempt
        assert ping.next_attempt_at > timezone.now()
        make_due(ping.pk)
        delivery.deliver(ping.pk)
    ping.refresh_from_db()
    assert ping.status == Delivery.Status.DELIVERED and ping.attempts == 4
    assert len(http.calls) == 4


def test_429_honours_retry_after(client, user, ping_client, http):
    http.replies = [outbound.OutboundResponse(status=429, headers={"retry-after": "120"})]
    _, auth_request = start(client, *ping_client)
    before = timezone.now()
    decisions.approve(auth_request, user=user)
    ping = Delivery.objects.get(auth_request=auth_request, kind=Kind.PING)
    assert ping.status == Delivery.Status.PENDING
    assert ping.next_attempt_at >= before + timedelta(seconds=120)


def test_retries_end_at_the_deadline(client, user, ping_client, http, ciba_settings):
    ciba_settings.set(RETRY_MIN_WINDOW=0)
    http.replies = [outbound.OutboundResponse(status=500, headers={})] * 3
    _, auth_request = start(client, *ping_client)
    decisions.approve(auth_request, user=user)
    AuthenticationRequest.objects.filter(pk=auth_request.pk).update(
        expires_at=timezone.now() + timedelta(seconds=1)
    )
    ping = Delivery.objects.get(auth_request=auth_request, kind=Kind.PING)
    make_due(ping.pk)
    assert delivery.deliver(ping.pk) == "failed"


def test_unsafe_destination_is_final(client, user, ping_client, http):
    http.replies = [outbound.UnsafeDestination("https://10.0.0.1 resolves to a private address")]
    _, auth_request = start(client, *ping_client)
    decisions.approve(auth_request, user=user)
    assert Delivery.objects.get(auth_request=auth_request, kind=Kind.PING).status == Delivery.Status.FAILED


def test_backoff_is_exponential_with_jitter(ciba_settings):
    ciba_settings.set(RETRY_BASE_DELAY=2.0, RETRY_MAX_DELAY=60.0)
    for attempts, upper in [(1, 2.0), (2, 4.0), (3, 8.0), (10, 60.0)]:
        values = {delivery.backoff(attempts) for _ in range(50)}
        assert all(upper / 2 <= value <= upper for value in values)
        assert len(values) > 1  # jittered
    assert delivery.backoff(1, retry_after=30) == 30


# --------------------------------------------------------------------------------------------
# Ordering: no callback before the bc-authorize answer was sent


def test_immediate_decision_waits_for_the_acknowledgement(client, user, ping_client, http):
    """A decision taken while bc-authorize is still answering (a policy approving at once) must
    not ping the client before the answer announcing its auth_req_id has been sent."""
    acknowledged_at_ping: list[bool] = []

    def approve_at_once(sender, auth_request_pk, **kwargs):
        decisions.approve(AuthenticationRequest.objects.get(pk=auth_request_pk), user=user)

    def on_ping():
        acknowledged_at_ping.append(AuthenticationRequest.objects.get().acknowledged_at is not None)

    http.on_call = on_ping
    signals.auth_request_created.connect(approve_at_once)
    try:
        auth_req_id, auth_request = start(client, *ping_client)
    finally:
        signals.auth_request_created.disconnect(approve_at_once)
    assert acknowledged_at_ping == [True]  # pinged once, and only after the answer was sent
    assert json.loads(http.calls[0]["body"]) == {"auth_req_id": auth_req_id}


def test_waiting_callback_goes_after_the_grace_period(client, user, ping_client, http, ciba_settings):
    # If the answer's sending is never recorded (a crash), the callback still goes after the grace.
    _, auth_request = start(client, *ping_client)
    AuthenticationRequest.objects.filter(pk=auth_request.pk).update(acknowledged_at=None)
    decisions.approve(auth_request, user=user)
    ping = Delivery.objects.get(auth_request=auth_request, kind=Kind.PING)
    assert http.calls == [] and ping.attempts == 0 and ping.next_attempt_at > timezone.now()
    AuthenticationRequest.objects.filter(pk=auth_request.pk).update(
        created_at=timezone.now() - timedelta(seconds=60)
    )
    make_due(ping.pk)
    assert delivery.deliver(ping.pk) == "delivered"


def test_poll_requests_record_no_acknowledgement(client, user, poll_client):
    app, secret = poll_client
    _, auth_request = start_request(client, app, secret, scope="openid", login_hint="alice")
    auth_request.refresh_from_db()
    assert auth_request.acknowledged_at is None


# --------------------------------------------------------------------------------------------
# Secrets (SEC-10)


def test_secrets_are_stored_sealed_and_never_in_signals(client, user, ping_client, http, events):
    auth_req_id, auth_request = start(client, *ping_client)
    decisions.approve(auth_request, user=user)
    auth_request.refresh_from_db()
    assert auth_req_id not in auth_request.auth_req_id_sealed
    assert NOTIFICATION_TOKEN not in auth_request.client_notification_token_sealed
    assert auth_request.get_auth_req_id() == auth_req_id
    assert events
    for _, kwargs in events:
        assert auth_req_id not in repr(kwargs) and NOTIFICATION_TOKEN not in repr(kwargs)
    for row in Delivery.objects.all():
        assert auth_req_id not in repr(row.__dict__) and NOTIFICATION_TOKEN not in repr(row.__dict__)


def test_a_retry_task_starting_a_moment_early_still_runs(client, user, ping_client, http):
    # Celery's ETA may fire slightly before next_attempt_at; that must not strand the retry.
    http.replies = [outbound.OutboundResponse(status=500, headers={})]
    _, auth_request = start(client, *ping_client)
    decisions.approve(auth_request, user=user)
    ping = Delivery.objects.get(auth_request=auth_request, kind=Kind.PING)
    Delivery.objects.filter(pk=ping.pk).update(next_attempt_at=timezone.now() + timedelta(seconds=5))
    assert delivery.deliver(ping.pk) == "skipped"  # not due: a lease or a later retry
    Delivery.objects.filter(pk=ping.pk).update(next_attempt_at=timezone.now() + timedelta(milliseconds=300))
    assert delivery.deliver(ping.pk) == "delivered"
