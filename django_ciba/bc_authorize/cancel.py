"""A client cancels one of its authentication requests (a django-ciba extension of CIBA Core §7).

``POST /bc-authorize/cancel`` with the client authenticated exactly as at ``/bc-authorize`` and the
form parameter ``auth_req_id``. A pending request, or an approved one whose tokens were not issued,
becomes cancelled (:func:`django_ciba.lifecycle.cancel`); cancelling it again succeeds again. An
unknown auth_req_id and another client's get the same answer, so nothing tells them apart.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from django_ciba import audit, lifecycle
from django_ciba.exceptions import InvalidGrant, InvalidRequest
from django_ciba.models import AuthenticationRequest


Status = AuthenticationRequest.Status

UNKNOWN = "The auth_req_id is unknown or was issued to another client."
#: Why a request of the client can no longer be cancelled, by its status.
NOT_CANCELLABLE = {
    Status.DENIED: "The request was denied already.",
    Status.EXPIRED: "The request has expired.",
    Status.CONSUMED: "Tokens were issued already for the request.",
    Status.FAILED: "The request has failed already.",
}


def cancel_request(application: Any, form: dict[str, str]) -> AuthenticationRequest:
    """Cancel the client's request named by ``form["auth_req_id"]`` (or find it cancelled already);
    raise :class:`InvalidRequest` or :class:`InvalidGrant` otherwise."""
    auth_req_id = form.get("auth_req_id")
    if not auth_req_id:
        raise InvalidRequest("Missing auth_req_id parameter.")
    found = list(AuthenticationRequest.objects.by_auth_req_id(auth_req_id).select_related("client")[:1])
    if not found or found[0].client_id != application.pk:
        raise InvalidGrant(UNKNOWN)
    auth_request = found[0]
    now = timezone.now()
    if auth_request.status != Status.CANCELLED and not lifecycle.cancel(
        auth_request, actor=audit.client_actor(application), now=now
    ):
        auth_request.refresh_from_db()
        if auth_request.status != Status.CANCELLED:
            expired = auth_request.status in lifecycle.UNREDEEMED  # past its expiry, not swept yet
            raise InvalidGrant(NOT_CANCELLABLE[Status.EXPIRED if expired else auth_request.status])
    return auth_request
