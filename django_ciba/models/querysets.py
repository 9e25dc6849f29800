"""Intention-revealing queries and atomic state transitions for authentication requests."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import models
from django.db.models import F
from django.utils import timezone

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

    def _transition(self, pk: int, from_states: Iterable[str], **changes: Any) -> bool:
        """Compare-and-set: change the row only if it is still in one of ``from_states``."""
        return self.filter(pk=pk, status__in=list(from_states)).update(**changes) == 1

    def approve(
        self,
        pk: int,
        *,
        granted_scope: str,
        acr: str,
        amr: list[str],
        auth_time: datetime | None,
        now: datetime,
    ) -> bool:
        """Record an approval; ``auth_time`` is when the user authenticated (None: nobody did)."""
        return (
            self.filter(pk=pk, status=self.model.Status.PENDING, expires_at__gt=now).update(
                status=self.model.Status.APPROVED,
                granted_scope=granted_scope,
                acr=acr,
                amr=amr,
                auth_time=auth_time,
                decided_at=now,
                approved_at=now,
                updated_at=now,
            )
            == 1
        )

    def deny(self, pk: int, *, now: datetime) -> bool:
        return (
            self.filter(pk=pk, status=self.model.Status.PENDING, expires_at__gt=now).update(
                status=self.model.Status.DENIED, decided_at=now, updated_at=now
            )
            == 1
        )

    def expire(self, pk: int, *, now: datetime) -> bool:
        """Expire a request that has not delivered its tokens yet."""
        Status = self.model.Status
        return self._transition(
            pk, (Status.PENDING, Status.APPROVED), status=Status.EXPIRED, expires_at=now, updated_at=now
        )

    def supersede(self, pk: int, *, now: datetime) -> bool:
        """Expire a request still waiting for the user because a newer one of the same client for the
        same user replaced it (an approved request is never superseded)."""
        Status = self.model.Status
        return self._transition(pk, (Status.PENDING,), status=Status.EXPIRED, expires_at=now, updated_at=now)

    def withdraw_approval(self, pk: int, *, now: datetime) -> bool:
        """Turn an approval whose tokens were never issued into a denial (user deactivated)."""
        Status = self.model.Status
        return self._transition(pk, (Status.APPROVED,), status=Status.DENIED, updated_at=now)

    def time_out(self, pk: int, *, now: datetime) -> bool:
        """Expire a request whose lifetime is over (pending, or approved but never redeemed)."""
        Status = self.model.Status
        return (
            self.filter(pk=pk, status__in=(Status.PENDING, Status.APPROVED), expires_at__lte=now).update(
                status=Status.EXPIRED, updated_at=now
            )
            == 1
        )

    def fail(self, pk: int, *, from_states: Iterable[str], now: datetime) -> bool:
        """Mark a request failed (PERR-04): tokens could not be minted or a push never arrived."""
        return self._transition(pk, from_states, status=self.model.Status.FAILED, updated_at=now)

    def acknowledge(self, pk: int, *, now: datetime) -> bool:
        """Record that the bc-authorize answer announcing this request has been sent."""
        return self.filter(pk=pk, acknowledged_at__isnull=True).update(acknowledged_at=now) == 1

    def finished_before(self, cutoff: datetime) -> AuthenticationRequestQuerySet:
        """Requests in a final state whose last change is older than ``cutoff`` (for cleanup)."""
        Status = self.model.Status
        return self.filter(
            status__in=(Status.DENIED, Status.EXPIRED, Status.CONSUMED, Status.FAILED), updated_at__lt=cutoff
        )

    def claim_for_tokens(self, pk: int, *, now: datetime) -> bool:
        """Mark an approved request as spent; exactly one concurrent caller wins (TOK-12)."""
        Status = self.model.Status
        return (
            self.filter(pk=pk, status=Status.APPROVED, expires_at__gt=now).update(
                status=Status.CONSUMED, tokens_issued_at=now, updated_at=now
            )
            == 1
        )


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
