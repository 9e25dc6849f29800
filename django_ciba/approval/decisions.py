"""The authentication-device side: record the user's decision (AD-01, AD-03).

These functions are the Python service API; the DRF device API, the management commands and the
admin actions all call them. They check who decides and what, then make the transition through
:mod:`django_ciba.lifecycle` (an atomic conditional update, so two concurrent decisions on one
request yield exactly one outcome) and turn a refused one into an error.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.utils import timezone

from django_ciba import assurance, audit, lifecycle
from django_ciba.assurance import AuthenticationContext
from django_ciba.core import authorization_types
from django_ciba.exceptions import (
    InsufficientAssurance,
    InvalidDecision,
    RequestExpired,
    RequestNotFound,
    RequestNotPending,
)
from django_ciba.models import AbuseReport, AuthenticationRequest


def requests_for_user(user: Any) -> Any:
    """The user's requests still waiting for a decision, soonest expiry first."""
    return (
        AuthenticationRequest.objects.pending().for_user(user).select_related("client").order_by("expires_at")
    )


def get_for_user(user: Any, pk: Any) -> AuthenticationRequest:
    """One of the user's requests; another user's request is reported as not found."""
    try:
        return AuthenticationRequest.objects.select_related("client").get(pk=pk, user=user)
    except (AuthenticationRequest.DoesNotExist, ValueError, TypeError):
        raise RequestNotFound()


def _check_decider(auth_request: AuthenticationRequest, user: Any | None) -> None:
    if user is not None and auth_request.user_id != getattr(user, "pk", None):
        raise RequestNotFound()


def _refusal(auth_request: AuthenticationRequest, now: datetime) -> Exception:
    auth_request.refresh_from_db(fields=["status", "expires_at"])
    Status = AuthenticationRequest.Status
    if auth_request.status == Status.EXPIRED or (
        auth_request.status == Status.PENDING and auth_request.is_expired(now)
    ):
        return RequestExpired()
    return RequestNotPending()


def approve(
    auth_request: AuthenticationRequest,
    *,
    user: Any,
    scopes: Iterable[str] | None = None,
    details: Iterable[int] | None = None,
    context: AuthenticationContext | None = None,
    actor: str | None = None,
) -> AuthenticationRequest:
    """Approve as ``user`` (the hinted user), optionally granting only a subset of the scopes.

    ``details`` are the positions, in the request's ``authorization_details``, of the details the
    user approves (None: all of them); :func:`granted_details` says which subsets are allowed.

    ``context`` is how the approving session authenticated, from the server's own knowledge
    (:func:`django_ciba.assurance.context_for`); the recorded ``acr``, ``amr`` and ``auth_time``
    come from it, and :class:`~django_ciba.exceptions.InsufficientAssurance` is raised when it
    satisfies none of the request's ``acr_values``. None means nobody authenticated (a decision
    policy, an operator): no ``acr``, ``amr`` or ``auth_time`` is recorded.

    ``actor`` names who decided for the audit trail (default: the user; a decision policy passes
    ``policy:<name>``).
    """
    _check_decider(auth_request, user)
    requested = auth_request.scopes
    granted = list(dict.fromkeys(scopes)) if scopes is not None else requested
    if not set(granted) <= set(requested):
        raise InvalidDecision("Only requested scopes can be granted.")
    if "openid" not in granted:
        raise InvalidDecision("The openid scope cannot be removed.")
    granted_details = choose_details(auth_request, details)
    now = timezone.now()
    try:
        achieved = assurance.settle(auth_request.acr_values, context)
    except InsufficientAssurance:
        refusal = _refusal(auth_request, now)  # a decided or expired request says so first
        if auth_request.status != AuthenticationRequest.Status.PENDING or auth_request.is_expired(now):
            raise refusal from None
        raise
    done = lifecycle.approve(
        auth_request,
        actor=actor or audit.user_actor(user),
        granted_scope=" ".join(granted),
        granted_authorization_details=granted_details,
        acr=achieved.acr,
        amr=list(achieved.amr),
        auth_time=achieved.auth_time,
        now=now,
    )
    if not done:
        raise _refusal(auth_request, now)
    return auth_request


def choose_details(auth_request: AuthenticationRequest, chosen: Iterable[int] | None) -> list[dict[str, Any]]:
    """The authorization details (RFC 9396) an approval grants: all of the request's, or those at the
    positions ``chosen``, in the request's order. A detail may be left out only when its type allows
    it (``SUBSET``), and at least one must stay (approving none is a denial)."""
    requested = list(auth_request.authorization_details or [])
    if chosen is None:
        return requested
    positions = list(chosen)
    if not all(isinstance(index, int) and not isinstance(index, bool) for index in positions):
        raise InvalidDecision("Authorization details are chosen by their position (an integer).")
    if not set(positions) <= set(range(len(requested))):
        raise InvalidDecision("Only requested authorization details can be approved.")
    if requested and not positions:
        raise InvalidDecision("Approve at least one of the authorization details, or deny the request.")
    for index, detail in enumerate(requested):
        if index not in positions and not authorization_types.allows_subset(detail.get("type", "")):
            raise InvalidDecision("This request must be approved with all of its authorization details.")
    return [detail for index, detail in enumerate(requested) if index in set(positions)]


def deny(
    auth_request: AuthenticationRequest, *, user: Any | None = None, actor: str | None = None
) -> AuthenticationRequest:
    """Deny as ``user`` (the hinted user), or as an operator when ``user`` is None.

    ``actor`` names who decided for the audit trail (default: the user, else ``operator``).
    """
    _check_decider(auth_request, user)
    now = timezone.now()
    if not lifecycle.deny(
        auth_request, actor=actor or (audit.user_actor(user) if user is not None else "operator"), now=now
    ):
        raise _refusal(auth_request, now)
    return auth_request


def report_abuse(auth_request: AuthenticationRequest, *, user: Any) -> AbuseReport:
    """ "I did not request this": deny as ``user`` and file an abuse report against the client."""
    _check_decider(auth_request, user)
    now = timezone.now()
    report = lifecycle.report_abuse(auth_request, user=user, now=now)
    if report is None:
        raise _refusal(auth_request, now)
    return report


def expire(auth_request: AuthenticationRequest, *, actor: str = "operator") -> AuthenticationRequest:
    """Expire a request now (operator action): a pending one, or an approved one whose tokens were
    not issued yet; refused once tokens were issued, or after a denial or expiry."""
    if not lifecycle.expire(auth_request, actor=actor, now=timezone.now()):
        raise RequestNotPending()
    return auth_request
