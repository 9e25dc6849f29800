"""The audit trail: every transition recorded with its actor, in its transaction.

Each flow is checked against the :class:`~django_ciba.models.RequestEvent` rows it leaves, in
order, with the actor of each. The rows commit or roll back with the transition; the structured
log line carries the stable event name and no secret; the signals still fire once, after commit.

Real commits (``transaction=True``): on_commit callbacks (signals, deliveries) run as in production.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from django_ciba import audit
from django_ciba.approval import decisions
from django_ciba.backends import locmem
from django_ciba.core import outbound
from django_ciba.delivery import maintenance
from django_ciba.models import AuthenticationRequest, RequestEvent
from django_ciba.testing import create_ciba_client, poll
from tests.unit.auth_requests import NOTIFICATION_TOKEN, start


pytestmark = pytest.mark.django_db(transaction=True)

Status = AuthenticationRequest.Status
ENDPOINT = "https://rp.example.com/cb"
DOCS = Path(__file__).resolve().parents[2] / "docs"


# --------------------------------------------------------------------------------------------
# helpers and fixtures


@pytest.fixture
def post(monkeypatch):
    """Outbound client callbacks: recorded, answered from a queue (default 204)."""
    calls: list[bytes] = []
    answers: list[int] = []

    def fake(url, body, *, headers=None):
        calls.append(body)
        return outbound.OutboundResponse(status=answers.pop(0) if answers else 204)

    monkeypatch.setattr(outbound, "post_json", fake)
    fake.calls, fake.answers = calls, answers
    return fake


@pytest.fixture
def push_client(db):
    return create_ciba_client("Push RP", mode="push", notification_endpoint=ENDPOINT)


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw")


@pytest.fixture
def sent():
    """Every CIBA signal sent during the test: ``[(event name, auth_request_pk), ...]``."""
    log: list[tuple[str, int]] = []
    for signal, name in audit.EVENT_NAMES.items():

        def receiver(sender, name=name, auth_request_pk=None, **kwargs):
            log.append((name, auth_request_pk))

        signal.connect(receiver, weak=False, dispatch_uid=f"test-audit-{name}")
    yield log
    for signal, name in audit.EVENT_NAMES.items():
        signal.disconnect(dispatch_uid=f"test-audit-{name}")


def trail(auth_request) -> list[tuple[str, str]]:
    return list(RequestEvent.objects.filter(auth_request=auth_request).values_list("event", "actor"))


def client_(app) -> str:
    return f"client:{app.client_id}"


# --------------------------------------------------------------------------------------------
# each flow leaves its transitions, in order, with their actors


def test_poll_flow(client, user, poll_client):
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    decisions.approve(auth_request, user=user)
    assert poll(client, app, secret, auth_req_id).status_code == 200
    assert trail(auth_request) == [
        ("created", client_(app)),
        ("device_notified", "system"),
        ("approved", f"user:{user.pk}"),
        ("tokens_issued", client_(app)),
    ]
    rows = list(RequestEvent.objects.filter(auth_request=auth_request))
    assert [row.created_at for row in rows] == sorted(row.created_at for row in rows)
    assert rows[1].detail == {"kind": "device"}
    assert str(rows[2]) == f"approved by user:{user.pk}"


def test_deny_by_an_operator(client, user, poll_client, operator):
    app, secret = poll_client
    _, auth_request = start(client, app, secret)
    decisions.deny(auth_request, actor=audit.operator_actor(operator))
    assert trail(auth_request)[-1] == ("denied", f"operator:{operator.pk}")
    # Without a user or an actor, a denial is still attributed to an operator.
    _, other = start(client, app, secret)
    decisions.deny(other)
    assert trail(other)[-1] == ("denied", "operator")


def test_expire_by_an_operator(client, user, poll_client, operator):
    app, secret = poll_client
    _, auth_request = start(client, app, secret)
    decisions.expire(auth_request, actor=audit.operator_actor(operator))
    assert trail(auth_request)[-1] == ("expired", f"operator:{operator.pk}")


def test_timeout_expiry_by_the_system(client, user, poll_client):
    app, secret = poll_client
    _, auth_request = start(client, app, secret)
    AuthenticationRequest.objects.filter(pk=auth_request.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert maintenance.expire_overdue() == 1
    assert trail(auth_request) == [
        ("created", client_(app)),
        ("device_notified", "system"),
        ("expired", "system"),
    ]


def test_push_delivery(client, user, push_client, post):
    app, secret = push_client
    _, auth_request = start(client, app, secret)
    decisions.approve(auth_request, user=user)
    assert len(post.calls) == 1
    assert trail(auth_request) == [
        ("created", client_(app)),
        ("device_notified", "system"),
        ("approved", f"user:{user.pk}"),
        ("tokens_issued", "system"),
        ("delivered", "system"),
    ]
    delivered = RequestEvent.objects.get(auth_request=auth_request, event="delivered")
    assert delivered.detail == {"kind": "push_tokens"}


def test_failed_push(client, user, push_client, post):
    app, secret = push_client
    _, auth_request = start(client, app, secret)
    post.answers.append(400)  # final: the tokens never arrived and are revoked
    decisions.approve(auth_request, user=user)
    auth_request.refresh_from_db()
    assert auth_request.status == Status.FAILED
    assert trail(auth_request)[3:] == [
        ("tokens_issued", "system"),
        ("failed", "system"),
        ("delivery_failed", "system"),
    ]
    failed = RequestEvent.objects.get(auth_request=auth_request, event="failed")
    assert failed.detail == {"reason": "push_undelivered"}


def test_failed_device_notification(client, user, poll_client):
    locmem.fail_next(1, permanent=True)
    app, secret = poll_client
    _, auth_request = start(client, app, secret)
    assert trail(auth_request) == [("created", client_(app)), ("delivery_failed", "system")]


def test_report_abuse(client, user, poll_client):
    app, secret = poll_client
    _, auth_request = start(client, app, secret)
    report = decisions.report_abuse(auth_request, user=user)
    assert trail(auth_request)[-2:] == [("denied", f"user:{user.pk}"), ("abuse_reported", f"user:{user.pk}")]
    reported = RequestEvent.objects.get(auth_request=auth_request, event="abuse_reported")
    assert reported.detail == {"report": report.pk}


def test_events_are_deleted_with_their_request(client, user, poll_client):
    app, secret = poll_client
    _, auth_request = start(client, app, secret)
    decisions.deny(auth_request, user=user)
    assert RequestEvent.objects.filter(auth_request=auth_request).exists()
    assert maintenance.purge_finished(now=timezone.now() + timedelta(seconds=10), retention=0) == 1
    assert not RequestEvent.objects.exists()


# --------------------------------------------------------------------------------------------
# same transaction, log line, signals


class Boom(Exception):
    pass


def test_a_rolled_back_transition_leaves_no_row_and_sends_no_signal(client, user, poll_client, sent, caplog):
    app, secret = poll_client
    _, auth_request = start(client, app, secret)
    before = trail(auth_request)
    sent.clear()
    with pytest.raises(Boom), transaction.atomic():
        decisions.deny(auth_request, user=user)
        assert trail(auth_request)[-1] == ("denied", f"user:{user.pk}")  # written inside
        raise Boom()
    assert trail(auth_request) == before
    auth_request.refresh_from_db()
    assert auth_request.status == Status.PENDING
    assert sent == []
    # The same decision, committed this time: one row, one signal.
    decisions.deny(auth_request, user=user)
    assert trail(auth_request) == [*before, ("denied", f"user:{user.pk}")]
    assert sent == [("denied", auth_request.pk)]


def test_signals_fire_once_after_commit(client, user, poll_client, sent):
    app, secret = poll_client
    auth_req_id, auth_request = start(client, app, secret)
    assert sent == [("created", auth_request.pk), ("device_notified", auth_request.pk)]
    sent.clear()
    with transaction.atomic():
        decisions.approve(auth_request, user=user)
        assert sent == []  # not before commit
    assert sent == [("approved", auth_request.pk)]
    assert poll(client, app, secret, auth_req_id).status_code == 200
    assert sent == [("approved", auth_request.pk), ("tokens_issued", auth_request.pk)]
    # Every signal matches a row of the trail.
    assert [name for name, _ in sent] == [event for event, _ in trail(auth_request)[2:]]


def test_the_log_line_names_the_event_and_holds_no_secret(client, user, push_client, post, caplog):
    app, secret = push_client
    caplog.set_level(logging.INFO, logger="django_ciba.audit")
    auth_req_id, auth_request = start(client, app, secret)
    decisions.approve(auth_request, user=user)
    pushed = post.calls[0].decode()
    access_token = re.search(r'"access_token":"([^"]+)"', pushed).group(1)
    records = [record for record in caplog.records if record.name == "django_ciba.audit"]
    assert [record.ciba_event for record in records] == [
        "created",
        "device_notified",
        "approved",
        "tokens_issued",
        "delivered",
    ]
    for record in records:
        assert record.levelno == logging.INFO
        assert record.auth_request_pk == auth_request.pk
        assert (
            record.getMessage()
            == f"ciba.{record.ciba_event} request={auth_request.pk} actor={record.ciba_actor}"
        )
        assert isinstance(record.ciba_detail, dict)
        everything = repr([record.getMessage(), record.ciba_actor, record.ciba_detail, record.args])
        for value in (auth_req_id, NOTIFICATION_TOKEN, access_token, auth_request.auth_req_id_hash):
            assert value not in everything
    assert records[0].ciba_actor == client_(app)
    assert records[2].ciba_actor == f"user:{user.pk}"
    assert records[4].ciba_detail == {"kind": "push_tokens"}


def test_actor_helpers(user, poll_client):
    app, _ = poll_client
    assert audit.user_actor(user) == f"user:{user.pk}"
    assert audit.operator_actor(user) == f"operator:{user.pk}"
    assert audit.operator_actor(None) == "operator"
    assert audit.client_actor(app) == f"client:{app.client_id}"
    assert audit.SYSTEM == "system"


def test_every_event_and_log_key_is_documented():
    text = (DOCS / "audit.rst").read_text()
    events = {*audit.EVENT_NAMES.values(), "abuse_reported", "device_notification_resent"}
    assert sorted(event for event in events if f"``{event}``" not in text) == []
    for key in ("ciba_event", "auth_request_pk", "ciba_actor", "ciba_detail", "django_ciba.audit"):
        assert f"``{key}``" in text, key
    assert ":doc:`audit`" in (DOCS / "signals.rst").read_text()
