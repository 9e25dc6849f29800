"""Deliver one outbox row: a device notification, a ping, or a push (CIBA Core §10.2, §10.3, §12).

:func:`deliver` is what the Celery task runs. It is idempotent: it re-reads the row, stops when
there is nothing to do, and takes a lease (an atomic conditional update) before any side effect,
so two workers never deliver the same row at once and a crashed worker's row becomes due again.

Outcomes: a 2xx answer is success whatever the body (PING-05, PUSH-06). Connection errors,
timeouts, 5xx and 429 are retried with exponential backoff and jitter (429 honours
``Retry-After``) until the request expires. Redirects are never followed and, like every other
4xx, end the delivery at once (PING-06, PING-07). A push that finally fails has its tokens revoked
and its request marked failed. When the database is unreachable just after an attempt, recording
its outcome is retried until the lease runs out, so a restart does not make the sweep send again a
callback that arrived.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import DatabaseError, InterfaceError, OperationalError, router, transaction
from django.utils import timezone

from django_ciba import lifecycle, outbox
from django_ciba.backends import DeviceNotification, PermanentNotificationError, get_backend
from django_ciba.core import outbound
from django_ciba.core.conf import ciba_settings
from django_ciba.core.sealing import UnsealError, unseal
from django_ciba.delivery import push
from django_ciba.exceptions import CibaConfigurationError
from django_ciba.models import AuthenticationRequest, CibaClient, Delivery


logger = logging.getLogger(__name__)

Kind = Delivery.Kind
Status = AuthenticationRequest.Status

# How early a scheduled attempt may run (leases are far longer than this, see check E022).
EARLY_START = timedelta(seconds=1)

# Connection-level database failures (a restart, a failover): recording an attempt's outcome is
# retried after these delays (the last repeats) while the row's lease lasts.
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
RECORD_RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0)

ERROR_DESCRIPTIONS = {
    "access_denied": "The end-user denied the authorization request.",
    "expired_token": "The auth_req_id has expired.",
    "transaction_failed": "The authentication transaction failed.",
}


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    transient: bool = False
    status_code: int | None = None
    error: str = ""
    retry_after: float | None = None


def deliver(delivery_pk: int) -> str:
    """Attempt delivery ``delivery_pk`` once. Returns what happened, for logs and tests:
    ``delivered``, ``retry``, ``failed``, ``cancelled``, ``waiting`` or ``skipped``."""
    now = timezone.now()
    # A task scheduled for a retry may start a moment early (ETA rounding, clock drift): allow it.
    due_by = now + EARLY_START
    found = Delivery.objects.select_related("auth_request__client__ciba", "auth_request__user").filter(
        pk=delivery_pk
    )[:1]
    delivery = next(iter(found), None)
    if delivery is None or delivery.status != Delivery.Status.PENDING or delivery.next_attempt_at > due_by:
        return "skipped"  # done, or leased by another worker, or not due yet
    auth_request = delivery.auth_request
    if delivery.kind == Kind.DEVICE:
        if auth_request.status != Status.PENDING or auth_request.is_expired(now):
            return _finish(delivery, Delivery.Status.CANCELLED, now, last_error="Request no longer pending.")
    elif _must_wait_for_acknowledgement(delivery, now):
        return "waiting"
    lease_until = now + timedelta(seconds=float(ciba_settings.DELIVERY_LEASE))
    if not Delivery.objects.claim(delivery.pk, now=now, due_by=due_by, lease_until=lease_until):
        return "skipped"
    delivery.attempts += 1
    if delivery.kind == Kind.PUSH_TOKENS and not delivery.payload_sealed:
        try:
            if not push.mint_for_push(delivery):
                return _finish(
                    delivery, Delivery.Status.CANCELLED, now, last_error="Request no longer approved."
                )
        except push.MintingFailed:
            return _minting_failed(delivery, now)
        except push.UserInactive:
            return _user_inactive(delivery, now)
    outcome = _attempt(delivery)
    return _record_within_lease(delivery, outcome, lease_until)


def _must_wait_for_acknowledgement(delivery: Delivery, now: datetime) -> bool:
    """Ordering: no callback before the bc-authorize answer announcing the auth_req_id was sent.

    The answer's sending is recorded by the view (``acknowledged_at``), which then releases the
    waiting callbacks; after ``ACKNOWLEDGEMENT_GRACE`` seconds a callback goes anyway.
    """
    auth_request = delivery.auth_request
    if auth_request.acknowledged_at is not None:
        return False
    release_at = auth_request.created_at + timedelta(seconds=float(ciba_settings.ACKNOWLEDGEMENT_GRACE))
    if now >= release_at:
        return False
    Delivery.objects.pending().filter(pk=delivery.pk, auth_request__acknowledged_at__isnull=True).update(
        next_attempt_at=release_at, updated_at=now
    )
    # The answer may have been sent meanwhile; if so, go now rather than wait out the grace.
    if AuthenticationRequest.objects.filter(pk=auth_request.pk, acknowledged_at__isnull=False).exists():
        Delivery.objects.pending().filter(pk=delivery.pk, attempts=0).update(next_attempt_at=now)
        return False
    return True


def _attempt(delivery: Delivery) -> Outcome:
    try:
        if delivery.kind == Kind.DEVICE:
            return _notify_device(delivery)
        return _call_client(delivery)
    except UnsealError:
        return Outcome(delivered=False, error="Stored secrets cannot be unsealed (SEALING_KEYS changed?).")


def build_notification(auth_request: AuthenticationRequest, *, reminder: int = 0) -> DeviceNotification:
    """What the authentication device is told; never the auth_req_id or any other secret.
    ``reminder``: 0 for the first notification, n for the request's n-th reminder."""
    template = ciba_settings.APPROVAL_URL
    return DeviceNotification(
        auth_request_pk=auth_request.pk,
        user=auth_request.user,
        client_id=auth_request.client.client_id,
        client_name=auth_request.client.name,
        binding_message=auth_request.binding_message,
        scopes=tuple(auth_request.scopes),
        acr_values=tuple(auth_request.acr_values.split()),
        expires_at=auth_request.expires_at,
        approval_url=template.format(pk=auth_request.pk) if template else "",
        authorization_details=tuple(auth_request.authorization_details or ()),
        reminder=reminder,
    )


