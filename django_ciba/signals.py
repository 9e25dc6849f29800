"""Signals for integrators. Arguments never carry secrets (no auth_req_id, token or user_code).

Every signal is sent with ``sender=AuthenticationRequest`` and these keyword arguments:
``auth_request_pk``, ``client_id`` (the OAuth client_id, public), ``user_pk`` and ``delivery_mode``.
The delivery signals add ``kind`` (``device``, ``ping``, ``push_tokens`` or ``push_error``).
Every signal is sent after the transaction that caused it has committed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.dispatch import Signal


if TYPE_CHECKING:
    from django_ciba.models import AuthenticationRequest


#: A request passed validation and was stored.
auth_request_created = Signal()
#: The notification backend reached the user's authentication device.
device_notified = Signal()
#: The user approved the request on the authentication device.
auth_request_approved = Signal()
#: The user (or an operator) denied the request.
auth_request_denied = Signal()
#: An operator expired the request, or it timed out.
auth_request_expired = Signal()
#: The request failed: tokens could not be minted, or a push never reached the client.
auth_request_failed = Signal()
#: The client cancelled the request (pending, or approved with no tokens issued yet).
auth_request_cancelled = Signal()
#: Tokens were issued for the request (at the token endpoint, or minted for a push).
tokens_issued = Signal()
#: A ping or push callback reached the client (it answered 2xx).
delivered = Signal()
#: A delivery (device notification or client callback) failed for good and will not be retried.
delivery_failed = Signal()

#: Extra keyword arguments a signal may carry (all public).
EXTRA_ARGUMENTS = frozenset({"kind"})


def send(signal: Signal, auth_request: AuthenticationRequest, **extra: str) -> None:
    """Send ``signal`` for ``auth_request`` with the documented, secret-free arguments."""
    from django_ciba.models import AuthenticationRequest

    assert isinstance(auth_request, AuthenticationRequest)
    unknown = set(extra) - EXTRA_ARGUMENTS
    if unknown:
        raise TypeError(f"Undocumented signal arguments: {sorted(unknown)}")
    signal.send(
        sender=AuthenticationRequest,
        auth_request_pk=auth_request.pk,
        client_id=auth_request.client.client_id,
        user_pk=auth_request.user_id,
        delivery_mode=auth_request.delivery_mode,
        **extra,
    )
