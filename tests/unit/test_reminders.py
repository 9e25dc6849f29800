"""Reminders of requests waiting long for their user (``CIBA["REMINDERS"]``, lifecycle.remind).

The tests commit for real (``transaction=True``) so that the reminder's device notification is
dispatched after commit and reaches the locmem backend, as in production.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from django_ciba import lifecycle, tasks
from django_ciba.backends import webhook
from django_ciba.backends.email import EmailBackend
from django_ciba.checks.reminders import check_reminder_settings
from django_ciba.delivery import maintenance
from django_ciba.delivery.worker import build_notification
from django_ciba.models import AuthenticationRequest, Delivery, RequestEvent
from tests.unit.auth_requests import make_request


pytestmark = pytest.mark.django_db(transaction=True)

Status = AuthenticationRequest.Status
HOUR = 3600
DAY = 24 * HOUR


def waiting(app, user, *, age: float = 2 * HOUR, expires_in: int = DAY, **fields):
    """A pending request created ``age`` seconds ago that expires ``expires_in`` s from now."""
    return make_request(app, user, age=age, expires_in=expires_in, **fields)


def row(auth_request) -> AuthenticationRequest:
    return AuthenticationRequest.objects.get(pk=auth_request.pk)


def test_defaults_remind_after_an_hour_every_hour_at_most_twice(poll_client, user, ciba_notifications):
    app, _ = poll_client
    young = waiting(app, user, age=30 * 60)
    old = waiting(app, user)
    now = timezone.now()

    assert maintenance.remind_due(now=now) == 1
    assert [n.auth_request_pk for n in ciba_notifications] == [old.pk]
    assert ciba_notifications[0].reminder == 1
    assert row(old).reminders_sent == 1 and row(old).reminded_at == now
    assert row(young).reminders_sent == 0

    # 59 minutes later: the young request's first (it is 89 minutes old), not yet the old one's second.
    assert maintenance.remind_due(now=now + timedelta(minutes=59)) == 1
    assert row(old).reminders_sent == 1 and row(young).reminders_sent == 1
    # EVERY (an hour) after its first: the old one's second.
    assert maintenance.remind_due(now=now + timedelta(hours=1)) == 1
    assert row(old).reminders_sent == 2
    assert [(n.auth_request_pk, n.reminder) for n in ciba_notifications[1:]] == [(young.pk, 1), (old.pk, 2)]
    # MAX (2) reached for the old one: never a third, however long it waits.
    assert maintenance.remind_due(now=now + timedelta(hours=2)) == 1  # the young one's second
    assert row(old).reminders_sent == 2 and row(young).reminders_sent == 2
    assert maintenance.remind_due(now=now + timedelta(hours=20)) == 0


def test_max_zero_turns_reminders_off(poll_client, user, ciba_settings, ciba_notifications):
    ciba_settings.set(REMINDERS={"MAX": 0})
    app, _ = poll_client
    old = waiting(app, user, age=DAY)
    assert maintenance.remind_due() == 0
    assert not lifecycle.remind(old.pk, now=timezone.now())
    assert ciba_notifications == [] and row(old).reminders_sent == 0


def test_the_settings_are_read_at_call_time(poll_client, user, ciba_settings, ciba_notifications):
    ciba_settings.set(REMINDERS={"AFTER": 60, "EVERY": 30, "MAX": 3})
    app, _ = poll_client
    old = waiting(app, user, age=90)
    now = timezone.now()
    assert [maintenance.remind_due(now=now + timedelta(seconds=s)) for s in (0, 20, 30, 60, 90, 120)] == [
        1,
        0,
        1,
        1,
        0,
        0,
    ]
    assert row(old).reminders_sent == 3


def test_no_reminder_after_expiry(poll_client, user, ciba_notifications):
    app, _ = poll_client
    old = waiting(app, user, expires_in=10)
    later = timezone.now() + timedelta(seconds=11)
    assert maintenance.remind_due(now=later) == 0
    assert not lifecycle.remind(old.pk, now=later)
    assert ciba_notifications == []


@pytest.mark.parametrize("status", [Status.APPROVED, Status.DENIED, Status.CANCELLED, Status.EXPIRED])
def test_no_reminder_for_a_decided_request(poll_client, user, status, ciba_notifications):
    app, _ = poll_client
    old = waiting(app, user, status=status)
    assert maintenance.remind_due() == 0
    assert not lifecycle.remind(old.pk, now=timezone.now())
    assert ciba_notifications == [] and row(old).reminders_sent == 0


def test_two_sweepers_at_once_send_one_reminder(poll_client, user, ciba_notifications):
    app, _ = poll_client
    old = waiting(app, user)
    now = timezone.now()
    # Both sweeps found the request due; the conditional update lets exactly one remind it.
    assert lifecycle.remind(old.pk, now=now) is True
    assert lifecycle.remind(old.pk, now=now) is False
    assert maintenance.remind_due(now=now) == 0
    assert row(old).reminders_sent == 1 and len(ciba_notifications) == 1


def test_a_reminder_is_a_device_delivery_marked_and_audited(poll_client, user, ciba_notifications):
    app, _ = poll_client
    old = waiting(app, user)
    first = Delivery.objects.create(
        auth_request=old, kind=Delivery.Kind.DEVICE, next_attempt_at=timezone.now() + timedelta(hours=1)
    )
    assert lifecycle.remind(old.pk, now=timezone.now())
    first.refresh_from_db()
    assert first.status == Delivery.Status.CANCELLED  # replaced: the user is not notified twice
    reminder = Delivery.objects.exclude(pk=first.pk).get(auth_request=old)
    assert reminder.kind == Delivery.Kind.DEVICE and reminder.reminder == 1
    assert reminder.status == Delivery.Status.DELIVERED
    event = RequestEvent.objects.get(auth_request=old, event=lifecycle.REMINDED)
    assert event.actor == "system"
    assert event.detail == {"delivery": reminder.pk, "reminder": 1, "replaced": 1}


def test_the_first_notification_is_not_a_reminder(client, poll_client, user, ciba_notifications):
    from tests.unit.auth_requests import start

    app, secret = poll_client
    start(client, app, secret)
    assert [n.reminder for n in ciba_notifications] == [0]


def test_the_celery_task_and_ciba_cleanup_send_reminders(poll_client, user, ciba_notifications):
    app, _ = poll_client
    first, second = waiting(app, user), waiting(app, user, age=3 * HOUR)
    assert tasks.remind_requests() == 2
    assert {n.auth_request_pk for n in ciba_notifications} == {first.pk, second.pk}
    third = waiting(app, user)
    out = StringIO()
    call_command("ciba_cleanup", stdout=out)
    assert "reminded=1" in out.getvalue()
    assert row(third).reminders_sent == 1


def test_remind_due_works_in_batches(poll_client, user, ciba_notifications):
    app, _ = poll_client
    rows = [waiting(app, user) for _ in range(5)]
    assert maintenance.remind_due(batch_size=2) == 5
    assert {row(r).reminders_sent for r in rows} == {1}


# --------------------------------------------------------------------------------------------
# what the backends are told


def test_the_e_mail_of_a_reminder_says_so(poll_client, user):
    app, _ = poll_client
    old = waiting(app, user, binding_message="Pay 10 EUR")
    first = EmailBackend().build_message(build_notification(old))
    again = EmailBackend().build_message(build_notification(old, reminder=1))
    assert not first.subject.startswith("Reminder:") and "still waiting" not in first.body
    assert again.subject.startswith("Reminder: Approve the sign-in request from Teller terminal")
    assert "Reminder: this request is still waiting for your decision; it expires at" in again.body


def test_the_webhook_payload_of_a_reminder_carries_its_number(poll_client, user):
    app, _ = poll_client
    old = waiting(app, user)
    assert "reminder" not in webhook.build_payload(build_notification(old))
    assert webhook.build_payload(build_notification(old, reminder=2))["reminder"] == 2


# --------------------------------------------------------------------------------------------
# checks


@pytest.mark.parametrize(
    ("section", "check_id"),
    [
        ({"AFTER": 0}, "django_ciba.E260"),
        ({"AFTER": "1h"}, "django_ciba.E260"),
        ({"EVERY": -5}, "django_ciba.E261"),
        ({"EVERY": True}, "django_ciba.E261"),
        ({"MAX": -1}, "django_ciba.E262"),
        ({"MAX": None}, "django_ciba.E262"),
        ({"MAX": False}, "django_ciba.E262"),
    ],
)
def test_checks_refuse_bad_reminder_settings(ciba_settings, section, check_id):
    ciba_settings.set(REMINDERS=section)
    assert [message.id for message in check_reminder_settings()] == [check_id]


def test_the_defaults_and_max_zero_pass_the_checks(ciba_settings):
    assert check_reminder_settings() == []
    ciba_settings.set(REMINDERS={"MAX": 0})
    assert check_reminder_settings() == []
