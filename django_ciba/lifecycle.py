"""Every transition of an authentication request, in one place (see docs/lifecycle.rst).

Each public function is one transition. In one transaction it makes the conditional update (the
row changes only if it is still in one of the allowed statuses, so two concurrent callers yield
exactly one outcome; the function returns whether it happened), records the outbox rows that tell
the client (:mod:`django_ciba.outbox`), records the audit event (:mod:`django_ciba.audit`), and has
the integrator signal sent once the transaction commits. No other module writes a request's
``status`` (``tests/unit/test_architecture_lifecycle.py`` checks it).

Callers check permissions and raise their own errors (:mod:`django_ciba.approval.decisions`,
the workers, the admin); these functions only change the state.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from django_ciba import audit, outbox, receipts, signals
from django_ciba.core import hot_path
from django_ciba.models import AbuseReport, AuthenticationRequest, Delivery, DeliveryMode


Status = AuthenticationRequest.Status
Kind = Delivery.Kind

#: Statuses a request may still be expired from: its tokens were not issued yet.
UNREDEEMED = (Status.PENDING, Status.APPROVED)
#: The audit event of a resent device notification (it has no signal of its own).
RESENT = "device_notification_resent"
#: The audit event of a reminder sent to the user's device (no signal of its own either).
REMINDED = "reminder_sent"


def _atomic() -> Any:
    """The caller's transaction when there is one (no savepoint: a failed transition fails it),
    else a new one."""
    return transaction.atomic(savepoint=False)


def _requests(pk: int, from_states: Iterable[str], **conditions: Any) -> Any:
    return AuthenticationRequest.objects.filter(pk=pk, status__in=list(from_states), **conditions)


#: Requests whose client polls: their pending state is kept in the hot-path cache.
POLLED = (DeliveryMode.POLL, DeliveryMode.PING)


def _polled(auth_request: AuthenticationRequest) -> bool:
    return auth_request.delivery_mode in POLLED


def _left_pending(auth_request: AuthenticationRequest) -> None:
    """Delete the request's pending entry (:mod:`django_ciba.core.hot_path`) now, and put a tombstone
    in its place once the transition commits: polls from then on read the database, and a poll that
    read "pending" just before cannot put the entry back."""
    if not _polled(auth_request):
        return
    digest = auth_request.auth_req_id_hash
    hot_path.forget_pending(digest)  # also when off here: another process may have written it
    if hot_path.enabled():
        transaction.on_commit(lambda: hot_path.bury_pending(digest))


def create(*, actor: str, **fields: Any) -> AuthenticationRequest:
    """Store a new (pending) request and audit it as ``created``. A polled request's pending entry
    is written before the creation commits: nobody knows its auth_req_id before the entry exists."""
    with _atomic():
        auth_request = AuthenticationRequest.objects.create(**fields)
        audit.transition(auth_request, signals.auth_request_created, actor=actor)
        if _polled(auth_request) and auth_request.status == Status.PENDING:
            hot_path.remember_pending(
                auth_request.auth_req_id_hash,
                client_pk=auth_request.client_id,
                expires_at=auth_request.expires_at,
                interval=auth_request.interval,
            )
    return auth_request


def notify_device(auth_request: AuthenticationRequest) -> Delivery:
    """Queue the device notification of a request waiting for its user (AD-01); it is sent by a
    worker once the current transaction commits, and audited as ``device_notified`` when it arrives."""
    return outbox.record(auth_request, Kind.DEVICE)


def approve(
    auth_request: AuthenticationRequest,
    *,
    actor: str,
    granted_scope: str,
    acr: str,
    amr: list[str],
    auth_time: datetime | None,
    now: datetime,
    granted_authorization_details: list[dict[str, Any]] | None = None,
) -> bool:
    """pending (not expired) -> approved; ``auth_time`` is when the user authenticated (None: nobody).
    ``granted_authorization_details``: the part of the request's details approved (None: all).
    The approval receipt (:mod:`django_ciba.receipts`) is signed and audited in the same transaction."""
    if granted_authorization_details is None:
        granted_authorization_details = list(auth_request.authorization_details or [])
    with _atomic():
        done = _requests(auth_request.pk, (Status.PENDING,), expires_at__gt=now).update(
            status=Status.APPROVED,
            granted_scope=granted_scope,
            granted_authorization_details=granted_authorization_details,
            acr=acr,
            amr=amr,
            auth_time=auth_time,
            decided_at=now,
            approved_at=now,
            updated_at=now,
        )
        if not done:
            return False
        auth_request.refresh_from_db()
        _left_pending(auth_request)
        outbox.record_outcome(auth_request)  # PING-01, PUSH-01, PERR-01
        audit.transition(auth_request, signals.auth_request_approved, actor=actor)
        if receipts.issue(auth_request, actor=actor, now=now):  # signed, kept in the audit trail
            receipt_id, receipt = auth_request.approval_receipt_id, auth_request.approval_receipt
            audit.record(auth_request, receipts.ISSUED, actor=actor, receipt_id=receipt_id, receipt=receipt)
    return True


def deny(auth_request: AuthenticationRequest, *, actor: str, now: datetime) -> bool:
    """pending (not expired) -> denied, by the user, an operator or a decision policy."""
    with _atomic():
        done = _requests(auth_request.pk, (Status.PENDING,), expires_at__gt=now).update(
            status=Status.DENIED, decided_at=now, updated_at=now
        )
        if not done:
            return False
        auth_request.refresh_from_db()
        _left_pending(auth_request)
        outbox.record_outcome(auth_request)  # PING-01, PUSH-01, PERR-01
        audit.transition(auth_request, signals.auth_request_denied, actor=actor)
    return True


def report_abuse(auth_request: AuthenticationRequest, *, user: Any, now: datetime) -> AbuseReport | None:
    """pending -> denied by ``user``, who says they did not make the request: the denial, and an abuse
    report against the client audited as ``abuse_reported``. None when the request was not pending."""
    actor = audit.user_actor(user)
    with _atomic():
        if not deny(auth_request, actor=actor, now=now):
            return None
        report = AbuseReport.objects.create(
            auth_request=auth_request,
            client_id=auth_request.client_id,
            user=user,
            binding_message=auth_request.binding_message,
            created_at=now,
        )
        audit.record(auth_request, "abuse_reported", actor=actor, report=report.pk)
    return report


def expire(auth_request: AuthenticationRequest, *, actor: str, now: datetime) -> bool:
    """pending or approved -> expired now (an operator's action); refused once tokens were issued."""
    with _atomic():
        if not _requests(auth_request.pk, UNREDEEMED).update(
            status=Status.EXPIRED, expires_at=now, updated_at=now
        ):
            return False
        auth_request.refresh_from_db()
        _left_pending(auth_request)
        outbox.record_outcome(auth_request)  # PING-01, PUSH-01, PERR-01
        audit.transition(auth_request, signals.auth_request_expired, actor=actor)
    return True


def time_out(pk: int, *, now: datetime) -> bool:
    """pending or approved, past its expiry -> expired (the periodic expiry task)."""
    with _atomic():
        if not _requests(pk, UNREDEEMED, expires_at__lte=now).update(status=Status.EXPIRED, updated_at=now):
            return False
        auth_request = AuthenticationRequest.objects.select_related("client").get(pk=pk)
        _left_pending(auth_request)
        outbox.record_outcome(auth_request)
        audit.transition(auth_request, signals.auth_request_expired)
    return True


def supersede(pk: int, *, by: AuthenticationRequest, now: datetime) -> bool:
    """pending -> expired because ``by``, a newer request of the same client for the same user,
    replaced it (SEC-07); an approved request is never superseded. Audited with the client as actor."""
    with _atomic():
        if not _requests(pk, (Status.PENDING,)).update(status=Status.EXPIRED, expires_at=now, updated_at=now):
            return False
        old = AuthenticationRequest.objects.select_related("client").get(pk=pk)
        _left_pending(old)
        outbox.record_outcome(old)
        audit.transition(
            old,
            signals.auth_request_expired,
            actor=audit.client_actor(old.client),
            detail={"reason": "superseded", "superseded_by": by.pk},
        )
    return True


def acknowledge(auth_request: AuthenticationRequest, *, now: datetime) -> bool:
    """The bc-authorize answer announcing the request was sent: note it once, and release the client
    callbacks held back for it (no status change, no audit event). Called outside any transaction,
    so that the released callbacks see the note."""
    if not AuthenticationRequest.objects.filter(pk=auth_request.pk, acknowledged_at__isnull=True).update(
        acknowledged_at=now
    ):
        return False
    outbox.release_waiting(auth_request.pk)
    return True


def issue_tokens(auth_request: AuthenticationRequest, *, now: datetime, actor: str = audit.SYSTEM) -> bool:
    """approved (not expired) -> tokens issued; exactly one concurrent caller wins (TOK-12).

    Call it in the transaction that mints the tokens: if minting fails, the rollback undoes the
    transition and its audit row, and no signal is sent.
    """
    with _atomic():
        if not _requests(auth_request.pk, (Status.APPROVED,), expires_at__gt=now).update(
            status=Status.CONSUMED, tokens_issued_at=now, updated_at=now
        ):
            return False
        audit.transition(auth_request, signals.tokens_issued, actor=actor)
    return True


def finish_delivery(delivery: Delivery, status: str, *, now: datetime, **fields: Any) -> bool:
    """Record the final outcome of a pending delivery (delivered, failed or cancelled).

    Delivered: audited as ``device_notified`` or ``delivered``. Failed: audited as
    ``delivery_failed``; a push of tokens that never arrived also turns its request from tokens
    issued into failed (the caller revokes the tokens in the same transaction). Cancelled: nothing
    to audit. False when the delivery was finished already.
    """
    auth_request = delivery.auth_request
    with _atomic():
        if not Delivery.objects.finish(delivery.pk, status=status, now=now, **fields):
            return False
        if status == Delivery.Status.DELIVERED:
            signal = signals.device_notified if delivery.kind == Kind.DEVICE else signals.delivered
            audit.transition(auth_request, signal, kind=delivery.kind)
        elif status == Delivery.Status.FAILED:
            if delivery.kind == Kind.PUSH_TOKENS:
                _push_undelivered(auth_request, now)
            audit.transition(auth_request, signals.delivery_failed, kind=delivery.kind)
    return True


def _push_undelivered(auth_request: AuthenticationRequest, now: datetime) -> None:
    """tokens issued -> failed: the push carrying them never arrived (PERR-04)."""
    if _requests(auth_request.pk, (Status.CONSUMED,)).update(status=Status.FAILED, updated_at=now):
        auth_request.status = Status.FAILED
        audit.transition(auth_request, signals.auth_request_failed, detail={"reason": "push_undelivered"})


def fail_minting(delivery: Delivery, *, now: datetime) -> bool:
    """approved -> failed: tokens could not be minted for a push (PERR-04). The push delivery ends
    as failed and a ``transaction_failed`` error push is queued instead."""
    return _replace_push(
        delivery,
        delivery_status=Delivery.Status.FAILED,
        last_error="Tokens could not be minted.",
        to=Status.FAILED,
        signal=signals.auth_request_failed,
        reason="minting_failed",
        now=now,
    )


def withdraw_approval(delivery: Delivery, *, now: datetime) -> bool:
    """approved -> denied: the user was deactivated before the tokens of a push were minted. The
    push delivery is cancelled and an ``access_denied`` error push queued instead."""
    return _replace_push(
        delivery,
        delivery_status=Delivery.Status.CANCELLED,
        last_error="The user is inactive.",
        to=Status.DENIED,
        signal=signals.auth_request_denied,
        reason="user_inactive",
        now=now,
    )


def _replace_push(
    delivery: Delivery,
    *,
    delivery_status: str,
    last_error: str,
    to: str,
    signal: Any,
    reason: str,
    now: datetime,
) -> bool:
    """End an approved request's token push unsent, move the request to ``to`` and queue the error
    push that replaces it."""
    auth_request = delivery.auth_request
    with _atomic():
        Delivery.objects.finish(
            delivery.pk, status=delivery_status, now=now, payload_sealed="", last_error=last_error
        )
        if not _requests(auth_request.pk, (Status.APPROVED,)).update(status=to, updated_at=now):
            return False
        auth_request.status = to
        outbox.record_outcome(auth_request)
        audit.transition(auth_request, signal, detail={"reason": reason})
    return True


def resend_notification(auth_request: AuthenticationRequest, *, actor: str) -> bool:
    """A new device notification for a pending, unexpired request (an operator's action).

    The request's device deliveries still pending (e.g. waiting for a retry) are cancelled, so the
    user is not notified twice. Audited as :data:`RESENT`. False when the request is not pending.
    """
    with _atomic():
        # Locked until commit: a decision made meanwhile comes after the resend.
        live = AuthenticationRequest.objects.pending().select_for_update().filter(pk=auth_request.pk)
        if not list(live.values_list("pk", flat=True)):
            return False
        superseded = _cancel_deliveries(
            auth_request, timezone.now(), "Superseded by a resend.", kinds=(Kind.DEVICE,)
        )
        delivery = notify_device(auth_request)
        audit.record(auth_request, RESENT, actor=actor, delivery=delivery.pk, superseded=superseded)
    return True


def remind(pk: int, *, now: datetime) -> bool:
    """A reminder to the user's device for a request still pending (not expired) and due for one
    (``due_for_reminder``): counted and dated on the request in one conditional update, so that two
    concurrent sweeps send one. Its device notification (``Delivery.reminder``: its number)
    replaces the request's device deliveries still pending. Audited as :data:`REMINDED`."""
    with _atomic():
        due = AuthenticationRequest.objects.due_for_reminder(now).filter(pk=pk)
        if not due.update(reminders_sent=F("reminders_sent") + 1, reminded_at=now, updated_at=now):
            return False
        auth_request = AuthenticationRequest.objects.select_related("client").get(pk=pk)
        replaced = _cancel_deliveries(auth_request, now, "Replaced by a reminder.", kinds=(Kind.DEVICE,))
        number = auth_request.reminders_sent
        delivery = outbox.record(auth_request, Kind.DEVICE, reminder=number)
        audit.record(auth_request, REMINDED, delivery=delivery.pk, reminder=number, replaced=replaced)
    return True


def cancel(auth_request: AuthenticationRequest, *, actor: str, now: datetime) -> bool:
    """pending, or approved with no tokens issued yet (neither expired) -> cancelled by its client.
    Its deliveries not sent yet (device notifications, pings, pushes) are cancelled; no callback
    tells the client, which asked for it."""
    with _atomic():
        if not _requests(auth_request.pk, UNREDEEMED, expires_at__gt=now).update(
            status=Status.CANCELLED, cancelled_at=now, updated_at=now
        ):
            return False
        auth_request.refresh_from_db()
        _left_pending(auth_request)
        _cancel_deliveries(auth_request, now, "The client cancelled the request.")
        audit.transition(auth_request, signals.auth_request_cancelled, actor=actor)
    return True


def _cancel_deliveries(
    auth_request: AuthenticationRequest, now: datetime, why: str, *, kinds: Iterable[str] = tuple(Kind)
) -> int:
    return (
        Delivery.objects.pending()
        .filter(auth_request=auth_request, kind__in=list(kinds))
        .update(status=Delivery.Status.CANCELLED, finished_at=now, updated_at=now, last_error=why)
    )


def retry_deliveries(delivery_pks: Iterable[int]) -> list[int]:
    """Make the pending ones of ``delivery_pks`` due now and enqueue them (an operator's action;
    not audited). Returns the primary keys enqueued."""
    pks = list(Delivery.objects.pending().filter(pk__in=list(delivery_pks)).values_list("pk", flat=True))
    Delivery.objects.pending().filter(pk__in=pks).update(next_attempt_at=timezone.now())
    for pk in pks:
        outbox.dispatch(pk)
    return pks