def _notify_device(delivery: Delivery) -> Outcome:
    try:
        auth_request = delivery.auth_request
        get_backend().notify(build_notification(auth_request, reminder=delivery.reminder))
    except (PermanentNotificationError, CibaConfigurationError) as exc:
        if isinstance(exc, CibaConfigurationError):
            logger.error("The notification backend is misconfigured: %s", exc)
        return Outcome(delivered=False, error=_describe(exc))
    except Exception as exc:
        retry_after = getattr(exc, "retry_after", None)
        return Outcome(delivered=False, transient=True, error=_describe(exc), retry_after=retry_after)
    return Outcome(delivered=True)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:255]


def callback_body(delivery: Delivery) -> bytes:
    """The JSON body of a client callback (PING-03, PUSH-02, PERR-01)."""
    auth_request = delivery.auth_request
    if delivery.kind == Kind.PUSH_TOKENS:
        return push.pushed_payload(delivery)
    auth_req_id = unseal(auth_request.auth_req_id_sealed)
    if delivery.kind == Kind.PING:
        body: dict[str, str] = {"auth_req_id": auth_req_id}
    else:
        body = {
            "error": delivery.error,
            "error_description": ERROR_DESCRIPTIONS.get(delivery.error, ""),
            "auth_req_id": auth_req_id,
        }
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


def _call_client(delivery: Delivery) -> Outcome:
    auth_request = delivery.auth_request
    ciba = CibaClient.objects.get_ciba_client(auth_request.client)
    if ciba is None or not ciba.notification_endpoint:
        return Outcome(delivered=False, error="The client has no enabled CIBA notification endpoint.")
    token = unseal(auth_request.client_notification_token_sealed)
    body = callback_body(delivery)
    try:
        response = outbound.post_json(
            ciba.notification_endpoint, body, headers={"Authorization": f"Bearer {token}"}
        )
    except outbound.OutboundError as exc:
        return Outcome(delivered=False, transient=exc.transient, error=str(exc)[:255])
    status = response.status
    if 200 <= status < 300:
        return Outcome(delivered=True, status_code=status)
    if status == 429 or status >= 500:
        return Outcome(
            delivered=False,
            transient=True,
            status_code=status,
            error=f"HTTP {status}",
            retry_after=response.retry_after() if status == 429 else None,
        )
    # 3xx (never followed, PING-06) and other 4xx (PING-07: no retry after a 401) are final.
    return Outcome(delivered=False, status_code=status, error=f"HTTP {status}")


