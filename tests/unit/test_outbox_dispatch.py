"""The outbox hands deliveries to the task queue through its outbox_ready signal (docs/lifecycle.rst)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from django_ciba import outbox, tasks
from django_ciba.core.identifiers import hash_auth_req_id, new_auth_req_id
from django_ciba.models import AuthenticationRequest, Delivery


pytestmark = pytest.mark.django_db


def due_delivery(app, user) -> Delivery:
    """A pending device delivery, due a minute ago, of a stored poll request."""
    now = timezone.now()
    auth_request = AuthenticationRequest.objects.create(
        auth_req_id_hash=hash_auth_req_id(new_auth_req_id()),
        client=app,
        user=user,
        delivery_mode="poll",
        scope="openid",
        expires_at=now + timedelta(seconds=300),
        interval=5,
    )
    past = now - timedelta(seconds=60)
    return Delivery.objects.create(auth_request=auth_request, kind=Delivery.Kind.DEVICE, next_attempt_at=past)


def test_the_celery_enqueuer_is_connected_when_the_app_is_ready():
    assert outbox.outbox_ready.has_listeners(Delivery)
    answers = outbox.outbox_ready.send(sender=Delivery, delivery_pk=10**9, at=None)
    assert [receiver for receiver, _ in answers] == [tasks.enqueue_delivery]
    assert [answer for _, answer in answers] == [outbox.RAN]  # the test settings run tasks in-process


def test_without_a_connected_queue_the_row_stays_due_for_the_sweep(poll_client, user, caplog):
    app, _ = poll_client
    row = due_delivery(app, user)
    outbox.outbox_ready.disconnect(dispatch_uid="django_ciba.tasks.enqueue_delivery")
    try:
        with caplog.at_level(logging.WARNING, logger="django_ciba.outbox"):
            outbox.dispatch(row.pk)
    finally:
        outbox.outbox_ready.connect(tasks.enqueue_delivery, dispatch_uid="django_ciba.tasks.enqueue_delivery")
    assert "No task queue is connected" in caplog.text
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Delivery.Status.PENDING, 0)
    assert outbox.queued([row.pk]) == set()


def test_a_failing_receiver_never_reaches_the_caller(poll_client, user, caplog):
    app, _ = poll_client
    row = due_delivery(app, user)

    def broken(sender, **kwargs):
        raise RuntimeError("queue gone")

    outbox.outbox_ready.connect(broken, dispatch_uid="test.broken")
    try:
        with caplog.at_level(logging.WARNING, logger="django_ciba.outbox"):
            outbox.dispatch(row.pk)
    finally:
        outbox.outbox_ready.disconnect(dispatch_uid="test.broken")
    assert "the outbox sweep will retry it" in caplog.text
    assert outbox.queued([row.pk]) == set()
