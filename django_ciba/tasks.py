"""Celery tasks: thin wrappers over plain functions. They take primary keys only, are idempotent
(each re-reads its rows and stops when there is nothing to do) and acknowledge late, so a worker
that dies mid-task leaves its message to be redelivered. Importing this module needs no broker.

Schedule the housekeeping tasks with :func:`beat_schedule`::

    CELERY_BEAT_SCHEDULE = {**django_ciba.tasks.beat_schedule()}

This module may be imported from a settings file: it loads no model until a task runs.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from celery import shared_task
from celery.signals import task_postrun, task_prerun
from django.db import close_old_connections


logger = logging.getLogger(__name__)


TASK_OPTIONS: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True, "ignore_result": True}


@shared_task(name="django_ciba.deliver", **TASK_OPTIONS)
def deliver(delivery_pk: int) -> str:
    """Attempt one outbox delivery (device notification, ping or push)."""
    from django_ciba.delivery import worker as delivery

    return delivery.deliver(delivery_pk)


@shared_task(name="django_ciba.sweep_outbox", **TASK_OPTIONS)
def sweep_outbox() -> int:
    """Re-enqueue overdue deliveries (lost messages, crashed workers)."""
    from django_ciba.delivery import maintenance

    return maintenance.sweep_outbox()


@shared_task(name="django_ciba.expire_requests", **TASK_OPTIONS)
def expire_requests() -> int:
    """Expire overdue requests and push ``expired_token`` to push clients."""
    from django_ciba.delivery import maintenance

    return maintenance.expire_overdue()


@shared_task(name="django_ciba.remind_requests", **TASK_OPTIONS)
def remind_requests() -> int:
    """Remind users of requests still waiting for them (``CIBA["REMINDERS"]``)."""
    from django_ciba.delivery import maintenance

    return maintenance.remind_due()


@shared_task(name="django_ciba.purge_finished", **TASK_OPTIONS)
def purge_finished() -> int:
    """Delete finished requests older than ``CIBA["MAINTENANCE"]["RETENTION"]``."""
    from django_ciba.delivery import maintenance

    return maintenance.purge_finished()


def enqueue_delivery(sender: Any, *, delivery_pk: int, at: datetime | None = None, **kwargs: Any) -> str:
    """Receiver of :data:`django_ciba.outbox.outbox_ready` (connected by ``AppConfig.ready()``):
    enqueue :func:`deliver`, now or at ``at``. Never raises: an unreachable broker leaves the row due
    for the sweep. Answers ``queued``, ``ran`` (in-process) or ``left`` (not enqueued)."""
    eager = bool(deliver.app.conf.task_always_eager)
    if at is not None and eager:
        return "left"  # in-process tasks cannot wait: the sweep sends it once it is due
    try:
        deliver.apply_async(
            (delivery_pk,),
            eta=at,
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1},
        )
    except Exception as exc:
        logger.warning(
            "Could not enqueue delivery #%s (%s); the outbox sweep will retry it.",
            delivery_pk,
            type(exc).__name__,
            exc_info=eager or logger.isEnabledFor(logging.DEBUG),
        )
        return "left"
    return "ran" if eager else "queued"


def connect_signals() -> None:
    """Around each django-ciba task run by a worker, do what Django does around a request: close
    the database connections that are unusable or older than ``CONN_MAX_AGE`` (called by
    ``AppConfig.ready()``).

    Celery's own Django fix-up closes every connection after every task unless
    ``CELERY_DB_REUSE_MAX`` is set; with it set, these receivers keep ``CONN_MAX_AGE`` and the
    health of the connection in charge, as on the app servers (docs: deployment, "Celery worker
    and beat"). In-process (eager) tasks run inside a request, whose connections are Django's to
    manage: they are left alone.
    """
    task_prerun.connect(_close_old_connections, dispatch_uid="django_ciba.tasks.prerun")
    task_postrun.connect(_close_old_connections, dispatch_uid="django_ciba.tasks.postrun")


def _close_old_connections(sender: Any = None, **kwargs: Any) -> None:
    if not str(getattr(sender, "name", "")).startswith("django_ciba."):
        return  # the project's own tasks are the project's business
    if getattr(getattr(sender, "request", None), "is_eager", False):
        return
    close_old_connections()


def beat_schedule(
    *, sweep: float = 10.0, expire: float = 30.0, remind: float = 60.0, purge: float = 3600.0
) -> dict[str, Any]:
    """A ``CELERY_BEAT_SCHEDULE`` fragment for the housekeeping tasks (intervals in seconds)."""
    return {
        "django-ciba-sweep-outbox": {"task": "django_ciba.sweep_outbox", "schedule": sweep},
        "django-ciba-expire-requests": {"task": "django_ciba.expire_requests", "schedule": expire},
        "django-ciba-remind-requests": {"task": "django_ciba.remind_requests", "schedule": remind},
        "django-ciba-purge-finished": {"task": "django_ciba.purge_finished", "schedule": purge},
    }
