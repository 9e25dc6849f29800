"""Recording a delivery's outcome while the database is unreachable (a restart during a delivery).

The message went out; the database then fails with a connection-level error. The worker retries
recording within its lease, so the sweep does not send the message again (no duplicate). Past the
lease the error propagates and the row stays pending for the sweep (at least once, as before).
tests/integration/test_database_restart.py restarts a real PostgreSQL during a ping.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import IntegrityError, InterfaceError, OperationalError
from django.utils import timezone

from django_ciba.backends import locmem
from django_ciba.delivery import worker as delivery
from django_ciba.models import Delivery
from tests.unit.auth_requests import start


pytestmark = pytest.mark.django_db(transaction=True)

LEAK = "connection to server at 10.1.2.3 failed: password=hunter2"


@pytest.fixture
def pending_device(client, user, poll_client):
    """A device notification whose first attempt failed: pending, due now."""
    locmem.fail_next(1)
    app, secret = poll_client
    _, auth_request = start(client, app, secret)
    row = Delivery.objects.get(auth_request=auth_request, kind=Delivery.Kind.DEVICE)
    assert row.status == Delivery.Status.PENDING
    Delivery.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    locmem.outbox.clear()
    return row


@pytest.fixture
def flaky_finish(monkeypatch):
    """``Delivery.objects.finish`` raises the scripted errors first, then works."""
    manager = type(Delivery.objects)
    real = manager.finish
    errors: list[Exception] = []
    calls: list[int] = []

    def finish(self, pk, **kwargs):
        calls.append(pk)
        if errors:
            raise errors.pop(0)
        return real(self, pk, **kwargs)

    monkeypatch.setattr(manager, "finish", finish)
    sleeps: list[float] = []
    monkeypatch.setattr(delivery.time, "sleep", sleeps.append)
    return errors, calls, sleeps


def test_success_recorded_once_the_database_is_back(pending_device, flaky_finish, caplog):
    errors, calls, sleeps = flaky_finish
    errors.extend([OperationalError(LEAK), InterfaceError(LEAK), OperationalError(LEAK)])
    with caplog.at_level(logging.WARNING, logger="django_ciba.delivery.worker"):
        assert delivery.deliver(pending_device.pk) == "delivered"
    assert len(locmem.outbox) == 1  # sent once
    assert len(calls) == 4 and sleeps == list(delivery.RECORD_RETRY_DELAYS[:3])
    row = Delivery.objects.get(pk=pending_device.pk)
    assert row.status == Delivery.Status.DELIVERED and row.attempts == 2
    # A later run (the sweep) finds nothing to send again.
    assert delivery.deliver(pending_device.pk) == "skipped"
    assert len(locmem.outbox) == 1
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 3 and "OperationalError" in messages[0] and "InterfaceError" in messages[1]
    assert not any("hunter2" in message or "10.1.2.3" in message for message in messages)


def test_gives_up_when_the_lease_runs_out(pending_device, flaky_finish, ciba_settings):
    # Past the lease another worker may take the row: the error propagates, the row stays pending
    # and leased, and the sweep sends the message again afterwards (at least once).
    ciba_settings.set(DELIVERY_LEASE=1)
    errors, calls, sleeps = flaky_finish
    errors.extend([OperationalError(LEAK)] * 10)
    with pytest.raises(OperationalError):
        delivery.deliver(pending_device.pk)
    assert sleeps and sum(sleeps) < 1  # retried only within the lease
    row = Delivery.objects.get(pk=pending_device.pk)
    assert row.status == Delivery.Status.PENDING and row.next_attempt_at > timezone.now()


def test_other_errors_are_not_retried(pending_device, flaky_finish):
    errors, calls, sleeps = flaky_finish
    errors.append(IntegrityError("no"))
    with pytest.raises(IntegrityError):
        delivery.deliver(pending_device.pk)
    assert len(calls) == 1 and sleeps == []