def backoff(attempts: int, retry_after: float | None = None) -> float:
    """Seconds before the next attempt: exponential, capped, with jitter; Retry-After wins if later."""
    base = float(ciba_settings.RETRY_BASE_DELAY)
    cap = float(ciba_settings.RETRY_MAX_DELAY)
    delay = min(cap, base * (2 ** max(0, attempts - 1)))
    delay = random.uniform(delay / 2, delay)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def retry_deadline(delivery: Delivery) -> datetime:
    """Retries stop when the request expires; error pushes (sent at expiry) get a short window."""
    expires_at = delivery.auth_request.expires_at
    if delivery.kind == Kind.DEVICE:
        return expires_at
    window = delivery.created_at + timedelta(seconds=float(ciba_settings.RETRY_MIN_WINDOW))
    return max(expires_at, window)


def _record(delivery: Delivery, outcome: Outcome) -> str:
    now = timezone.now()
    fields = {"last_status_code": outcome.status_code, "last_error": outcome.error}
    if outcome.delivered:
        return _finish(delivery, Delivery.Status.DELIVERED, now, **fields)
    if outcome.transient:
        next_at = now + timedelta(seconds=backoff(delivery.attempts, outcome.retry_after))
        if next_at < retry_deadline(delivery):
            Delivery.objects.postpone(delivery.pk, until=next_at, now=now, **fields)
            logger.info("Delivery #%s (%s) will be retried: %s", delivery.pk, delivery.kind, outcome.error)
            outbox.dispatch(delivery.pk, at=next_at)
            return "retry"
    logger.warning("Delivery #%s (%s) failed for good: %s", delivery.pk, delivery.kind, outcome.error)
    return _finish(delivery, Delivery.Status.FAILED, now, **fields)


def _record_within_lease(delivery: Delivery, outcome: Outcome, lease_until: datetime) -> str:
    """:func:`_record`, retried while the database is unreachable, until the lease runs out.

    The callback may have reached the client already: were its success not recorded, the sweep
    would send it again once the lease ran out (a database restart during a delivery would mean a
    duplicate). Retrying within the lease is safe: no other worker takes the row before it ends,
    and recording is a conditional update in one transaction (a commit whose answer was lost is
    found done: ``skipped``). Past the lease, the error propagates and the row is swept as before.
    """
    retries = 0
    while True:
        try:
            return _record(delivery, outcome)
        except DATABASE_UNAVAILABLE as exc:
            connection = transaction.get_connection(router.db_for_write(Delivery))
            delay = RECORD_RETRY_DELAYS[min(retries, len(RECORD_RETRY_DELAYS) - 1)]
            if connection.in_atomic_block or timezone.now() + timedelta(seconds=delay) >= lease_until:
                raise
            retries += 1
            logger.warning(
                "Delivery #%s (%s): its outcome could not be recorded (%s); retry %s in %.2f s.",
                delivery.pk,
                delivery.kind,
                type(exc).__name__,
                retries,
                delay,
            )
            with contextlib.suppress(DatabaseError):
                connection.close()  # broken: the next query connects again
            time.sleep(delay)


def _finish(delivery: Delivery, status: str, now: datetime, **fields: object) -> str:
    with transaction.atomic():
        # A finished delivery keeps no sealed token response: it will never be sent again.
        if not lifecycle.finish_delivery(delivery, status, now=now, payload_sealed="", **fields):
            return "skipped"
        if status == Delivery.Status.FAILED and delivery.kind == Kind.PUSH_TOKENS:
            # A push that never arrived: its tokens must not stay usable.
            push.revoke_pushed_tokens(delivery.auth_request)
    return str(status)


def _minting_failed(delivery: Delivery, now: datetime) -> str:
    """PERR-04: tokens could not be minted; the push becomes a ``transaction_failed`` error."""
    lifecycle.fail_minting(delivery, now=now)
    return "failed"


def _user_inactive(delivery: Delivery, now: datetime) -> str:
    """The user was deactivated after approving: push ``access_denied`` instead of tokens."""
    lifecycle.withdraw_approval(delivery, now=now)
    return "cancelled"
