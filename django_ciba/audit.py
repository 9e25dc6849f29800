"""The audit trail: every transition of a request, with who or what caused it.

:func:`transition` is called by :mod:`django_ciba.lifecycle`, which makes every change of state,
inside the transaction that makes the change: it writes a :class:`~django_ciba.models.RequestEvent`
row (so the record commits or rolls back with the change itself), logs one structured line on the
``django_ciba.audit`` logger, and sends the matching signal once the transaction has committed.
Neither the row, the log line nor the signal carries a secret (no auth_req_id, token,
client_notification_token or user_code).

Event names are stable: ``created``, ``device_notified``, ``approved``, ``denied``, ``expired``,
``failed``, ``tokens_issued``, ``delivered``, ``delivery_failed``, ``abuse_reported``,
``receipt_issued`` (the signed approval receipt, :mod:`django_ciba.receipts`).
Actors: ``client:<client_id>``, ``user:<pk>``, ``operator:<pk>``, ``policy:<name>``,
``test-automation`` (the conformance suite's approval URL), ``system``.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.dispatch import Signal
from django.utils import timezone

from django_ciba import signals


logger = logging.getLogger(__name__)

SYSTEM = "system"

EVENT_NAMES: dict[Signal, str] = {
    signals.auth_request_created: "created",
    signals.device_notified: "device_notified",
    signals.auth_request_approved: "approved",
    signals.auth_request_denied: "denied",
    signals.auth_request_expired: "expired",
    signals.auth_request_failed: "failed",
    signals.auth_request_cancelled: "cancelled",
    signals.tokens_issued: "tokens_issued",
    signals.delivered: "delivered",
    signals.delivery_failed: "delivery_failed",
}


def user_actor(user: Any) -> str:
    return f"user:{user.pk}"


def operator_actor(user: Any) -> str:
    return f"operator:{user.pk}" if getattr(user, "pk", None) is not None else "operator"


def client_actor(application: Any) -> str:
    return f"client:{application.client_id}"


def record(auth_request: Any, event: str, *, actor: str = SYSTEM, **detail: Any) -> None:
    """Write one audit row for ``auth_request`` and log it (``detail`` must hold no secret)."""
    from django_ciba.models import RequestEvent

    RequestEvent.objects.create(
        auth_request_id=auth_request.pk,
        event=event,
        actor=actor[:128],
        detail=detail,
        created_at=timezone.now(),
    )
    logger.info(
        "ciba.%s request=%s actor=%s",
        event,
        auth_request.pk,
        actor,
        extra={
            "ciba_event": event,
            "auth_request_pk": auth_request.pk,
            "ciba_actor": actor,
            "ciba_detail": detail,
        },
    )


def transition(
    auth_request: Any,
    signal: Signal,
    *,
    actor: str = SYSTEM,
    detail: dict[str, Any] | None = None,
    **extra: str,
) -> None:
    """Record the transition now and send ``signal`` (with ``extra``) after the transaction commits.

    ``detail`` goes into the audit row only; ``extra`` (e.g. ``kind``) into both.
    """
    record(auth_request, EVENT_NAMES[signal], actor=actor, **{**extra, **(detail or {})})
    transaction.on_commit(lambda: signals.send(signal, auth_request, **extra))
