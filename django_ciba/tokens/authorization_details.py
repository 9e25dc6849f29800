"""Granted authorization details (RFC 9396) in token responses, and their narrowing on refresh.

What the approval granted (the details the user approved, all of them or a part) goes, as
``authorization_details``, into the token response of the CIBA grant and of push (RFC 9396 §7), is
kept with the access token for introspection (§9.2) and with the refresh-token family
(:class:`~django_ciba.models.TokenAssurance`), so that the refresh grant answers with it too. A
refresh request may send ``authorization_details`` to ask for a part of the grant only (§6,
§6.1); anything else is ``invalid_authorization_details``. The ID token is unaffected.

Two steps, registered by :class:`~django_ciba.server.CibaServerMixin` and the validator:

1. :func:`check_refresh` (a ``post_token`` validator of the refresh grant) settles what the new
   tokens carry, on ``request.ciba_authorization_details``;
2. :func:`record_issued` (from the validator's ``save_bearer_token``, for every grant) adds them to
   the token response and records them next to the access token just stored.

The approval receipt (:mod:`django_ciba.receipts`) travels the same way: ``approval_receipt`` in
the CIBA grant's token response (poll, ping, push), and its id next to the access token (also a
refreshed one), reported at introspection as ``approval_receipt_id``.
"""

from __future__ import annotations

from typing import Any

from oauthlib.oauth2.rfc6749 import errors

from django_ciba import assurance
from django_ciba.core.authorization_details import PARAMETER, enabled, narrow
from django_ciba.exceptions import InvalidAuthorizationDetails
from django_ciba.models import TokenAuthorizationDetails
from django_ciba.tokens import issued


#: The token response member of the approval receipt (an extension of CIBA Core §10.1.1).
RECEIPT_MEMBER = "approval_receipt"


class InvalidAuthorizationDetailsError(errors.OAuth2Error):
    """RFC 9396 §6: the token request asks for details the grant does not hold (HTTP 400)."""

    error = "invalid_authorization_details"
    status_code = 400


def check_refresh(request: Any) -> None:
    """``post_token`` of the refresh grant: the family's granted details, or the part asked for; and
    the id of the family's approval receipt, while its request is kept."""
    kept = assurance.for_refresh(request)
    granted: list[dict[str, Any]] = list(kept.authorization_details or []) if kept is not None else []
    source = kept.auth_request if kept is not None else None
    request.ciba_receipt_id = (source.approval_receipt_id or "") if source is not None else ""
    raw = getattr(request, PARAMETER, None)
    if raw is None or raw == "" or (not granted and not enabled()):
        request.ciba_authorization_details = granted
        return
    try:
        request.ciba_authorization_details = narrow(raw, granted)
    except InvalidAuthorizationDetails as exc:
        raise InvalidAuthorizationDetailsError(description=exc.description, request=request) from None


def issued_details(request: Any) -> list[dict[str, Any]]:
    """What the tokens being issued for ``request`` carry: settled by :func:`check_refresh`, else
    those of the CIBA request being redeemed (poll, ping and push alike)."""
    details = getattr(request, "ciba_authorization_details", None)
    if details is None:
        auth = getattr(request, "ciba_request", None)
        details = auth.granted_details if auth is not None else []
    return list(details)


def issued_receipt(request: Any) -> tuple[str, str]:
    """The approval receipt given with the tokens being issued, and the receipt id the access token
    refers to: both at the CIBA grant (poll, ping, push); at the refresh grant only the id, from the
    refresh-token family's request while it is kept (the approval is single-use: its receipt is
    given once)."""
    auth = getattr(request, "ciba_request", None)
    if auth is not None:
        return auth.approval_receipt or "", auth.approval_receipt_id or ""
    return "", getattr(request, "ciba_receipt_id", "")  # settled by check_refresh


def record_issued(token: dict[str, Any], request: Any) -> None:
    """Add the details and the approval receipt to the token response, and keep the details and the
    receipt id with the access token just stored."""
    details = issued_details(request)
    receipt, receipt_id = issued_receipt(request)
    if not (details or receipt_id) or not isinstance(token.get("access_token"), str):
        return
    if details:
        token[PARAMETER] = details
    if receipt:
        token[RECEIPT_MEMBER] = receipt
    access_token = issued.access_token_of(token, request)
    if access_token is not None:
        TokenAuthorizationDetails.objects.update_or_create(
            access_token=access_token, defaults={"details": details, "receipt_id": receipt_id}
        )


def for_access_token(access_token: Any) -> list[dict[str, Any]] | None:
    """The details an access token was issued with (introspection), or None."""
    row = getattr(access_token, "ciba_authorization_details", None)
    return list(row.details) if isinstance(row, TokenAuthorizationDetails) and row.details else None


def receipt_id_of(access_token: Any) -> str | None:
    """The id (``jti``) of the approval receipt an access token was issued for (introspection), or None."""
    row = getattr(access_token, "ciba_authorization_details", None)
    return row.receipt_id if isinstance(row, TokenAuthorizationDetails) and row.receipt_id else None
