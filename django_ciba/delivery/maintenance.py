"""Periodic housekeeping: expire overdue requests, remind users of requests waiting long, re-enqueue
overdue deliveries, delete old rows.

Run by the Celery beat tasks in :mod:`django_ciba.tasks` and by ``manage.py ciba_cleanup``. They
work in batches of ``CIBA["MAINTENANCE"]["BATCH_SIZE"]`` rows (expiry, reminders and purge loop until done;
the sweep takes one batch per run, as it runs every few seconds) and are safe to run concurrently
with themselves and with live traffic (every change is an atomic conditional update, made through
:mod:`django_ciba.lifecycle`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone

from django_ciba import assurance, lifecycle, outbox
from django_ciba.clients import replay
from django_ciba.core.conf import ciba_settings
from django_ciba.models import AuthenticationRequest, Delivery


# A due delivery younger than this is probably already queued; the sweep leaves it alone.
SWEEP_SLACK = timedelta(seconds=2)


def _batch_size(batch_size: int | None) -> int:
    return int(batch_size or ciba_settings.BATCH_SIZE)


def expire_overdue(*, now: datetime | None = None, batch_size: int | None = None) -> int:
    """Mark requests past their expiry as expired; push clients are sent ``expired_token``."""
    now = now or timezone.now()
    size = _batch_size(batch_size)
    expired = 0
    while True:
        pks = list(
            AuthenticationRequest.objects.expired(now)
            .order_by("expires_at")
            .values_list("pk", flat=True)[:size]
        )
        for pk in pks:
            if lifecycle.time_out(pk, now=now):
                expired += 1
        if len(pks) < size:
            return expired


def remind_due(*, now: datetime | None = None, batch_size: int | None = None) -> int:
    """Send the reminders due under ``CIBA["REMINDERS"]`` (:func:`django_ciba.lifecycle.remind`);
    returns how many were sent. A request reminded by a concurrent run is not reminded again."""
    now = now or timezone.now()
    size = _batch_size(batch_size)
    reminded, seen = 0, 0
    while True:
        pks = list(
            AuthenticationRequest.objects.due_for_reminder(now)
            .filter(pk__gt=seen)
            .order_by("pk")
            .values_list("pk", flat=True)[:size]
        )
        for pk in pks:
            if lifecycle.remind(pk, now=now):
                reminded += 1
        if len(pks) < size:
            return reminded
        seen = pks[-1]


def sweep_outbox(*, now: datetime | None = None, batch_size: int | None = None) -> int:
    """Enqueue deliveries that are overdue: their task was lost (broker down) or their worker died.

    Rows whose task was enqueued within its lease are left alone, however late: they wait in the
    queue (:func:`django_ciba.outbox.queued`). Returns how many rows were enqueued.
    """
    now = now or timezone.now()
    pks = list(
        Delivery.objects.due(now - SWEEP_SLACK)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[: _batch_size(batch_size)]
    )
    waiting = outbox.queued(pks)
    swept = [pk for pk in pks if pk not in waiting]
    for pk in swept:
        outbox.dispatch(pk)
    return len(swept)


def purge_finished(
    *, now: datetime | None = None, retention: int | None = None, batch_size: int | None = None
) -> int:
    """Delete finished requests (and their deliveries) last changed more than ``retention`` s ago,
    the used JWT ids whose JWTs have expired, and the kept assurances of refresh-token families that
    no longer exist."""
    now = now or timezone.now()
    seconds = int(ciba_settings.RETENTION if retention is None else retention)
    cutoff = now - timedelta(seconds=seconds)
    size = _batch_size(batch_size)
    deleted = 0
    while True:
        pks = list(
            AuthenticationRequest.objects.finished_before(cutoff)
            .exclude(deliveries__status=Delivery.Status.PENDING)
            .order_by("pk")
            .values_list("pk", flat=True)[:size]
        )
        if pks:
            deleted += (
                AuthenticationRequest.objects.filter(pk__in=pks)
                .delete()[1]
                .get(AuthenticationRequest._meta.label, 0)
            )
        if len(pks) < size:
            replay.purge_expired(now=now, batch_size=size)  # counted apart: not requests
            assurance.purge_orphans(now=now, batch_size=size)  # refresh-token families that are gone
            return deleted
