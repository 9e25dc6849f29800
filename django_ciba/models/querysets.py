"""Intention-revealing queries for authentication requests, and the outbox's lease-based claim.

A request's state changes only through :mod:`django_ciba.lifecycle`; these querysets read it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import models, transaction
from django.db.models import F, Q
from django.utils import timezone

from django_ciba.core import hot_path
from django_ciba.core.conf import ciba_settings
from django_ciba.core.identifiers import hash_auth_req_id


# QuerySet[Any]: naming the models here would import them from the module they import.
class AuthenticationRequestQuerySet(models.QuerySet[Any]):
    def by_auth_req_id(self, auth_req_id: str) -> AuthenticationRequestQuerySet:
        """Look a request up by its (plaintext) auth_req_id; only the hash is compared."""
        return self.filter(auth_req_id_hash=hash_auth_req_id(auth_req_id))

    def for_client(self, application: Any) -> AuthenticationRequestQuerySet:
        return self.filter(client=application)

    def for_user(self, user: Any) -> AuthenticationRequestQuerySet:
        return self.filter(user=user)

    def pending(self, now: datetime | None = None) -> AuthenticationRequestQuerySet:
        """Requests still waiting for the user and not yet expired."""
        return self.filter(status=self.model.Status.PENDING, expires_at__gt=now or timezone.now())

    def expired(self, now: datetime | None = None) -> AuthenticationRequestQuerySet:
        """Requests past their expiry that are not finished yet (pending or approved)."""
        return self.filter(
            status__in=(self.model.Status.PENDING, self.model.Status.APPROVED),
            expires_at__lte=now or timezone.now(),
        )

    def due_for_reminder(self, now: datetime) -> AuthenticationRequestQuerySet:
        """Pending, unexpired requests due for a reminder under ``CIBA["REMINDERS"]`` at ``now``."""
        most = int(ciba_settings.REMINDER_MAX)
        if most <= 0:
            return self.none()
        after, every = (
            timedelta(seconds=int(seconds))
            for seconds in (ciba_settings.REMINDER_AFTER, ciba_settings.REMINDER_EVERY)
        )
        first = Q(reminded_at__isnull=True, created_at__lte=now - after)
        return self.pending(now).filter(first | Q(reminded_at__lte=now - every), reminders_sent__lt=most)

    def finished_before(self, cutoff: datetime) -> AuthenticationRequestQuerySet:
        """Requests in a final state whose last change is older than ``cutoff`` (for cleanup)."""
        Status = self.model.Status
        final = (Status.DENIED, Status.EXPIRED, Status.CONSUMED, Status.FAILED, Status.CANCELLED)
        return self.filter(status__in=final, updated_at__lt=cutoff)


class DeliveryQuerySet(models.QuerySet[Any]):
    """The outbox: due deliveries, and the lease-based claim a worker takes before delivering."""

    def pending(self) -> DeliveryQuerySet:
        return self.filter(status=self.model.Status.PENDING)

    def due(self, now: datetime | None = None) -> DeliveryQuerySet:
        """Pending deliveries whose next attempt (or whose crashed worker's lease) is in the past."""
        return self.pending().filter(next_attempt_at__lte=now or timezone.now())

    def claim(self, pk: int, *, now: datetime, lease_until: datetime, due_by: datetime | None = None) -> bool:
        """Take a delivery due by ``due_by`` (default ``now``) for one attempt; one worker wins."""
        return (
            self.filter(pk=pk, status=self.model.Status.PENDING, next_attempt_at__lte=due_by or now).update(
                next_attempt_at=lease_until, attempts=F("attempts") + 1, updated_at=now
            )
            == 1
        )

    def postpone(self, pk: int, *, until: datetime, now: datetime, **changes: Any) -> bool:
        """Schedule the next attempt of a pending delivery (a retry, or waiting for its turn)."""
        return (
            self.filter(pk=pk, status=self.model.Status.PENDING).update(
                next_attempt_at=until, updated_at=now, **changes
            )
            == 1
        )

    def finish(self, pk: int, *, status: str, now: datetime, **changes: Any) -> bool:
        """Record the final outcome of a pending delivery (delivered, failed or cancelled)."""
        return (
            self.filter(pk=pk, status=self.model.Status.PENDING).update(
                status=status, finished_at=now, updated_at=now, **changes
            )
            == 1
        )


class CibaClientQuerySet(models.QuerySet[Any]):
    def update(self, **kwargs: Any) -> int:
        """Bulk updates (e.g. disabling registrations) retire every process's cached client rows
        (:mod:`django_ciba.clients.cache`): now, and again once the transaction commits."""
        updated = super().update(**kwargs)
        hot_path.bump_client_version()
        transaction.on_commit(hot_path.bump_client_version)
        return updated
