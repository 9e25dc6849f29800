"""The outbox: what must be delivered is written with the change that caused it, then dispatched.

Every device notification and client callback starts as a :class:`~django_ciba.models.Delivery`
row created in the same database transaction as the request or decision it reports. Only after
that transaction commits is a task enqueued (through :data:`outbox_ready`, to which
:mod:`django_ciba.tasks` connects Celery); if the broker is down, the row stays due and the
periodic sweep (:func:`django_ciba.delivery.maintenance.sweep_outbox`) enqueues it later. So a result is
never lost, only delayed.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.cache import caches
from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from django_ciba.core import after_response
from django_ciba.core.conf import ciba_settings
from django_ciba.models import AuthenticationRequest, Delivery, DeliveryMode


logger = logging.getLogger(__name__)

Kind = Delivery.Kind

# Push error codes per outcome (CIBA Core §12: PERR-02..04).
PUSH_ERRORS: dict[str, str] = {
    AuthenticationRequest.Status.DENIED: "access_denied",
    AuthenticationRequest.Status.EXPIRED: "expired_token",
    AuthenticationRequest.Status.FAILED: "transaction_failed",
}


def record(auth_request: AuthenticationRequest, kind: str, *, error: str = "", reminder: int = 0) -> Delivery:
    """Write one delivery in the current transaction; it is dispatched once that commits and, inside
    a request, once the response has been sent (:mod:`django_ciba.core.after_response`).
    ``reminder``: for a device notification, which reminder of the request it is (0: the first
    notification)."""
    now = timezone.now()
    delivery = Delivery.objects.create(
        auth_request=auth_request,
        kind=kind,
        error=error,
        reminder=reminder,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    transaction.on_commit(lambda: after_response.defer(lambda: dispatch(delivery.pk)))
    return delivery


def record_outcome(auth_request: AuthenticationRequest) -> Delivery | None:
    """Record the client callback that reports the request's new status, if its mode has one.

    Poll clients are never called (PING-09). Ping clients are called once the user approved or
    denied (PING-01); no ping is sent on expiry (PING-08 makes it optional). Push clients get their
    tokens on approval (PUSH-01) and an error payload otherwise (PERR-01..04).
    """
    Status = AuthenticationRequest.Status
    status = auth_request.status
    if auth_request.delivery_mode == DeliveryMode.PING and status in (Status.APPROVED, Status.DENIED):
        return record(auth_request, Kind.PING)
    if auth_request.delivery_mode == DeliveryMode.PUSH:
        if status == Status.APPROVED:
            return record(auth_request, Kind.PUSH_TOKENS)
        if status in PUSH_ERRORS:
            return record(auth_request, Kind.PUSH_ERROR, error=PUSH_ERRORS[status])
    return None


#: Sent (internally) for each delivery to hand to the task queue, with ``delivery_pk`` and ``at``
#: (None: now). :mod:`django_ciba.tasks` connects the Celery enqueuer to it in ``AppConfig.ready()``,
#: so that the outbox knows nothing of Celery. A receiver answers :data:`QUEUED` (the task waits in
#: a queue), :data:`RAN` (it ran in-process already) or :data:`LEFT` (not enqueued: the sweep will).
outbox_ready = Signal()
QUEUED, RAN, LEFT = "queued", "ran", "left"


def dispatch(delivery_pk: int, *, at: datetime | None = None) -> None:
    """Enqueue the delivery task, now or at ``at``; never raises (the sweep is the safety net).

    With tasks running in-process (``task_always_eager``), a delivery due later is left to the
    sweep instead of being run at once.
    """
    if at is not None and at <= timezone.now():
        at = None
    try:
        answers = [answer for _, answer in outbox_ready.send(sender=Delivery, delivery_pk=delivery_pk, at=at)]
    except Exception as exc:  # the receiver logs its own failures; this is the last resort
        logger.warning(
            "Could not enqueue delivery #%s (%s); the outbox sweep will retry it.",
            delivery_pk,
            type(exc).__name__,
            exc_info=logger.isEnabledFor(logging.DEBUG),
        )
        return
    if not answers:
        logger.warning(
            "No task queue is connected (django_ciba.tasks); the outbox sweep will deliver #%s.", delivery_pk
        )
    if QUEUED in answers:  # a task that ran in-process already has nothing waiting in a queue
        _mark_queued(delivery_pk, at)


# The sweep must not enqueue again a delivery whose task is merely waiting in a long queue: each
# duplicate lengthens the queue, so more rows look overdue at the next sweep (a feedback loop under
# load). Every enqueued task is noted in the cache for the lease (plus its delay, for a scheduled
# retry); the sweep skips the rows noted. A lost message (a broker that dropped its queue) is swept
# once its note expires. With a per-process cache the notes are not shared and the sweep behaves as
# if there were none (check W065 asks for a shared cache).
QUEUED_KEY = "django_ciba:queued:{pk}"


def _cache() -> Any:
    return caches[ciba_settings.CACHE_ALIAS]


def _mark_queued(delivery_pk: int, at: datetime | None) -> None:
    delay = max(0.0, (at - timezone.now()).total_seconds()) if at is not None else 0.0
    timeout = math.ceil(delay + float(ciba_settings.DELIVERY_LEASE))
    try:
        _cache().set(QUEUED_KEY.format(pk=delivery_pk), 1, timeout)
    except Exception as exc:  # the cache is an optimisation: the sweep may send a duplicate task
        logger.warning("Could not note delivery #%s as queued (%s).", delivery_pk, type(exc).__name__)


def queued(delivery_pks: Iterable[int]) -> set[int]:
    """Those of ``delivery_pks`` whose task was enqueued within its lease (see :func:`dispatch`)."""
    keys = {QUEUED_KEY.format(pk=pk): pk for pk in delivery_pks}
    if not keys:
        return set()
    try:
        found = _cache().get_many(list(keys))
    except Exception as exc:
        logger.warning("Could not read the queued deliveries (%s); sweeping them all.", type(exc).__name__)
        return set()
    return {keys[key] for key in found}


def release_waiting(auth_request_pk: int) -> None:
    """The bc-authorize answer was sent: client callbacks held back for it may go now."""
    now = timezone.now()
    waiting = list(
        Delivery.objects.pending()
        .filter(auth_request_id=auth_request_pk, attempts=0)
        .exclude(kind=Kind.DEVICE)
        .values_list("pk", flat=True)
    )
    if waiting:
        Delivery.objects.pending().filter(pk__in=waiting, attempts=0).update(next_attempt_at=now)
        for pk in waiting:
            dispatch(pk)
