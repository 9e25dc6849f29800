"""Celery tasks: thin wrappers over plain functions. They take primary keys only, are idempotent
(each re-reads its rows and stops when there is nothing to do) and acknowledge late, so a worker
that dies mid-task leaves its message to be redelivered. Importing this module needs no broker.

Schedule the housekeeping tasks with :func:`beat_schedule`::

    CELERY_BEAT_SCHEDULE = {**django_ciba.tasks.beat_schedule()}

This module may be imported from a settings file: it loads no model until a task runs.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task


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


@shared_task(name="django_ciba.purge_finished", **TASK_OPTIONS)
def purge_finished() -> int:
    """Delete finished requests older than ``CIBA["MAINTENANCE"]["RETENTION"]``."""
    from django_ciba.delivery import maintenance

    return maintenance.purge_finished()


def beat_schedule(*, sweep: float = 10.0, expire: float = 30.0, purge: float = 3600.0) -> dict[str, Any]:
    """A ``CELERY_BEAT_SCHEDULE`` fragment for the housekeeping tasks (intervals in seconds)."""
    return {
        "django-ciba-sweep-outbox": {"task": "django_ciba.sweep_outbox", "schedule": sweep},
        "django-ciba-expire-requests": {"task": "django_ciba.expire_requests", "schedule": expire},
        "django-ciba-purge-finished": {"task": "django_ciba.purge_finished", "schedule": purge},
    }
